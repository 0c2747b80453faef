/**
 * pg_restore invocations: reading an archive to check it, and restoring it.
 */
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startProcess } from '../util/process.js';
import type { ConnectionTarget } from './connection.js';
import type { PgTool } from './tools.js';

/**
 * Feeds `archive` to `pg_restore --list` and resolves with the table of
 * contents. pg_restore stops reading after the table of contents; the rest of
 * the stream is still consumed (and dropped), so a caller hashing the same
 * stream gets every byte.
 */
export async function listArchive(tool: PgTool, archive: Readable, signal?: AbortSignal): Promise<string> {
  const running = startProcess(tool.path, ['--list'], { stdin: 'pipe', signal, operation: 'pg_restore --list' });
  let listing = '';
  running.stdout.setEncoding('utf8');
  running.stdout.on('data', (chunk: string) => {
    listing += chunk;
  });
  const stdin = running.child.stdin!;
  let open = true;
  stdin.on('error', () => {
    open = false;
  });
  stdin.on('close', () => {
    open = false;
  });
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      if (!open || stdin.write(chunk)) return callback();
      const resume = () => {
        stdin.off('drain', resume);
        stdin.off('close', resume);
        callback();
      };
      stdin.once('drain', resume);
      stdin.once('close', resume);
    },
    final(callback) {
      if (open) stdin.end();
      callback();
    },
  });
  await Promise.all([pipeline(archive, sink), running.done]);
  return listing;
}

export interface RestoreOptions {
  jobs: number;
  clean: boolean;
  singleTransaction: boolean;
  /** A `--use-list` file that selects entries (single-table restores). */
  listFile?: string;
  /** Leave ownership to the connecting user, for copies next to live data whose owners may not be assignable. */
  noOwner?: boolean;
  signal?: AbortSignal;
}

/** Restores the archive file into the target database with pg_restore. */
export function restoreArchive(tool: PgTool, file: string, target: ConnectionTarget, options: RestoreOptions): Promise<void> {
  const args = ['--no-password', '--exit-on-error', `--dbname=${target.uri}`];
  if (options.jobs > 1) args.push(`--jobs=${options.jobs}`);
  if (options.clean) args.push('--clean', '--if-exists');
  if (options.singleTransaction && options.jobs <= 1) args.push('--single-transaction');
  if (options.listFile) args.push(`--use-list=${options.listFile}`);
  if (options.noOwner) args.push('--no-owner');
  args.push(file);
  return startProcess(tool.path, args, { env: target.env, signal: options.signal, operation: 'pg_restore' }).done;
}
