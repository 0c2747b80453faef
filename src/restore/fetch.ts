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
import { AbortedError, IntegrityError, NotFoundError } from '../errors.js';
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
  for (const copy of entry.copies) {
    const repoLog = log.child({ repository: copy.storage.name });
    try {
      const archive = path.join(dir, 'archive.dump');
      await downloadChecked(copy, archive, signal);
      const globalsSql = copy.meta.globals ? await readGlobals(copy, signal) : undefined;
      repoLog.info({ key: copy.meta.dump.key, bytes: copy.meta.dump.bytes }, 'backup copy verified');
      return { archive, globalsSql, copy, rejected: failures, dispose };
    } catch (err) {
      if (signal?.aborted) {
        await dispose();
        throw new AbortedError('restore interrupted while reading the backup', { code: 'restore.aborted', cause: err });
      }
      repoLog.warn({ reason: (err as Error).message }, 'copy unusable, trying the next repository');
      failures.push(`${copy.storage.name}: ${(err as Error).message}`);
    }
  }
  await dispose();
  throw new IntegrityError(`no good copy of backup ${entry.id}:\n  ${failures.join('\n  ')}`, {
    code: 'restore.nocopy',
    object: entry.id,
    hint: 'Every repository copy is missing or corrupted; restore an older backup (`drplan list`).',
  });
}

async function downloadChecked(copy: BackupCopy, file: string, signal?: AbortSignal): Promise<void> {
  const { storage, meta } = copy;
  const meter = new Meter({ sha256: true });
  const stored = pipeInto(await storage.get(meta.dump.key, { signal }), meter);
  let decompressError: unknown;
  await decompressToFile(stored, meta.compression.algorithm, file, signal).catch((err) => {
    decompressError = err;
  });
  if (signal?.aborted) throw new AbortedError('interrupted', { code: 'restore.aborted' });
  checkDigest(copy, meta.dump.key, meter.bytes, meter.digest(), meta.dump.bytes, meta.dump.sha256, decompressError);
}

async function readGlobals(copy: BackupCopy, signal?: AbortSignal): Promise<string> {
  const globals = copy.meta.globals!;
  const meter = new Meter({ sha256: true });
  const plain = decompress(pipeInto(await copy.storage.get(globals.key, { signal }), meter), copy.meta.compression.algorithm, signal);
  const [sql] = await Promise.all([text(plain.output), plain.done]);
  checkDigest(copy, globals.key, meter.bytes, meter.digest(), globals.bytes, globals.sha256, undefined);
  return sql;
}

function checkDigest(copy: BackupCopy, key: string, bytes: number, actual: string, expectedBytes: number, expected: string, cause: unknown): void {
  if (actual === expected && bytes === expectedBytes && cause === undefined) return;
  if (cause instanceof NotFoundError) throw cause;
  throw new IntegrityError(
    `repository ${copy.storage.name}, object ${key}: SHA-256 mismatch: expected ${expected} (${expectedBytes} bytes), got ${actual} (${bytes} bytes)`,
    { code: 'integrity.sha256', object: key, cause },
  );
}
