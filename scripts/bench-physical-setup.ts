/**
 * Setup of the physical benchmark: what drplan can do on this commit, its
 * plan file, and the archive_command script that archives each WAL file to
 * drplan and to pgBackRest.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { runProcess } from '../src/util/process.js';
import type { RunContext } from './bench-run.js';
import { pgBackRestArgs, type PgBackRestSetup } from './bench-pgbackrest.js';

export const DRPLAN_BIN = fileURLToPath(new URL('../../bin/drplan.js', import.meta.url));
export const DATABASE = 'bench';

/** Presence, in this build of drplan, of each command that the benchmark uses. */
export interface DrplanFeatures {
  physicalBackup: boolean;
  pitrRestore: boolean;
  walPush: boolean;
}

export interface PhysicalContext extends RunContext {
  workDir: string;
  owner: { uid: number; gid: number };
  features: DrplanFeatures;
  pgBackRest: PgBackRestSetup;
  planFile: string;
  archiveScript: string;
}

/**
 * Reads drplan's help texts to find which commands exist, so the benchmark
 * can still measure pgBackRest on a build that lacks some of them.
 */
export async function detectDrplanFeatures(signal: AbortSignal): Promise<DrplanFeatures> {
  const help = (args: string[]) =>
    runProcess(process.execPath, [DRPLAN_BIN, ...args, '--help'], { operation: `drplan ${args.join(' ')} --help`, signal, timeoutMs: 30_000 }).catch(() => '');
  const [backup, restore, wal] = await Promise.all([help(['backup']), help(['restore']), help(['wal'])]);
  return { physicalBackup: backup.includes('--kind'), pitrRestore: restore.includes('--pitr'), walPush: /\bpush\b/.test(wal) };
}

/** Returns the environment for drplan: the password for `${BENCH_PW}` and JSON logs at info level. */
export function drplanEnv(context: PhysicalContext): NodeJS.ProcessEnv {
  return { BENCH_PW: context.cluster.password, DRPLAN_LOG_LEVEL: 'info' };
}

/** Returns the arguments of a drplan command on the benchmark's plan, after the node executable. */
export function drplanArgs(context: PhysicalContext, args: string[], planFile = context.planFile): string[] {
  return [DRPLAN_BIN, '-c', planFile, ...args];
}

/**
 * Writes a plan with the benchmark database and one file:// repository,
 * with the plan's default compression (zstd), and with asynchronous WAL
 * archiving when `asyncSpoolDir` is given. The password comes from
 * BENCH_PW and needs no escaping in the URL because it is base64url.
 */
export async function writePlan(context: Pick<PhysicalContext, 'cluster' | 'workDir'>, planFile: string, asyncSpoolDir?: string): Promise<void> {
  const { cluster, workDir } = context;
  const wal = asyncSpoolDir === undefined ? [] : ['wal:', '  async: true', `  spoolDir: "${asyncSpoolDir}"`];
  const plan = [
    'version: 1',
    'service: bench-physical',
    'databases:',
    `  - name: ${DATABASE}`,
    `    url: "postgres://${cluster.superuser}:\${BENCH_PW}@${cluster.host}:${cluster.port}/${DATABASE}"`,
    'repositories:',
    '  - name: local',
    `    url: "file://${join(workDir, 'drplan-repository')}"`,
    ...wal,
    '',
  ].join('\n');
  await writeFile(planFile, plan, { mode: 0o600 });
}

/**
 * Writes the archive_command script. It starts `drplan wal push` (when this
 * build has it) and `pgbackrest archive-push` at the same time and fails
 * unless both succeed, so PostgreSQL retries the file until both
 * repositories have it. Each tool's backup thus waits for the same pushes.
 */
export async function writeArchiveScript(context: PhysicalContext): Promise<void> {
  const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  const pgBackRest = ['pgbackrest', ...pgBackRestArgs(context.pgBackRest, 'archive-push')].map(quote).join(' ');
  const lines = ['#!/bin/sh', '# Archives one WAL file ($1, relative to the data directory) to drplan and to pgBackRest.'];
  if (context.features.walPush) {
    const drplan = [process.execPath, ...drplanArgs(context, ['wal', 'push', '--database', DATABASE])].map(quote).join(' ');
    lines.push(`${drplan} "$1" &`, 'drplan_pid=$!');
  }
  lines.push(`PGPASSFILE=${quote(context.pgBackRest.env.PGPASSFILE!)} ${pgBackRest} "$1" &`, 'pgbackrest_pid=$!', 'status=0');
  if (context.features.walPush) lines.push('wait "$drplan_pid" || status=1');
  lines.push('wait "$pgbackrest_pid" || status=1', 'exit "$status"', '');
  await writeFile(context.archiveScript, lines.join('\n'), { mode: 0o700 });
}
