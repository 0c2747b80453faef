/**
 * Finds PostgreSQL client programs (pg_dump, pg_restore, ...) whose major
 * version fits the server: the same major version when installed, otherwise
 * the closest newer one. An older client cannot read a newer server, so that
 * case is rejected with both versions named.
 */
import { access, readdir } from 'node:fs/promises';
import path from 'node:path';
import { constants } from 'node:fs';
import { ConfigError } from '../errors.js';
import { runProcess } from '../util/process.js';

export interface PgTool {
  path: string;
  version: string;
  major: number;
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

/** Lists every installed copy of `program` with its version, newest first. */
export async function findToolVersions(program: string): Promise<PgTool[]> {
  const candidates = new Set<string>();
  for (const dir of await debianBinDirs()) candidates.add(path.join(dir, program));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) candidates.add(path.join(dir, program));

  const tools: PgTool[] = [];
  const seenVersions = new Set<string>();
  for (const candidate of candidates) {
    if (!(await isExecutable(candidate))) continue;
    const tool = await probe(candidate);
    if (tool && !seenVersions.has(`${tool.version}`)) {
      seenVersions.add(tool.version);
      tools.push(tool);
    }
  }
  return tools.sort((a, b) => b.major - a.major);
}

/** Picks the copy of `program` for a server of major version `serverMajor`. */
export async function findTool(program: string, serverMajor: number, serverVersion: string): Promise<PgTool> {
  const tools = await findToolVersions(program);
  const exact = tools.find((t) => t.major === serverMajor);
  if (exact) return exact;
  const newer = tools.filter((t) => t.major > serverMajor).at(-1);
  if (newer) return newer;
  const found = tools.length > 0 ? tools.map((t) => `${t.version} (${t.path})`).join(', ') : 'none';
  throw new ConfigError(`no ${program} for PostgreSQL server ${serverVersion}: found ${found}; ${program} must be version ${serverMajor} or newer`, {
    code: 'tool.version',
    object: program,
    hint: `Install the PostgreSQL ${serverMajor} client (on Debian: apt-get install postgresql-client-${serverMajor}).`,
  });
}

async function debianBinDirs(): Promise<string[]> {
  const entries = await readdir(DEBIAN_ROOT).catch(() => [] as string[]);
  return entries.filter((e) => /^\d+$/.test(e)).map((e) => path.join(DEBIAN_ROOT, e, 'bin'));
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function probe(file: string): Promise<PgTool | undefined> {
  try {
    const output = await runProcess(file, ['--version'], { operation: 'version check', timeoutMs: 10_000 });
    const match = /(\d+)(?:\.(\d+))?/.exec(output.replace(/^[^)]*\)/, ''));
    if (!match) return undefined;
    return { path: file, version: match[2] ? `${match[1]}.${match[2]}` : match[1]!, major: Number(match[1]) };
  } catch {
    return undefined;
  }
}
