/**
 * Asynchronous WAL archiving: `wal push` copies the file into a local spool
 * directory durably and returns, and one background uploader per database
 * (`wal push --drain`) stores the queued files on every repository in the
 * order they arrived.
 *
 * Spool layout, per database: `<spoolDir>/<database>/<arrival stamp>-<WAL
 * file name>` for queued files, `uploader.pid` for the running uploader and
 * `uploader.log` for its output. A file leaves the spool only after every
 * repository has stored it, so a crash or restart loses nothing: the next push
 * starts a new uploader, which resumes with the oldest queued file.
 *
 * When the queue is full, push fails. PostgreSQL then keeps the segment in
 * pg_wal and retries archive_command later, so the segment stays on the
 * server's own disk instead of being acknowledged while no repository has a copy.
 * The alternative, accepting more and more files into the spool, would hide a
 * dead repository until the spool's disk filled.
 *
 * NOTE: `wal fetch` reads only the repositories, so a file still queued here
 * is not found until the uploader has stored it. uploader.log is appended to
 * and never rotated.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PlanContext } from '../context.js';
import { DrplanError, IntegrityError, StorageError } from '../errors.js';
import type { Logger } from '../logging.js';
import { startDetached } from '../util/process.js';
import { archiveWalFile } from './archive.js';
import { sha256 } from './codec.js';

const ENTRY = /^(\d{15})-(.+)$/;
const TEMP_PREFIX = '.tmp-';
const LOCK_FILE = 'uploader.pid';
const LOG_FILE = 'uploader.log';
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 10_000;
/** How long an idle uploader waits for another file before it exits. */
const IDLE_EXIT_MS = 2000;

/** How to start the uploader: the drplan program, its arguments and the plan file. */
export interface UploaderCommand {
  program: string;
  args: string[];
}

/** The part of the context the spool needs: queuing opens no repository. */
type SpoolContext = Pick<PlanContext, 'plan' | 'log'>;

/** Returns the spool directory of one database. */
export function spoolDirectory(context: SpoolContext, database: string): string {
  return path.join(context.plan.wal.spoolDir!, database);
}

/**
 * Queues one WAL file for upload and makes sure an uploader runs. Rejects
 * when the queue already contains `wal.maxQueue` files, and when a different
 * file of the same name is queued.
 */
export async function spoolWalFile(context: SpoolContext, database: string, source: string, fileName: string, uploader: UploaderCommand): Promise<'queued' | 'already queued'> {
  const dir = spoolDirectory(context, database);
  const log = context.log.child({ component: 'wal-spool', database });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const queued = await listQueue(dir);

  const same = queued.find((entry) => entry.fileName === fileName);
  if (same) {
    await compareQueued(dir, same.entry, fileName, await readFile(source));
    await ensureUploader(dir, uploader, log);
    log.info({ file: fileName }, 'WAL file is already queued with identical content');
    return 'already queued';
  }

  const maxQueue = context.plan.wal.maxQueue;
  if (queued.length >= maxQueue) {
    await ensureUploader(dir, uploader, log);
    const error = new StorageError(`WAL spool for database ${database} is full (${queued.length} of ${maxQueue} files waiting in ${dir}); ${fileName} was not archived`, {
      code: 'wal.spool_full',
      object: fileName,
      hint: `The uploader cannot keep up or a repository is unavailable: see ${path.join(dir, LOG_FILE)}. PostgreSQL keeps the segment in pg_wal and retries.`,
    });
    log.error({ file: fileName, queued: queued.length, maxQueue }, error.message);
    throw error;
  }

  await copyDurably(source, dir, `${arrivalStamp(queued)}-${fileName}`);
  await ensureUploader(dir, uploader, log);
  log.info({ file: fileName, queued: queued.length + 1 }, 'WAL file queued');
  return 'queued';
}

/**
 * Uploads queued files in arrival order until the queue stays empty, then
 * exits. Only one uploader runs per spool directory; a second one returns at
 * once. A failed upload is retried, with growing pauses, until it succeeds or
 * `signal` aborts.
 */
export async function drainSpool(context: PlanContext, database: string, signal: AbortSignal): Promise<number> {
  const dir = spoolDirectory(context, database);
  const log = context.log.child({ component: 'wal-uploader', database });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let uploaded = 0;
  while (!signal.aborted && (await takeLock(dir))) {
    try {
      uploaded += await uploadQueue(context, database, dir, log, signal);
    } finally {
      await unlink(path.join(dir, LOCK_FILE)).catch(() => undefined);
    }
    // A push that found the lock held just before it was released started no uploader, so look once more.
    if ((await listQueue(dir)).length === 0) break;
  }
  return uploaded;
}

async function uploadQueue(context: PlanContext, database: string, dir: string, log: Logger, signal: AbortSignal): Promise<number> {
  let uploaded = 0;
  let idleSince = Date.now();
  while (!signal.aborted) {
    const next = (await listQueue(dir))[0];
    if (!next) {
      if (Date.now() - idleSince >= IDLE_EXIT_MS) return uploaded;
      await pause(200, signal);
      continue;
    }
    await uploadWithRetry(context, database, dir, next, log, signal);
    uploaded += 1;
    idleSince = Date.now();
  }
  return uploaded;
}

/**
 * Uploads one queued file, retrying until it succeeds. A conflict with an
 * archived file of the same name (IntegrityError) never resolves by itself,
 * so the queue stops there: push then reports the full spool, and the error
 * is in uploader.log.
 */
async function uploadWithRetry(context: PlanContext, database: string, dir: string, entry: QueueEntry, log: Logger, signal: AbortSignal): Promise<void> {
  let wait = FIRST_RETRY_MS;
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const bytes = await readFile(path.join(dir, entry.entry));
      await archiveWalFile(context, database, entry.fileName, bytes);
      await unlink(path.join(dir, entry.entry));
      await syncDirectory(dir);
      return;
    } catch (err) {
      if (!(err instanceof DrplanError)) throw err;
      log.error({ file: entry.fileName, attempt, retryInMs: wait, err }, 'WAL upload failed; the file stays queued and is retried');
      await pause(wait, signal);
      wait = Math.min(wait * 2, MAX_RETRY_MS);
    }
  }
}

interface QueueEntry {
  entry: string;
  fileName: string;
}

/** Lists queued files, oldest first. */
export async function listQueue(dir: string): Promise<QueueEntry[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names
    .map((entry) => ({ entry, match: ENTRY.exec(entry) }))
    .filter((item) => item.match !== null)
    .map((item) => ({ entry: item.entry, fileName: item.match![2]! }))
    .sort((a, b) => a.entry.localeCompare(b.entry));
}

/** Returns a stamp later than every queued one, so order survives clock steps backwards. */
function arrivalStamp(queued: QueueEntry[]): string {
  const newest = queued.length > 0 ? Number(queued.at(-1)!.entry.slice(0, 15)) : 0;
  return String(Math.max(Date.now(), newest + 1)).padStart(15, '0');
}

async function compareQueued(dir: string, entry: string, fileName: string, bytes: Buffer): Promise<void> {
  const queuedHash = sha256(await readFile(path.join(dir, entry)));
  const pushedHash = sha256(bytes);
  if (queuedHash === pushedHash) return;
  throw new IntegrityError(`WAL file ${fileName} is already queued in ${dir} with different content: queued sha256 ${queuedHash}, pushed sha256 ${pushedHash}`, {
    code: 'wal.conflict',
    object: fileName,
    hint: 'Two servers may be archiving into the same database name; give each its own --database name.',
  });
}

/** Copies `source` under a temporary name, fsyncs it, renames it and fsyncs the directory. */
async function copyDurably(source: string, dir: string, name: string): Promise<void> {
  const temp = path.join(dir, `${TEMP_PREFIX}${name}.${randomBytes(6).toString('hex')}`);
  try {
    // copyFile lets the kernel copy (copy_file_range), so the segment never passes through this process.
    await copyFile(source, temp, constants.COPYFILE_EXCL);
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path.join(dir, name));
    await syncDirectory(dir);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw new StorageError(`cannot queue WAL file in ${dir}: ${(err as Error).message}`, {
      code: 'wal.spool_write',
      object: dir,
      hint: 'Check that the spool directory is on a local disk with free space, writable by the PostgreSQL server user.',
      cause: err,
    });
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Starts an uploader unless one is running. */
async function ensureUploader(dir: string, uploader: UploaderCommand, log: Logger): Promise<void> {
  if (await lockHolder(dir)) return;
  const pid = startDetached(uploader.program, uploader.args, { logFile: path.join(dir, LOG_FILE) });
  log.debug({ pid }, 'WAL uploader started');
}

/** Returns the pid of the running uploader, or undefined when none runs. */
async function lockHolder(dir: string): Promise<number | undefined> {
  const text = await readFile(path.join(dir, LOCK_FILE), 'utf8').catch(() => undefined);
  const pid = Number(text?.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return isAlive(pid) ? pid : undefined;
}

/**
 * Takes the uploader lock: a pid file created exclusively. A pid file whose
 * process is gone (a crash, a reboot) is removed first.
 * NOTE: a reused pid of an unrelated process keeps the lock until that process ends.
 */
async function takeLock(dir: string): Promise<boolean> {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await lockHolder(dir)) return false;
      await unlink(file).catch(() => undefined);
    }
  }
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
