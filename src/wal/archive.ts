/**
 * Storing one WAL file on every repository, never replacing an archived copy.
 *
 * Beside each stored file sits a small checksum object (`<stored key>.sum`,
 * JSON) with the SHA-256 and size of the original, uncompressed bytes. A
 * second push of the same file name compares against it without downloading
 * and decompressing the stored copy, and `wal fetch` verifies the restored
 * bytes against it. The WAL file is written first and the checksum object
 * second, so a push interrupted between the two leaves a file without
 * checksum object. PostgreSQL retries the push until it gets exit 0, and that
 * retry decompresses the stored copy, hashes it and writes the missing
 * checksum object when the content matches.
 */
import type { Compression } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { IntegrityError, NotFoundError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Storage } from '../storage/storage.js';
import { compressBuffer, decompressBuffer, sha256 } from './codec.js';
import { assertWalFileName, walKey } from './layout.js';

/** Suffix of the checksum object stored beside each archived WAL file. */
export const CHECKSUM_SUFFIX = '.sum';

/** The content of a checksum object. */
export interface WalChecksum {
  formatVersion: 1;
  file: string;
  /** SHA-256 of the original, uncompressed file. */
  sha256: string;
  bytes: number;
  compression: Compression;
  storedBytes: number;
  archivedAt: string;
}

/** The result of storing a pushed file on one repository. */
export type StoreOutcome = 'stored' | 'already archived';

/** Returns the key of the checksum object of a stored WAL file. */
export function checksumKey(storedKey: string): string {
  return `${storedKey}${CHECKSUM_SUFFIX}`;
}

/**
 * Compresses `bytes` and stores them as `fileName` on every repository of the
 * plan. Resolves only when every repository has stored the file durably.
 * Otherwise rejects with the first failure, an IntegrityError when a
 * repository already has different content under that name.
 */
export async function archiveWalFile(context: PlanContext, database: string, fileName: string, bytes: Buffer): Promise<StoreOutcome[]> {
  assertWalFileName(fileName);
  const { compression, compressionLevel } = context.plan.backup;
  const started = Date.now();
  const stored = await compressBuffer(bytes, compression, compressionLevel);
  const checksum: WalChecksum = {
    formatVersion: 1,
    file: fileName,
    sha256: sha256(bytes),
    bytes: bytes.length,
    compression,
    storedBytes: stored.length,
    archivedAt: new Date().toISOString(),
  };
  const key = walKey(database, fileName, compression);
  const log = context.log.child({ component: 'wal', database, key });
  const results = await Promise.allSettled(context.storages.map((storage) => storeOnRepository(storage, key, stored, checksum, log)));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  const outcomes = results.map((r) => (r as PromiseFulfilledResult<StoreOutcome>).value);
  log.info({ bytes: bytes.length, storedBytes: stored.length, durationMs: Date.now() - started, outcomes }, 'WAL file archived');
  return outcomes;
}

/**
 * Stores one file on one repository unless it is there already. The stat
 * before the conditional write keeps an archived file safe on S3-compatible
 * stores that ignore If-None-Match, as long as one archiver pushes each name
 * (PostgreSQL runs archive_command for one file at a time).
 */
async function storeOnRepository(storage: Storage, key: string, stored: Buffer, checksum: WalChecksum, log: Logger): Promise<StoreOutcome> {
  if (!(await storage.stat(key)) && (await storage.putIfAbsent(key, stored))) {
    await storage.put(checksumKey(key), serializeChecksum(checksum));
    log.debug({ repository: storage.name }, 'WAL file stored');
    return 'stored';
  }
  const existing = await archivedChecksum(storage, key, checksum.compression, log);
  if (existing.sha256 !== checksum.sha256) {
    throw new IntegrityError(
      `WAL file ${checksum.file} is already archived in repository ${storage.name} with different content: archived sha256 ${existing.sha256}, pushed sha256 ${checksum.sha256}`,
      {
        code: 'wal.conflict',
        object: key,
        hint: 'Two servers may be archiving into the same database name, or the server was restored without a new timeline. Give each server its own --database name; never delete the archived copy to make the push pass.',
      },
    );
  }
  log.info({ repository: storage.name, file: checksum.file }, 'WAL file was already archived with identical content');
  return 'already archived';
}

/** Reads the checksum of an archived file, rebuilding a missing checksum object from the stored copy. */
async function archivedChecksum(storage: Storage, key: string, compression: Compression, log: Logger): Promise<WalChecksum> {
  const recorded = await readChecksum(storage, key);
  if (recorded) return recorded;
  const original = await decompressBuffer(await readObject(storage, key), compression);
  const rebuilt: WalChecksum = {
    formatVersion: 1,
    file: key.slice(key.lastIndexOf('/') + 1),
    sha256: sha256(original),
    bytes: original.length,
    compression,
    storedBytes: (await storage.stat(key))?.size ?? 0,
    archivedAt: new Date().toISOString(),
  };
  log.warn({ repository: storage.name }, 'archived WAL file had no checksum object; computed it from the stored copy');
  await storage.put(checksumKey(key), serializeChecksum(rebuilt));
  return rebuilt;
}

/** Returns the checksum object of a stored WAL file, or undefined when there is none. */
export async function readChecksum(storage: Storage, storedKey: string): Promise<WalChecksum | undefined> {
  let body: Buffer;
  try {
    body = await readObject(storage, checksumKey(storedKey));
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(body.toString('utf8')) as WalChecksum;
    if (typeof parsed.sha256 === 'string' && /^[0-9a-f]{64}$/.test(parsed.sha256)) return parsed;
  } catch {
    // Reported below with the key.
  }
  throw new IntegrityError(`repository ${storage.name}: checksum object ${checksumKey(storedKey)} is unreadable`, {
    code: 'wal.checksum_object',
    object: checksumKey(storedKey),
  });
}

/** Reads a whole object into memory; WAL files and checksum objects are small. */
export async function readObject(storage: Storage, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.get(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function serializeChecksum(checksum: WalChecksum): Buffer {
  return Buffer.from(`${JSON.stringify(checksum)}\n`);
}
