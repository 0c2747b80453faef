/**
 * `restore_command` side of the archive: finds a WAL file on the first
 * repository (in plan order) that has an intact copy and writes it where
 * PostgreSQL asked, atomically.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Compression } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { DrplanError, IntegrityError, NotFoundError, StorageError } from '../errors.js';
import type { Logger } from '../logging.js';
import { withRepositoryPrefix, type Storage } from '../storage/storage.js';
import { readChecksum, readObject } from './archive.js';
import { decompressBuffer, sha256 } from './codec.js';
import { assertWalFileName, walKey } from './layout.js';

const COMPRESSIONS: Compression[] = ['zstd', 'gzip', 'none'];

interface Attempt {
  repository: string;
  outcome: 'missing' | 'corrupt' | 'unreachable';
  error?: Error;
}

/**
 * Writes WAL file `fileName` of `database` to `destination` (relative to the
 * working directory, which PostgreSQL sets to the data directory). Rejects
 * with NotFoundError when no repository has the file, StorageError when a
 * repository that might have it could not be read, and IntegrityError when
 * every copy found is damaged.
 */
export async function fetchWalFile(context: PlanContext, database: string, fileName: string, destination: string): Promise<{ repository: string; bytes: number }> {
  assertWalFileName(fileName);
  const log = context.log.child({ component: 'wal', database });
  const attempts: Attempt[] = [];
  for (const storage of context.storages) {
    try {
      const bytes = await readVerified(storage, database, fileName, context.plan.backup.compression, log);
      if (!bytes) {
        attempts.push({ repository: storage.name, outcome: 'missing' });
        continue;
      }
      await writeDurably(destination, bytes);
      log.debug({ repository: storage.name, file: fileName, bytes: bytes.length }, 'WAL file restored');
      return { repository: storage.name, bytes: bytes.length };
    } catch (err) {
      const outcome = isDamage(err) ? 'corrupt' : 'unreachable';
      if (outcome === 'unreachable' && !(err instanceof DrplanError)) throw err;
      log.warn({ repository: storage.name, file: fileName, err }, outcome === 'corrupt' ? 'archived WAL copy is damaged; trying the next repository' : 'repository could not be read; trying the next one');
      attempts.push({ repository: storage.name, outcome, error: err as Error });
    }
  }
  throw fetchFailure(database, fileName, attempts);
}

/** Returns the verified original bytes from one repository, or undefined when it has no copy. */
async function readVerified(storage: Storage, database: string, fileName: string, preferred: Compression, log: Logger): Promise<Buffer | undefined> {
  // The plan's compression first: a plan whose compression changed still finds files archived before the change.
  for (const compression of [preferred, ...COMPRESSIONS.filter((c) => c !== preferred)]) {
    const key = walKey(database, fileName, compression);
    let stored: Buffer;
    try {
      stored = await readObject(storage, key);
    } catch (err) {
      if (err instanceof NotFoundError) continue;
      throw err;
    }
    const checksum = await readChecksum(storage, key);
    const bytes = await decompressBuffer(stored, compression);
    if (checksum && (checksum.sha256 !== sha256(bytes) || checksum.bytes !== bytes.length)) {
      throw new IntegrityError(`repository ${storage.name}: archived WAL file ${fileName} does not match its checksum (expected sha256 ${checksum.sha256}, got ${sha256(bytes)})`, {
        code: 'wal.corrupt',
        object: key,
      });
    }
    if (!checksum) {
      // A push interrupted between the WAL object and its checksum object leaves this state. The copy is still used
      // because zstd's frame checksum or gzip's CRC has checked the bytes, but with plain (uncompressed) storage nothing has.
      log.warn({ repository: storage.name, file: fileName, key }, 'archived WAL file has no checksum object; using it unverified by SHA-256');
    }
    return bytes;
  }
  return undefined;
}

/** Writes to a temporary name beside `destination`, fsyncs it, renames it and fsyncs the directory. */
async function writeDurably(destination: string, bytes: Buffer): Promise<void> {
  const dir = path.dirname(path.resolve(destination));
  const temp = path.join(dir, `.${path.basename(destination)}.drplan-tmp-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, destination);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw new StorageError(`cannot write WAL file to ${destination}: ${(err as Error).message}`, { code: 'wal.write', object: destination, cause: err });
  }
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fetchFailure(database: string, fileName: string, attempts: Attempt[]): DrplanError {
  const unreachable = attempts.filter((a) => a.outcome === 'unreachable');
  if (unreachable.length > 0) {
    const first = unreachable[0]!;
    return new StorageError(`WAL file ${fileName} could not be fetched: ${withRepositoryPrefix(first.repository, first.error?.message ?? 'failed')}`, {
      code: 'wal.unreachable',
      object: fileName,
      hint: 'Recovery cannot tell whether the file exists while a repository is unreachable; restore access to it and retry.',
      cause: first.error,
    });
  }
  const corrupt = attempts.filter((a) => a.outcome === 'corrupt');
  if (corrupt.length > 0) {
    return new IntegrityError(`WAL file ${fileName} of database ${database} is damaged in every repository that has a copy: ${corrupt.map((a) => `${a.repository} (${a.error?.message})`).join('; ')}`, {
      code: 'wal.corrupt',
      object: fileName,
    });
  }
  // PostgreSQL probes for files that do not exist (the next timeline's history, the segment after the last), so this message stays one line.
  return new NotFoundError(`WAL file ${fileName} not found in any repository`, { code: 'wal.missing', object: fileName });
}

/** True for a checksum mismatch, a zstd that rejected its input, or a zlib data error. */
function isDamage(err: unknown): boolean {
  if (err instanceof IntegrityError) return true;
  if (err instanceof DrplanError) return err.code === 'process.failed';
  return typeof (err as NodeJS.ErrnoException).code === 'string' && (err as NodeJS.ErrnoException).code!.startsWith('Z_');
}
