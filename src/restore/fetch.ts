/**
 * Downloads a backup from the first repository with a good copy: the stored
 * bytes are hashed while they are decompressed into a local file, and the
 * file is used only when size and SHA-256 match the metadata. A missing or
 * corrupted copy is logged and the next repository is tried.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { decompress, decompressToFile } from '../backup/compression.js';
import type { BackupCopy, CatalogEntry } from '../backup/catalog.js';
import { asLogical, type StoredObject } from '../backup/metadata.js';
import { AbortedError, IntegrityError, NotFoundError, StorageError } from '../errors.js';
import type { Logger } from '../logging.js';
import { Meter, pipeInto } from '../util/streams.js';

export interface FetchedBackup {
  /** The decompressed pg_dump archive. */
  archive: string;
  /** The decompressed globals SQL, when the backup has it. */
  globalsSql?: string;
  copy: BackupCopy;
  /** Copies tried first and rejected, with the reason. */
  rejected: string[];
  /** Removes the temporary directory. */
  dispose(): Promise<void>;
}

/** Fetches and verifies the backup into a new directory under `tempRoot`. */
export async function fetchVerified(entry: CatalogEntry, tempRoot: string, log: Logger, signal?: AbortSignal): Promise<FetchedBackup> {
  const dir = await mkdtemp(path.join(tempRoot, 'drplan-restore-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  const failures: string[] = [];
  let corrupted = false;
  for (const copy of entry.copies) {
    const repoLog = log.child({ repository: copy.storage.name });
    try {
      const archive = path.join(dir, 'archive.dump');
      await downloadChecked(copy, archive, signal);
      const meta = asLogical(copy.meta);
      const globalsSql = meta.globals ? await readGlobals(copy, meta.globals, signal) : undefined;
      repoLog.info({ key: meta.dump.key, bytes: meta.dump.bytes }, 'backup copy verified');
      return { archive, globalsSql, copy, rejected: failures, dispose };
    } catch (err) {
      if (signal?.aborted) {
        await dispose();
        throw new AbortedError('restore interrupted while reading the backup', { code: 'restore.aborted', cause: err });
      }
      repoLog.warn({ reason: (err as Error).message }, 'copy unusable, trying the next repository');
      failures.push(`${copy.storage.name}: ${(err as Error).message}`);
      corrupted ||= err instanceof IntegrityError;
    }
  }
  await dispose();
  throw noUsableCopy(entry, failures, corrupted);
}

/** Returns the error for a backup none of whose copies could be used: an integrity error when any copy was corrupted. */
export function noUsableCopy(entry: CatalogEntry, failures: string[], corrupted: boolean): IntegrityError | StorageError {
  const message = `no usable copy of backup ${entry.id}:\n  ${failures.join('\n  ')}`;
  if (corrupted) {
    return new IntegrityError(message, { code: 'restore.nocopy', object: entry.id, hint: 'Every copy is missing, unreadable or corrupted; restore an older backup (`drplan list`).' });
  }
  return new StorageError(message, { code: 'restore.unreadable', object: entry.id, hint: 'No copy could be read; check that the repositories are reachable, then run the restore again.' });
}

async function downloadChecked(copy: BackupCopy, file: string, signal?: AbortSignal): Promise<void> {
  const { storage } = copy;
  const meta = asLogical(copy.meta);
  const meter = new Meter({ sha256: true });
  const source = await storage.get(meta.dump.key, { signal });
  let readError: Error | undefined;
  source.once('error', (err: Error) => {
    readError = err;
  });
  let decompressError: unknown;
  await decompressToFile(pipeInto(source, meter), meta.compression.algorithm, file, signal).catch((err) => {
    decompressError = err;
    // A decompressor that stopped early leaves the download open; close it.
    source.destroy();
  });
  if (signal?.aborted) throw new AbortedError('interrupted', { code: 'restore.aborted' });
  if (readError) throw new StorageError(`repository ${storage.name}: reading ${meta.dump.key} failed: ${readError.message}`, { code: 'restore.read', object: meta.dump.key, cause: readError });
  checkDigest(copy, meta.dump.key, meter.bytes, meter.digest(), meta.dump.bytes, meta.dump.sha256, decompressError);
}

async function readGlobals(copy: BackupCopy, globals: StoredObject, signal?: AbortSignal): Promise<string> {
  const meter = new Meter({ sha256: true });
  const plain = decompress(pipeInto(await copy.storage.get(globals.key, { signal }), meter), copy.meta.compression.algorithm, signal);
  const [sql] = await Promise.all([text(plain.output), plain.done]);
  checkDigest(copy, globals.key, meter.bytes, meter.digest(), globals.bytes, globals.sha256, undefined);
  return sql;
}

/**
 * Checks the bytes read of a stored object against its metadata; `cause` is
 * the error of the step that consumed them, if any.
 */
export function checkDigest(copy: BackupCopy, key: string, bytes: number, actual: string, expectedBytes: number, expected: string, cause: unknown): void {
  if (cause instanceof NotFoundError) throw cause;
  // The stored bytes matched, so a failure after them (disk full, zstd missing) is not corruption.
  if (actual === expected && bytes === expectedBytes) {
    if (cause === undefined) return;
    throw cause;
  }
  throw new IntegrityError(
    `repository ${copy.storage.name}, object ${key}: SHA-256 mismatch: expected ${expected} (${expectedBytes} bytes), got ${actual} (${bytes} bytes)`,
    { code: 'integrity.sha256', object: key, cause },
  );
}
