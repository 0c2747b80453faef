/**
 * Logical backup of one database: pg_dump streamed through compression and
 * SHA-256 to every repository at once, with the metadata written last.
 */
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type pg from 'pg';
import type { Compression, DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { AbortedError, IntegrityError, UsageError } from '../errors.js';
import { connect, connectionTarget, type ConnectionTarget } from '../postgres/connection.js';
import { dumpGlobals, startDump } from '../postgres/dump.js';
import { countTableRows, databaseProperties, serverInfo, type ServerInfo, type TableRowCount } from '../postgres/server.js';
import { findTool, type PgTool } from '../postgres/tools.js';
import { acquireDatabaseLock, type HeldLock } from '../lock/database-lock.js';
import type { Logger } from '../logging.js';
import { parseDuration } from '../util/duration.js';
import { recordFailure } from '../status/events.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { Meter, pipeInto } from '../util/streams.js';
import { DRPLAN_VERSION } from '../version.js';
import { compress, DEFAULT_LEVEL } from './compression.js';
import { AREAS, assertValidBackupId, backupKeys, defaultBackupId, type Area } from './layout.js';
import { readCatalog } from './catalog.js';
import { serializeMetadata, type BackupFlag, type BackupMetadata } from './metadata.js';
import { sizeFlags } from './sanity.js';
import { deleteEverywhere, putOnAll, writeToAll } from './write-all.js';

export interface BackupRequest {
  database: DatabaseConfig;
  /** A chosen name; the default is `backup_YYYYMMDD_HHMMSS` (UTC). */
  name?: string;
  origin?: BackupMetadata['origin'];
  signal: AbortSignal;
  /** Called with the number of raw bytes read from pg_dump so far. */
  onProgress?: (rawBytes: number) => void;
  now?: () => Date;
}

/** Takes a logical backup and returns its committed metadata. */
export async function runLogicalBackup(context: PlanContext, request: BackupRequest): Promise<BackupMetadata> {
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
    return await backupLocked(context, request, { ...named, origin, lock, log: log.child({ backupId: named.id }) });
  } catch (err) {
    const event = { kind: 'backup' as const, database, backupId: id, at: new Date().toISOString(), message: (err as Error).message };
    await recordFailure(storages, event, log);
    throw err;
  } finally {
    await lock.release();
  }
}

interface BackupNames {
  id: string;
  origin: BackupMetadata['origin'];
  started: Date;
  keys: ReturnType<typeof backupKeys>;
  lock: HeldLock;
  log: Logger;
}

const ID_ATTEMPTS = 3;

/**
 * Picks the backup id and start time. A default id names the second, so when
 * the previous backup of the same second already uses it, the next second is used.
 */
async function chooseId(context: PlanContext, request: BackupRequest, origin: BackupMetadata['origin']): Promise<Omit<BackupNames, 'origin' | 'log' | 'lock'>> {
  const compression = context.plan.backup.compression;
  const area: Area = origin === 'scheduled' ? 'backups' : 'manual';
  const now = request.now ?? (() => new Date());
  for (let attempt = 1; ; attempt++) {
    const started = now();
    const id = request.name ?? defaultBackupId(started, origin === 'pre_restore' ? 'pre_restore' : 'backup');
    try {
      await checkRepositories(context.storages, request.database.name, id, compression);
      return { id, started, keys: backupKeys(area, request.database.name, id, compression) };
    } catch (err) {
      if (request.name || attempt >= ID_ATTEMPTS || !(err instanceof UsageError)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 10));
    }
  }
}

/** Runs the backup proper while the caller holds the database lock. */
async function backupLocked(context: PlanContext, request: BackupRequest, names: BackupNames): Promise<BackupMetadata> {
  const { plan, storages } = context;
  const { id, origin, started, keys, lock, log } = names;
  const compression = plan.backup.compression;
  const target = connectionTarget(request.database.url);
  const source = await step('connect to database', () => inspectSource(target));
  log.info({ server: source.server.version, pgDump: source.pgDump.path }, 'backup started');

  try {
    const globals = await step('capture globals', () => captureGlobals(context, source, target, keys.globals, request.signal));
    const data = await step('dump database', () => streamDump(context, source, target, keys.dump, request));
    const level = plan.backup.compressionLevel ?? DEFAULT_LEVEL[compression];
    const flags = await step('check size', () => checkSize(context, request.database.name, data.storedBytes));
    for (const flag of flags) log.warn({ bytes: data.storedBytes, flag: flag.code }, flag.message);
    const meta = buildMetadata({ id, origin, request, started, source, data, globals, compression, level, storages });
    if (flags.length > 0) meta.flags = flags;
    await step('commit metadata', async () => {
      await lock.assertHeld();
      await commitMetadata(storages, keys.meta, meta, request.signal);
    });
    log.info({ bytes: meta.storedBytes, durationMs: meta.durationMs }, 'backup committed');
    return meta;
  } catch (err) {
    await deleteEverywhere(storages, [keys.meta, keys.dump, keys.globals], log);
    throw request.signal.aborted && !(err instanceof AbortedError) ? new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted', cause: err }) : err;
  } finally {
    await source.client.end().catch(() => undefined);
  }
}

/** Compares the stored size with the recent good backups of the same database. */
async function checkSize(context: PlanContext, database: string, storedBytes: number): Promise<BackupFlag[]> {
  const catalog = await readCatalog(context, database);
  // Flagged backups count too, so that after real growth the median catches up within a few runs.
  const recent = catalog.entries.filter((e) => e.meta.origin !== 'pre_restore').map((e) => e.meta.storedBytes);
  return sizeFlags(storedBytes, recent);
}

interface SourceInfo {
  client: pg.Client;
  server: ServerInfo;
  pgDump: PgTool;
  pgDumpAll: PgTool;
  owner: string;
  encoding: string;
}

/** Runs one named step; a failure's message starts with the step's name. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && !err.message.startsWith('step ')) err.message = `step "${name}" failed: ${err.message}`;
    throw err;
  }
}

/** Checks that every repository is usable and, given an id, has no backup of that id in either area. */
async function checkRepositories(storages: Storage[], database: string, id: string | undefined, compression: Compression): Promise<void> {
  await Promise.all(storages.map((storage) => storage.check()));
  if (id === undefined) return;
  const keys = AREAS.flatMap((area) => {
    const k = backupKeys(area, database, id, compression);
    return [k.meta, k.dump];
  });
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

async function inspectSource(target: ConnectionTarget): Promise<SourceInfo> {
  const client = await connect(target);
  try {
    const server = await serverInfo(client);
    const properties = await databaseProperties(client);
    const pgDump = await findTool('pg_dump', server.major, server.version);
    const pgDumpAll = await findTool('pg_dumpall', server.major, server.version);
    return { client, server, pgDump, pgDumpAll, ...properties };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

async function captureGlobals(context: PlanContext, source: SourceInfo, target: ConnectionTarget, key: string, signal: AbortSignal) {
  const dump = await dumpGlobals(source.pgDumpAll, target, signal);
  const meter = new Meter({ sha256: true });
  const compressed = compress(Readable.from([dump.sql]), context.plan.backup.compression, context.plan.backup.compressionLevel, signal);
  const chunks: Buffer[] = [];
  for await (const chunk of pipeInto(compressed.output, meter)) chunks.push(chunk as Buffer);
  await compressed.done;
  await putOnAll(context.storages, key, Buffer.concat(chunks), signal);
  return { key, bytes: meter.bytes, sha256: meter.digest(), rolePasswords: dump.rolePasswords };
}

/**
 * Exports a snapshot, starts pg_dump on it and counts every table's rows in
 * the same snapshot while the dump streams to the repositories.
 */
async function streamDump(context: PlanContext, source: SourceInfo, target: ConnectionTarget, key: string, request: BackupRequest) {
  const { client } = source;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
  if (request.signal.aborted) throw new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted' });

  // One failure (pg_dump killed, a repository down) must stop every other
  // part, and cleanup may start only once no write is still in flight.
  const controller = new AbortController();
  const stop = () => controller.abort(request.signal.reason);
  request.signal.addEventListener('abort', stop, { once: true });
  const log = context.log.child({ component: 'backup', database: request.database.name });
  const dump = startDump(source.pgDump, target, { snapshot: rows[0]!.snapshot, signal: controller.signal });
  const raw = new Meter({}, request.onProgress);
  const compressed = compress(pipeInto(dump.stdout, raw), context.plan.backup.compression, context.plan.backup.compressionLevel, controller.signal);
  const stored = new Meter({ sha256: true });
  const parts = [
    countTableRows(client),
    writeToAll(context.storages, key, pipeInto(compressed.output, stored), controller.signal, log),
    dump.done,
    compressed.done,
  ] as const;
  // The first failure is the cause; the others are usually its consequences.
  let firstError: unknown;
  for (const part of parts) {
    part.catch((err: unknown) => {
      firstError ??= err;
      controller.abort(err);
    });
  }
  // A row count waiting on a lock cannot be cancelled by a signal; closing
  // the connection ends it (and the snapshot transaction with it).
  controller.signal.addEventListener('abort', () => void client.end().catch(() => undefined), { once: true });
  const results = await Promise.allSettled(parts);
  request.signal.removeEventListener('abort', stop);
  if (results.some((r) => r.status === 'rejected')) throw failureToReport(firstError, request.signal);
  const tables = (results[0] as PromiseFulfilledResult<TableRowCount[]>).value;
  for (const [index, info] of (results[1] as PromiseFulfilledResult<ObjectInfo[]>).value.entries()) {
    if (info.size === stored.bytes) continue;
    const repository = context.storages[index]!.name;
    throw new IntegrityError(`repository ${repository} has ${info.size} bytes of ${key}, but ${stored.bytes} were written`, { code: 'backup.size', object: key });
  }
  await client.query('COMMIT');
  return { key, tables, rawBytes: raw.bytes, storedBytes: stored.bytes, sha256: stored.digest() };
}

/** Chooses the error to report: the user's interrupt wins over the errors it caused. */
function failureToReport(firstError: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return new AbortedError('backup interrupted; nothing was committed', { code: 'backup.aborted', cause: firstError });
  return firstError;
}

interface MetadataParts {
  id: string;
  origin: BackupMetadata['origin'];
  request: BackupRequest;
  started: Date;
  source: SourceInfo;
  data: { key: string; tables: TableRowCount[]; rawBytes: number; storedBytes: number; sha256: string };
  globals: { key: string; bytes: number; sha256: string; rolePasswords: boolean };
  compression: BackupMetadata['compression']['algorithm'];
  level?: number;
  storages: Storage[];
}

function buildMetadata(parts: MetadataParts): BackupMetadata {
  const finished = (parts.request.now ?? (() => new Date()))();
  return {
    formatVersion: 1,
    id: parts.id,
    database: parts.request.database.name,
    kind: 'logical',
    origin: parts.origin,
    startedAt: parts.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - parts.started.getTime(),
    server: { version: parts.source.server.version, major: parts.source.server.major },
    tool: { program: 'pg_dump', version: parts.source.pgDump.version },
    drplanVersion: DRPLAN_VERSION,
    format: 'custom',
    compression: { algorithm: parts.compression, level: parts.level },
    rawBytes: parts.data.rawBytes,
    storedBytes: parts.data.storedBytes,
    sha256: parts.data.sha256,
    dump: { key: parts.data.key, bytes: parts.data.storedBytes, sha256: parts.data.sha256 },
    globals: parts.globals,
    databaseOwner: parts.source.owner,
    encoding: parts.source.encoding,
    tables: parts.data.tables,
    repositories: parts.storages.map((s) => s.name),
    host: hostname(),
  };
}

/** Writes the metadata on every repository; this is the commit point. */
async function commitMetadata(storages: Storage[], key: string, meta: BackupMetadata, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw new AbortedError('backup interrupted before commit; nothing was committed', { code: 'backup.aborted' });
  await putOnAll(storages, key, serializeMetadata(meta));
}
