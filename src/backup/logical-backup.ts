/**
 * Logical backup of one database: pg_dump streamed through compression and
 * SHA-256 to every repository at once, with the metadata written last.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { PlanContext } from '../context.js';
import { connect, connectionTarget, type ConnectionTarget } from '../postgres/connection.js';
import { dumpGlobals, startDump } from '../postgres/dump.js';
import { countTableRows, databaseProperties, serverInfo, type ServerInfo, type TableRowCount } from '../postgres/server.js';
import { findTool, type PgTool } from '../postgres/tools.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { Meter, pipeInto } from '../util/streams.js';
import { DRPLAN_VERSION } from '../version.js';
import { checkSize, checkStoredSizes, commitMetadata, failureToReport, interrupted, putCompressed, runBackup, settleParts, step, type BackupRequest, type BackupRun } from './backup-run.js';
import { compress, DEFAULT_LEVEL } from './compression.js';
import { backupKeys } from './layout.js';
import type { BackupMetadata } from './metadata.js';
import { deleteEverywhere, writeToAll } from './write-all.js';

export type { BackupRequest } from './backup-run.js';

/** Takes a logical backup and returns its committed metadata. */
export async function runLogicalBackup(context: PlanContext, request: BackupRequest): Promise<BackupMetadata> {
  return runBackup(context, request, (run) => backupLocked(context, request, run));
}

/** Runs the backup proper while the caller holds the database lock. */
async function backupLocked(context: PlanContext, request: BackupRequest, run: BackupRun): Promise<BackupMetadata> {
  const { plan, storages } = context;
  const { id, origin, started, log } = run;
  const compression = plan.backup.compression;
  const keys = backupKeys(run.area, request.database.name, id, compression);
  const target = connectionTarget(request.database.url);
  const source = await step('connect to database', () => inspectSource(target));
  log.info({ server: source.server.version, pgDump: source.pgDump.path }, 'backup started');

  try {
    const globals = await step('capture globals', () => captureGlobals(context, source, target, keys.globals, request.signal));
    const data = await step('dump database', () => streamDump(context, source, target, keys.dump, request));
    const level = plan.backup.compressionLevel ?? DEFAULT_LEVEL[compression];
    const flags = await step('check size', () => checkSize(context, request.database.name, 'logical', data.storedBytes));
    for (const flag of flags) log.warn({ bytes: data.storedBytes, flag: flag.code }, flag.message);
    const meta = buildMetadata({ id, origin, request, started, source, data, globals, compression, level, storages });
    if (flags.length > 0) meta.flags = flags;
    await step('commit metadata', () => commitMetadata(storages, run, keys.meta, meta, request.signal));
    log.info({ bytes: meta.storedBytes, durationMs: meta.durationMs }, 'backup committed');
    return meta;
  } catch (err) {
    await deleteEverywhere(storages, [keys.meta, keys.dump, keys.globals], log);
    throw failureToReport(err, request.signal);
  } finally {
    await source.client.end().catch(() => undefined);
  }
}

interface SourceInfo {
  client: pg.Client;
  server: ServerInfo;
  pgDump: PgTool;
  pgDumpAll: PgTool;
  owner: string;
  encoding: string;
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
  const stored = await putCompressed(context, key, dump.sql, signal);
  return { ...stored, rolePasswords: dump.rolePasswords };
}

/**
 * Exports a snapshot, starts pg_dump on it and counts every table's rows in
 * the same snapshot while the dump streams to the repositories.
 */
async function streamDump(context: PlanContext, source: SourceInfo, target: ConnectionTarget, key: string, request: BackupRequest) {
  const { client } = source;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
  if (request.signal.aborted) throw interrupted();

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
  // A row count waiting on a lock cannot be cancelled by a signal; closing
  // the connection ends it (and the snapshot transaction with it).
  controller.signal.addEventListener('abort', () => void client.end().catch(() => undefined), { once: true });
  const { results, failed, firstError } = await settleParts(parts, controller);
  request.signal.removeEventListener('abort', stop);
  if (failed) throw failureToReport(firstError, request.signal);
  const tables = (results[0] as PromiseFulfilledResult<TableRowCount[]>).value;
  checkStoredSizes(context.storages, (results[1] as PromiseFulfilledResult<ObjectInfo[]>).value, key, stored.bytes);
  await client.query('COMMIT');
  return { key, tables, rawBytes: raw.bytes, storedBytes: stored.bytes, sha256: stored.digest() };
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
