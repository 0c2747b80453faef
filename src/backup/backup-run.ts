/**
 * The steps every database backup shares, whatever its kind: the database
 * lock, the choice of id, the size check against earlier backups of the same
 * kind, the failure event, and the metadata written last as the commit point.
 */
import { Readable } from 'node:stream';
import type { Compression, DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { AbortedError, IntegrityError, UsageError } from '../errors.js';
import { acquireDatabaseLock, type HeldLock } from '../lock/database-lock.js';
import type { Logger } from '../logging.js';
import { recordFailure } from '../status/events.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { parseDuration } from '../util/duration.js';
import { Meter, pipeInto } from '../util/streams.js';
import { readCatalog } from './catalog.js';
import { compress } from './compression.js';
import { AREAS, assertValidBackupId, defaultBackupId, keysOfAnyKind, type Area } from './layout.js';
import { serializeMetadata, type BackupFlag, type BackupMetadata, type StoredObject } from './metadata.js';
import { sizeFlags } from './sanity.js';
import { putOnAll } from './write-all.js';

export interface BackupRequest {
  database: DatabaseConfig;
  /** A chosen name; the default is `backup_YYYYMMDD_HHMMSS` (UTC). */
  name?: string;
  origin?: BackupMetadata['origin'];
  signal: AbortSignal;
  /** Called with the number of raw bytes read from the backup program so far. */
  onProgress?: (rawBytes: number) => void;
  now?: () => Date;
}

/** The state of a backup run once it holds the lock and has its id. */
export interface BackupRun {
  id: string;
  origin: BackupMetadata['origin'];
  area: Area;
  started: Date;
  lock: HeldLock;
  log: Logger;
}

/**
 * Takes the database lock, chooses the id and runs `body` with them. A
 * failure is recorded as a failure event (for status and alerts) and thrown.
 */
export async function runBackup<T>(context: PlanContext, request: BackupRequest, body: (run: BackupRun) => Promise<T>): Promise<T> {
  const { plan, storages } = context;
  const database = request.database.name;
  const origin = request.origin ?? (request.name ? 'manual' : 'scheduled');
  const log = context.log.child({ component: 'backup', database });
  if (request.name) assertValidBackupId(request.name);

  // A chosen name is checked before waiting for the lock so that a clash fails at once.
  await step('check repositories', () => checkRepositories(storages, database, request.name, plan.backup.compression));
  const lock = await step('lock database', () =>
    acquireDatabaseLock(storages, database, { purpose: 'backup', timeoutMs: parseDuration(plan.backup.lockTimeout), log, signal: request.signal }),
  );
  let id = request.name;
  try {
    // The default id and the start time are taken under the lock, so a run
    // that waited for another gets its own time and name.
    const named = await step('choose name', () => chooseId(context, request, origin));
    id = named.id;
    return await body({ ...named, origin, area: origin === 'scheduled' ? 'backups' : 'manual', lock, log: log.child({ backupId: named.id }) });
  } catch (err) {
    const event = { kind: 'backup' as const, database, backupId: id, at: new Date().toISOString(), message: (err as Error).message };
    await recordFailure(storages, event, log);
    throw err;
  } finally {
    await lock.release();
  }
}

const ID_ATTEMPTS = 3;

/**
 * Picks the backup id and start time. A default id names the second, so when
 * the previous backup of the same second already uses it, the next second is used.
 */
async function chooseId(context: PlanContext, request: BackupRequest, origin: BackupMetadata['origin']): Promise<{ id: string; started: Date }> {
  const now = request.now ?? (() => new Date());
  for (let attempt = 1; ; attempt++) {
    const started = now();
    const id = request.name ?? defaultBackupId(started, origin === 'pre_restore' ? 'pre_restore' : 'backup');
    try {
      await checkRepositories(context.storages, request.database.name, id, context.plan.backup.compression);
      return { id, started };
    } catch (err) {
      if (request.name || attempt >= ID_ATTEMPTS || !(err instanceof UsageError)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 10));
    }
  }
}

/**
 * Checks that every repository is usable and, given an id, has no backup of
 * that id in either area. Logical and physical backups share the metadata
 * key, so the check covers the objects of both kinds.
 */
async function checkRepositories(storages: Storage[], database: string, id: string | undefined, compression: Compression): Promise<void> {
  await Promise.all(storages.map((storage) => storage.check()));
  if (id === undefined) return;
  const keys = AREAS.flatMap((area) => keysOfAnyKind(area, database, id, compression));
  for (const storage of storages) {
    for (const key of keys) {
      if (!(await storage.stat(key))) continue;
      throw new UsageError(`a backup named ${id} already exists in repository ${storage.name}`, {
        code: 'backup.exists',
        object: key,
        hint: 'Choose another --name; drplan never overwrites a backup.',
      });
    }
  }
}

/** Runs one named step; a failure's message starts with the step's name. */
export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && !err.message.startsWith('step ')) err.message = `step "${name}" failed: ${err.message}`;
    throw err;
  }
}

/**
 * Compares the stored size with the recent backups of the same database and
 * kind: a base backup of the whole cluster is not comparable with a dump of
 * one database.
 */
export async function checkSize(context: PlanContext, database: string, kind: BackupMetadata['kind'], storedBytes: number): Promise<BackupFlag[]> {
  const catalog = await readCatalog(context, database);
  // Flagged backups count too, so that after real growth the median catches up within a few runs.
  const recent = catalog.entries.filter((e) => e.meta.kind === kind && e.meta.origin !== 'pre_restore').map((e) => e.meta.storedBytes);
  return sizeFlags(storedBytes, recent);
}

/** Returns the error for a backup interrupted before its commit. */
export function interrupted(cause?: unknown): AbortedError {
  return new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted', cause });
}

/** Chooses the error to report: the user's interrupt wins over the errors it caused. */
export function failureToReport(firstError: unknown, signal: AbortSignal): unknown {
  if (signal.aborted && !(firstError instanceof AbortedError && firstError.code === 'backup.aborted')) return interrupted(firstError);
  return firstError;
}

/** Compresses a small object in memory and writes it to every repository; returns what the metadata records of it. */
export async function putCompressed(context: PlanContext, key: string, body: Buffer, signal: AbortSignal): Promise<StoredObject> {
  const meter = new Meter({ sha256: true });
  const compressed = compress(Readable.from([body]), context.plan.backup.compression, context.plan.backup.compressionLevel, signal);
  const chunks: Buffer[] = [];
  for await (const chunk of pipeInto(compressed.output, meter)) chunks.push(chunk as Buffer);
  await compressed.done;
  await putOnAll(context.storages, key, Buffer.concat(chunks), signal);
  return { key, bytes: meter.bytes, sha256: meter.digest() };
}

/** Writes the metadata on every repository once the lock is confirmed; this is the commit point. */
export async function commitMetadata(storages: Storage[], run: BackupRun, key: string, meta: BackupMetadata, signal: AbortSignal): Promise<void> {
  await run.lock.assertHeld();
  if (signal.aborted) throw new AbortedError('backup interrupted before commit; nothing was committed', { code: 'backup.aborted' });
  await putOnAll(storages, key, serializeMetadata(meta));
}

/**
 * Waits for the parallel parts of a streaming backup (reader, compressor,
 * uploads). The first failure aborts `controller`, so the other parts stop,
 * and is returned as the cause: the others' failures are usually its
 * consequences.
 */
export async function settleParts(parts: readonly Promise<unknown>[], controller: AbortController): Promise<{ results: PromiseSettledResult<unknown>[]; failed: boolean; firstError: unknown }> {
  let firstError: unknown;
  for (const part of parts) {
    part.catch((err: unknown) => {
      firstError ??= err;
      controller.abort(err);
    });
  }
  const results = await Promise.allSettled(parts);
  return { results, failed: results.some((r) => r.status === 'rejected'), firstError };
}

/** Checks that every repository has as many bytes of `key` as were written to it. */
export function checkStoredSizes(storages: Storage[], infos: ObjectInfo[], key: string, written: number): void {
  for (const [index, info] of infos.entries()) {
    if (info.size === written) continue;
    throw new IntegrityError(`repository ${storages[index]!.name} has ${info.size} bytes of ${key}, but ${written} were written`, { code: 'backup.size', object: key });
  }
}
