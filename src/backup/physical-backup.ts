/**
 * Physical backup of a database's whole cluster: pg_basebackup's tar stream
 * compressed and hashed on its way to every repository at once, with
 * backup_label and backup_manifest read out of the stream as it passes.
 * The metadata is written last, and only once the WAL segment that ends the
 * backup is archived in every repository, because a base backup without that
 * WAL cannot be restored.
 */
import { hostname } from 'node:os';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import type { PlanContext } from '../context.js';
import { IntegrityError, StorageError } from '../errors.js';
import { assertArchiving, backupSegments, parseBackupLabel, parseManifestWalRange, readWalFacts, scanBaseBackup, startBaseBackup, type ScannedBaseBackup, type WalFacts } from '../postgres/basebackup.js';
import { connect, connectionTarget, type ConnectionTarget } from '../postgres/connection.js';
import { serverInfo, type ServerInfo } from '../postgres/server.js';
import { findTool, type PgTool } from '../postgres/tools.js';
import type { Storage } from '../storage/storage.js';
import { parseDuration } from '../util/duration.js';
import { Meter, pipeInto, Tee } from '../util/streams.js';
import { walKey } from '../wal/layout.js';
import { DRPLAN_VERSION } from '../version.js';
import { checkSize, checkStoredSizes, commitMetadata, failureToReport, interrupted, putCompressed, runBackup, settleParts, step, type BackupRequest, type BackupRun } from './backup-run.js';
import { compress, DEFAULT_LEVEL } from './compression.js';
import { physicalBackupKeys } from './layout.js';
import type { PhysicalMetadata, StoredObject } from './metadata.js';
import { deleteEverywhere, writeToAll } from './write-all.js';

/** Takes a physical base backup and returns its committed metadata. */
export async function runPhysicalBackup(context: PlanContext, request: BackupRequest): Promise<PhysicalMetadata> {
  return runBackup(context, request, (run) => backupLocked(context, request, run));
}

interface SourceInfo {
  client: pg.Client;
  server: ServerInfo;
  pgBaseBackup: PgTool;
  walFacts: WalFacts;
}

async function backupLocked(context: PlanContext, request: BackupRequest, run: BackupRun): Promise<PhysicalMetadata> {
  const { storages, plan } = context;
  const database = request.database.name;
  const keys = physicalBackupKeys(run.area, database, run.id, plan.backup.compression);
  const target = connectionTarget(request.database.url);
  const source = await step('connect to database', () => inspectSource(target));
  run.log.info({ server: source.server.version, pgBaseBackup: source.pgBaseBackup.path }, 'physical backup started');

  try {
    const data = await step('stream base backup', () => streamBaseBackup(context, source, target, keys.archive, request, run));
    const wal = await step('read WAL position', async () => walPosition(data.scanned, source.walFacts));
    const manifest = await step('store manifest', () => putCompressed(context, keys.manifest, data.scanned.manifest!, request.signal));
    await step('wait for WAL archive', () => waitForArchivedSegment(context, database, wal.lastSegment, wal.stopLsn, request.signal));
    const flags = await step('check size', () => checkSize(context, database, 'physical', data.stored.bytes));
    for (const flag of flags) run.log.warn({ bytes: data.stored.bytes, flag: flag.code }, flag.message);
    const meta = buildMetadata(context, request, run, source, data, manifest, wal);
    if (flags.length > 0) meta.flags = flags;
    await step('commit metadata', () => commitMetadata(storages, run, keys.meta, meta, request.signal));
    run.log.info({ bytes: meta.storedBytes, durationMs: meta.durationMs, stopLsn: wal.stopLsn }, 'backup committed');
    return meta;
  } catch (err) {
    await deleteEverywhere(storages, [keys.meta, keys.archive, keys.manifest], run.log);
    throw failureToReport(err, request.signal);
  } finally {
    await source.client.end().catch(() => undefined);
  }
}

/** Connects, checks that the server archives its WAL, and finds the matching pg_basebackup. */
async function inspectSource(target: ConnectionTarget): Promise<SourceInfo> {
  const client = await connect(target);
  try {
    const server = await serverInfo(client);
    await assertArchiving(client, target.endpoint);
    const walFacts = await readWalFacts(client);
    const pgBaseBackup = await findTool('pg_basebackup', server.major, server.version);
    return { client, server, pgBaseBackup, walFacts };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

interface StreamedBackup {
  scanned: ScannedBaseBackup & { manifest: Buffer };
  rawBytes: number;
  stored: StoredObject;
}

/**
 * Runs pg_basebackup and sends its tar stream two ways: through compression
 * and SHA-256 to every repository, and through a tar parser that keeps
 * backup_label and backup_manifest. Nothing of the backup touches local disk.
 */
async function streamBaseBackup(context: PlanContext, source: SourceInfo, target: ConnectionTarget, key: string, request: BackupRequest, run: BackupRun): Promise<StreamedBackup> {
  // One failure (pg_basebackup killed, a repository down) must stop every
  // other part, and cleanup may start only once no write is still in flight.
  const controller = new AbortController();
  const stop = () => controller.abort(request.signal.reason);
  request.signal.addEventListener('abort', stop, { once: true });
  const archiveWait = stallTimer(context, source.client, controller);

  const basebackup = startBaseBackup(source.pgBaseBackup, target, { label: `drplan ${run.id}`, signal: controller.signal });
  const raw = new Meter({}, request.onProgress);
  const tee = new Tee(2);
  const [toRepositories, toScanner] = [tee.branches[0]!, tee.branches[1]!];
  const compressed = compress(toRepositories, context.plan.backup.compression, context.plan.backup.compressionLevel, controller.signal);
  const stored = new Meter({ sha256: true });
  const parts = [
    scanBaseBackup(toScanner, archiveWait.start),
    writeToAll(context.storages, key, pipeInto(compressed.output, stored), controller.signal, run.log),
    pipeline(pipeInto(basebackup.stdout, raw), tee),
    basebackup.done,
    compressed.done,
  ] as const;
  const { results, failed, firstError } = await settleParts(parts, controller);
  archiveWait.clear();
  request.signal.removeEventListener('abort', stop);
  if (failed) throw failureToReport(controller.signal.reason instanceof StorageError ? controller.signal.reason : firstError, request.signal);

  const scanned = (results[0] as PromiseFulfilledResult<ScannedBaseBackup>).value;
  checkStoredSizes(context.storages, (results[1] as PromiseFulfilledResult<Awaited<(typeof parts)[1]>>).value, key, stored.bytes);
  if (!scanned.backupLabel || !scanned.manifest) {
    const missing = scanned.backupLabel ? 'backup_manifest' : 'backup_label';
    throw new IntegrityError(`pg_basebackup's tar stream has no ${missing}`, { code: 'backup.incomplete', object: missing, hint: 'Use pg_basebackup of PostgreSQL 13 or newer, which sends a manifest.' });
  }
  return { scanned: { ...scanned, manifest: scanned.manifest }, rawBytes: raw.bytes, stored: { key, bytes: stored.bytes, sha256: stored.digest() } };
}

/**
 * Bounds the time between the last data file (global/pg_control) and the end
 * of pg_basebackup. In that time the server waits until the WAL segment that
 * ends the backup is archived, and with a broken archive_command it would
 * wait forever.
 */
function stallTimer(context: PlanContext, client: pg.Client, controller: AbortController) {
  const timeoutMs = parseDuration(context.plan.backup.archiveTimeout);
  let timer: NodeJS.Timeout | undefined;
  const fire = async () => {
    const { rows } = await client
      .query<{ failed: string | null }>('SELECT last_failed_wal AS failed FROM pg_stat_archiver')
      .catch(() => ({ rows: [] as { failed: string | null }[] }));
    const failed = rows[0]?.failed ? `; the archiver last failed on ${rows[0].failed}` : '';
    controller.abort(
      new StorageError(`timed out after ${context.plan.backup.archiveTimeout} waiting for PostgreSQL to archive the WAL segment that ends the backup${failed}`, {
        code: 'backup.wal_timeout',
        hint: 'Check archive_command (drplan wal push --database NAME %p) and the server log; raise backup.archiveTimeout if archiving is only slow.',
      }),
    );
  };
  return {
    start: () => {
      timer ??= setTimeout(() => void fire(), timeoutMs);
    },
    clear: () => clearTimeout(timer),
  };
}

/** Fills the metadata's WAL fields from backup_label, backup_manifest and the server. */
function walPosition(scanned: StreamedBackup['scanned'], facts: WalFacts): PhysicalMetadata['wal'] {
  const label = parseBackupLabel(scanned.backupLabel!.toString('utf8'));
  const range = parseManifestWalRange(scanned.manifest);
  const segments = backupSegments(label.startLsn, range.endLsn, label.timeline, range.timeline, facts.walSegmentSize);
  return { systemIdentifier: facts.systemIdentifier, timeline: label.timeline, startLsn: label.startLsn, stopLsn: range.endLsn, ...segments, walSegmentSize: facts.walSegmentSize };
}

const POLL_MS = 250;

/**
 * Waits until `segment` is archived in every repository, under any
 * compression, so that a change of the plan's compression between the
 * archiving and the backup does not matter.
 */
async function waitForArchivedSegment(context: PlanContext, database: string, segment: string, stopLsn: string, signal: AbortSignal): Promise<void> {
  const timeout = context.plan.backup.archiveTimeout;
  const deadline = Date.now() + parseDuration(timeout);
  const keys = (['zstd', 'gzip', 'none'] as const).map((compression) => walKey(database, segment, compression));
  let missing: Storage[] = context.storages;
  for (;;) {
    const found = await Promise.all(missing.map(async (storage) => (await Promise.all(keys.map((key) => storage.stat(key)))).some(Boolean)));
    missing = missing.filter((_, index) => !found[index]);
    if (missing.length === 0) return;
    if (signal.aborted) throw interrupted();
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new StorageError(
    `WAL segment ${segment}, which contains the backup's stop LSN ${stopLsn}, is still missing from repository ${missing.map((s) => s.name).join(', ')} after ${timeout}`,
    {
      code: 'backup.wal_missing',
      object: walKey(database, segment, context.plan.backup.compression),
      hint: "Check the server's archive_command (it should run `drplan wal push --database NAME %p` with this plan) and its log; raise backup.archiveTimeout if archiving is only slow.",
    },
  );
}

function buildMetadata(context: PlanContext, request: BackupRequest, run: BackupRun, source: SourceInfo, data: StreamedBackup, manifest: StoredObject, wal: PhysicalMetadata['wal']): PhysicalMetadata {
  const finished = (request.now ?? (() => new Date()))();
  const compression = context.plan.backup.compression;
  return {
    formatVersion: 1,
    id: run.id,
    database: request.database.name,
    kind: 'physical',
    origin: run.origin,
    startedAt: run.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - run.started.getTime(),
    server: { version: source.server.version, major: source.server.major },
    tool: { program: 'pg_basebackup', version: source.pgBaseBackup.version },
    drplanVersion: DRPLAN_VERSION,
    format: 'tar',
    compression: { algorithm: compression, level: context.plan.backup.compressionLevel ?? DEFAULT_LEVEL[compression] },
    rawBytes: data.rawBytes,
    storedBytes: data.stored.bytes,
    sha256: data.stored.sha256,
    archive: data.stored,
    manifest,
    wal,
    repositories: context.storages.map((s) => s.name),
    host: hostname(),
  };
}
