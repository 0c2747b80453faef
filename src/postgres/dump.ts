/**
 * pg_dump and pg_dumpall invocations. Connection details go in as a
 * password-free URI; the password reaches the child through PGPASSWORD.
 */
import type { Readable } from 'node:stream';
import { startProcess, runProcess, type RunningProcess } from '../util/process.js';
import { ToolError } from '../errors.js';
import type { ConnectionTarget } from './connection.js';
import type { PgTool } from './tools.js';

/**
 * Starts pg_dump in custom format without compression (drplan compresses the
 * stream itself, faster and on several threads), reading the database as of
 * `snapshot` when given.
 */
export function startDump(tool: PgTool, target: ConnectionTarget, options: { snapshot?: string; signal?: AbortSignal }): RunningProcess {
  const args = ['--format=custom', '--compress=0', '--no-password', `--dbname=${target.uri}`];
  if (options.snapshot) args.push(`--snapshot=${options.snapshot}`);
  return startProcess(tool.path, args, { env: target.env, signal: options.signal, operation: 'pg_dump' });
}

export interface GlobalsDump {
  sql: Buffer;
  /** False when the role could not read password hashes and they were left out. */
  rolePasswords: boolean;
}

/**
 * Captures roles, memberships and tablespaces with `pg_dumpall --globals-only`.
 * A role that may not read pg_authid still gets the rest, without password
 * hashes, and `rolePasswords` is then false.
 */
export async function dumpGlobals(tool: PgTool, target: ConnectionTarget, signal?: AbortSignal): Promise<GlobalsDump> {
  const args = ['--globals-only', '--no-password', `--dbname=${target.uri}`];
  try {
    const sql = await runProcess(tool.path, args, { env: target.env, signal, operation: 'pg_dumpall --globals-only' });
    return { sql: Buffer.from(sql), rolePasswords: true };
  } catch (err) {
    if (!(err instanceof ToolError) || !/permission denied/.test(err.message)) throw err;
    const sql = await runProcess(tool.path, [...args, '--no-role-passwords'], { env: target.env, signal, operation: 'pg_dumpall --globals-only' });
    return { sql: Buffer.from(sql), rolePasswords: false };
  }
}

export type { Readable };
