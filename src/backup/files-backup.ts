/**
 * File-set backup: the configured paths as a tar stream, compressed and
 * hashed on the way to every repository at once, with the metadata written
 * last, as for a database backup.
 */
import { hostname } from 'node:os';
import { pack as createPack } from 'tar-stream';
import type { PlanContext } from '../context.js';
import { AbortedError, NotFoundError, UsageError } from '../errors.js';
import { acquireFilesetLock, type HeldLock } from '../lock/database-lock.js';
import type { Logger } from '../logging.js';
import { recordFailure } from '../status/events.js';
import type { ObjectInfo } from '../storage/storage.js';
import { parseDuration } from '../util/duration.js';
import { Meter, pipeInto } from '../util/streams.js';
import { DRPLAN_VERSION } from '../version.js';
import { compress, DEFAULT_LEVEL } from './compression.js';
import { checkFilesetPaths, packFileset, type ArchiveSummary, type FilesetSource } from './files-archive.js';
import { assertValidBackupId, defaultBackupId, filesKeys } from './layout.js';
import { serializeMetadata, type FilesMetadata } from './metadata.js';
import { deleteEverywhere, putOnAll, writeToAll } from './write-all.js';
import { checkStoredSizes, settleParts } from './backup-run.js';

export interface FilesBackupRequest {
  /** The file set's name in the plan, or its configuration. */
  fileset: string | FilesetSource;
  /** A free-form tag such as `deploy-1234`, recorded in the metadata. */
  label?: string;
  /** A chosen name; the default is `files_YYYYMMDD_HHMMSS` (UTC). */
  name?: string;
  origin?: 'scheduled' | 'manual';
  signal: AbortSignal;
  now?: () => Date;
}

/** Labels: letters, digits and a few separators, so they are safe in logs, file names and shells. */
const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$/;

/** Rejects a label that is empty, too long or contains characters other than letters, digits and `_ . : @ + -`. */
export function assertValidLabel(label: string): void {
  if (LABEL_PATTERN.test(label)) return;
  throw new UsageError(`invalid --label ${JSON.stringify(label)}`, {
    code: 'backup.label',
    object: label,
    hint: 'Use 1-128 letters, digits, "_", ".", ":", "@", "+" or "-" starting with a letter or digit, for example deploy-1234.',
  });
}

/** Finds a file set of the plan by name. */
export function selectFileset(context: PlanContext, name: string): FilesetSource {
  const filesets = context.plan.files ?? [];
  const found = filesets.find((f) => f.name === name);
  if (found) return found;
  throw new NotFoundError(`file set ${JSON.stringify(name)} is not in the plan`, {
    code: 'plan.fileset',
    object: name,
    hint: filesets.length > 0 ? `Known file sets: ${filesets.map((f) => f.name).join(', ')}.` : 'Add it under `files:` in the plan.',
  });
}

/** Takes a backup of one file set and returns its committed metadata. */
export async function runFilesBackup(context: PlanContext, request: FilesBackupRequest): Promise<FilesMetadata> {
  const { plan, storages } = context;
  const fileset = typeof request.fileset === 'string' ? selectFileset(context, request.fileset) : request.fileset;
  const origin = request.origin ?? (request.name ? 'manual' : 'scheduled');
  const log = context.log.child({ component: 'backup', fileset: fileset.name });
  if (request.name) assertValidBackupId(request.name);
  if (request.label !== undefined) assertValidLabel(request.label);
  await checkFilesetPaths(fileset);

  await checkRepositories(context, fileset.name, request.name);
  const lock = await acquireFilesetLock(storages, fileset.name, { purpose: 'backup', timeoutMs: parseDuration(plan.backup.lockTimeout), log, signal: request.signal });
  let id = request.name;
  try {
    const named = await chooseId(context, fileset.name, request);
    id = named.id;
    return await backupLocked(context, fileset, request, { ...named, origin, lock, log: log.child({ backupId: named.id }) });
  } catch (err) {
    const event = { kind: 'backup' as const, database: fileset.name, fileset: true, backupId: id, at: new Date().toISOString(), message: (err as Error).message };
    await recordFailure(storages, event, log);
    throw err;
  } finally {
    await lock.release();
  }
}

interface BackupNames {
  id: string;
  started: Date;
  keys: ReturnType<typeof filesKeys>;
  origin: 'scheduled' | 'manual';
  lock: HeldLock;
  log: Logger;
}

const ID_ATTEMPTS = 3;

/** Picks the id and start time under the lock; a default id already taken in this second moves to the next second. */
async function chooseId(context: PlanContext, fileset: string, request: FilesBackupRequest): Promise<{ id: string; started: Date; keys: ReturnType<typeof filesKeys> }> {
  const now = request.now ?? (() => new Date());
  for (let attempt = 1; ; attempt++) {
    const started = now();
    const id = request.name ?? defaultBackupId(started, 'files');
    try {
      await checkRepositories(context, fileset, id);
      return { id, started, keys: filesKeys(fileset, id, context.plan.backup.compression) };
    } catch (err) {
      if (request.name || attempt >= ID_ATTEMPTS || !(err instanceof UsageError)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 10));
    }
  }
}

/** Checks that every repository is usable and, given an id, has no backup of that id for the file set. */
async function checkRepositories(context: PlanContext, fileset: string, id: string | undefined): Promise<void> {
  await Promise.all(context.storages.map((storage) => storage.check()));
  if (id === undefined) return;
  const keys = filesKeys(fileset, id, context.plan.backup.compression);
  for (const storage of context.storages) {
    for (const key of [keys.meta, keys.archive]) {
      if (!(await storage.stat(key))) continue;
      throw new UsageError(`a backup named ${id} of file set ${fileset} already exists in repository ${storage.name}`, {
        code: 'backup.exists',
        object: key,
        hint: 'Choose another --name; drplan never overwrites a backup.',
      });
    }
  }
}

async function backupLocked(context: PlanContext, fileset: FilesetSource, request: FilesBackupRequest, names: BackupNames): Promise<FilesMetadata> {
  const { storages } = context;
  const { keys, lock, log } = names;
  log.info({ paths: fileset.paths }, 'file-set backup started');
  try {
    const data = await streamArchive(context, fileset, keys.archive, request.signal, log);
    const meta = buildMetadata(context, fileset, request, names, data);
    await lock.assertHeld();
    if (request.signal.aborted) throw new AbortedError('backup interrupted before commit; nothing was committed', { code: 'backup.aborted' });
    // The metadata is the commit point, so it is written only once every archive copy is complete.
    await putOnAll(storages, keys.meta, serializeMetadata(meta));
    log.info({ bytes: meta.storedBytes, files: meta.fileCount, durationMs: meta.durationMs }, 'file-set backup committed');
    return meta;
  } catch (err) {
    await deleteEverywhere(storages, [keys.meta, keys.archive], log);
    throw request.signal.aborted && !(err instanceof AbortedError) ? new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted', cause: err }) : err;
  }
}

interface StreamedArchive {
  summary: ArchiveSummary;
  rawBytes: number;
  storedBytes: number;
  sha256: string;
}

/** Streams the tar through compression and SHA-256 to every repository; any failure stops every part. */
async function streamArchive(context: PlanContext, fileset: FilesetSource, key: string, signal: AbortSignal, log: Logger): Promise<StreamedArchive> {
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  signal.addEventListener('abort', stop, { once: true });

  const pack = createPack();
  const raw = new Meter();
  const compressed = compress(pipeInto(pack as unknown as NodeJS.ReadableStream, raw), context.plan.backup.compression, context.plan.backup.compressionLevel, controller.signal);
  const stored = new Meter({ sha256: true });
  const walk = packFileset(fileset, pack, log, controller.signal);
  const parts = [walk, writeToAll(context.storages, key, pipeInto(compressed.output, stored), controller.signal, log), compressed.done] as const;
  controller.signal.addEventListener('abort', () => pack.destroy(controller.signal.reason as Error), { once: true });
  const { results, failed, firstError } = await settleParts(parts, controller);
  signal.removeEventListener('abort', stop);
  if (failed) {
    throw signal.aborted ? new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted', cause: firstError }) : firstError;
  }
  checkStoredSizes(context.storages, (results[1] as PromiseFulfilledResult<ObjectInfo[]>).value, key, stored.bytes);
  return { summary: (results[0] as PromiseFulfilledResult<ArchiveSummary>).value, rawBytes: raw.bytes, storedBytes: stored.bytes, sha256: stored.digest() };
}

function buildMetadata(context: PlanContext, fileset: FilesetSource, request: FilesBackupRequest, names: BackupNames, data: StreamedArchive): FilesMetadata {
  const finished = (request.now ?? (() => new Date()))();
  const compression = context.plan.backup.compression;
  return {
    formatVersion: 1,
    id: names.id,
    kind: 'files',
    fileset: fileset.name,
    origin: names.origin,
    startedAt: names.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - names.started.getTime(),
    drplanVersion: DRPLAN_VERSION,
    format: 'tar',
    compression: { algorithm: compression, level: context.plan.backup.compressionLevel ?? DEFAULT_LEVEL[compression] },
    rawBytes: data.rawBytes,
    storedBytes: data.storedBytes,
    sha256: data.sha256,
    archive: { key: names.keys.archive, bytes: data.storedBytes, sha256: data.sha256 },
    paths: fileset.paths,
    fileCount: data.summary.fileCount,
    fileBytes: data.summary.fileBytes,
    entries: data.summary.entries,
    repositories: context.storages.map((s) => s.name),
    host: hostname(),
    ...(request.label !== undefined ? { label: request.label } : {}),
  };
}
