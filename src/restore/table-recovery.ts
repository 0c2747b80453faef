/**
 * Table recovery: single tables as they were at a point in time, copied into
 * a side database on the live server, next to the live data and never over it.
 *
 * A scratch cluster under backup.tempDir is recovered to the target, with
 * WAL archiving off so that it never writes into the archive, on a free port
 * on 127.0.0.1. pg_dump takes just the chosen tables from it, and pg_restore
 * puts them into the side database in one transaction. The scratch cluster is
 * stopped and deleted afterwards, also after a failure or an interrupt (but
 * not when drplan itself is killed).
 */
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { extractPhysicalBackup } from '../backup/physical-restore.js';
import type { DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { IntegrityError, NotFoundError, UsageError } from '../errors.js';
import { findPostgresBinDir, freePort, serverOwner, type ServerOwner } from '../postgres/cluster.js';
import { connectionTarget, quoteIdent, withClient, type ConnectionTarget } from '../postgres/connection.js';
import { startRecoveryServer, stopRecoveryServer, waitForRecoveryEnd, type RecoveryPoint, type RecoveryServer } from '../postgres/recovery-server.js';
import { restoreArchive } from '../postgres/restore.js';
import { selectTables } from '../postgres/toc.js';
import { findTool, type PgTool } from '../postgres/tools.js';
import { runProcess } from '../util/process.js';
import { localConnection, reportTarget, type TargetReport } from './pitr.js';
import type { TimelineRequest } from '../wal/continuity.js';
import { planPitr, type PitrPlan } from './pitr-plan.js';
import type { RecoveryTarget } from './pitr-target.js';
import { restoreCommandFor, writeRecoveryConfig } from './recovery-config.js';
import { parseTableName } from './restore-backup.js';

export interface TableRecoveryRequest {
  database: DatabaseConfig;
  target: RecoveryTarget;
  /** Table names as typed: name or schema.name. */
  tables: string[];
  /** The side database on the live server; created when missing. */
  targetDatabase: string;
  /** The timeline to recover along; default `latest`, the newest one reachable from the base backup. */
  timeline?: TimelineRequest;
  planPath: string;
  timeoutMs: number;
  signal: AbortSignal;
}

export interface RecoveredTable {
  schema: string;
  name: string;
  rows: number;
}

export interface TableRecoveryResult {
  backup: string;
  repository: string;
  target: TargetReport;
  reached: RecoveryPoint;
  targetDatabase: string;
  /** The live server, host:port. */
  endpoint: string;
  createdDatabase: boolean;
  tables: RecoveredTable[];
  /** Objects of the tables left out, with the reason. */
  skipped: string[];
  durationMs: number;
}

/**
 * Checks the side database (not a database of the plan, no table of the same
 * name yet) and plans the recovery, all before anything is written.
 */
export async function planTableRecovery(context: PlanContext, request: TableRecoveryRequest): Promise<PitrPlan> {
  const live = connectionTarget(request.database.url);
  assertNotLive(context, request, live);
  await withClient(live, async (client) => {
    if (!(await databaseExists(client, request.targetDatabase))) return;
    await withClient(sideTarget(request), (side) => assertTablesAbsent(side, request.tables.map(parseTableName), request.targetDatabase));
  });
  return planPitr(context, request.database, request.target, request.timeline ?? 'latest');
}

/** Recovers the scratch cluster, copies the tables and always removes the scratch cluster. */
export async function runTableRecovery(context: PlanContext, request: TableRecoveryRequest, plan: PitrPlan): Promise<TableRecoveryResult> {
  const started = Date.now();
  const log = context.log.child({ component: 'table-recovery', database: request.database.name, backupId: plan.entry.id });
  const owner = await serverOwner(request.signal);
  const root = await mkdtemp(path.join(context.plan.backup.tempDir ?? os.tmpdir(), 'drplan-pitr-'));
  const server: RecoveryServer = { binDir: await findPostgresBinDir(plan.meta.server.major), dataDir: path.join(root, 'data'), logFile: path.join(root, 'server.log'), owner };
  let startedServer = false;
  try {
    await giveTo(root, owner);
    const extracted = await extractPhysicalBackup(context, plan.entry, server.dataDir, request.signal);
    const port = await freePort();
    const restoreCommand = restoreCommandFor(request.planPath, request.database.name);
    await writeRecoveryConfig(server.dataDir, { restoreCommand, target: request.target, timeline: plan.timeline, port, socketDir: root, archive: false }, owner);

    log.info({ port, scratch: root }, 'recovering the scratch cluster');
    startedServer = true;
    const startedAt = await startRecoveryServer(server);
    const scratch = localConnection(request.database, port);
    const reached = await waitForRecoveryEnd(server, scratch, { startedAt, timeoutMs: request.timeoutMs, log, signal: request.signal });

    const tables = await withClient(scratch, (client) => resolveTables(client, request.tables, scratch.database));
    const copy = await copyTables(plan, request, scratch, tables, root);
    log.info({ tables: copy.tables.length, targetDatabase: request.targetDatabase, durationMs: Date.now() - started }, 'tables recovered');
    return {
      backup: plan.entry.id,
      repository: extracted.repository,
      target: reportTarget(request.target),
      reached,
      targetDatabase: request.targetDatabase,
      endpoint: connectionTarget(request.database.url).endpoint,
      ...copy,
      durationMs: Date.now() - started,
    };
  } finally {
    if (startedServer) await stopRecoveryServer(server).catch((error: unknown) => log.error({ err: error }, 'stopping the scratch cluster failed'));
    await rm(root, { recursive: true, force: true });
    log.info({ scratch: root }, 'scratch cluster removed');
  }
}

/** Dumps the tables from the scratch cluster and restores them into the side database, then compares row counts. */
async function copyTables(plan: PitrPlan, request: TableRecoveryRequest, scratch: ConnectionTarget, tables: RecoveredTable[], root: string) {
  const { major, version } = plan.meta.server;
  const pgDump = await findTool('pg_dump', major, version);
  const pgRestore = await findTool('pg_restore', major, version);
  const archive = path.join(root, 'tables.dump');
  // Quoted names are matched literally by pg_dump, not as patterns.
  const names = tables.map((t) => `--table=${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
  await runProcess(pgDump.path, ['--format=custom', '--no-password', '--strict-names', `--file=${archive}`, ...names, `--dbname=${scratch.uri}`], {
    env: scratch.env,
    signal: request.signal,
    operation: 'pg_dump of the recovered tables',
  });

  const selection = await selectForSideDatabase(pgRestore, archive, tables, request.signal);
  const listFile = `${archive}.list`;
  await writeFile(listFile, selection.list);

  const side = sideTarget(request);
  const createdDatabase = await prepareSideDatabase(request, tables);
  await restoreArchive(pgRestore, archive, side, { jobs: 1, clean: false, singleTransaction: true, listFile, noOwner: true, signal: request.signal });
  await withClient(side, (client) => assertSameCounts(client, tables, request.targetDatabase));
  return { createdDatabase, tables, skipped: selection.skipped };
}

/**
 * Selects the tables and what belongs to them (see selectTables), without
 * triggers: their functions stay in the source database, so creating them in
 * the side database would fail. Foreign keys to tables that are not copied
 * are left out by selectTables; both are reported.
 */
async function selectForSideDatabase(tool: PgTool, archive: string, tables: RecoveredTable[], signal: AbortSignal) {
  const [listing, selected] = await Promise.all([
    runProcess(tool.path, ['--list', archive], { operation: 'pg_restore --list', signal }),
    selectTables(tool, archive, tables, signal),
  ]);
  const selectedLines = selected.split('\n').filter((line) => !/^\d+; \d+ \d+ TRIGGER /.test(line));
  const selectedSet = new Set(selectedLines);
  const skipped = listing
    .split('\n')
    .filter((line) => !selectedSet.has(line))
    .map((line) => /^\d+; \d+ \d+ (TRIGGER|FK CONSTRAINT) (\S+) (.+) \S+$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => (match[1] === 'TRIGGER' ? `trigger ${match[3]} (its function stays in the source database)` : `foreign key ${match[3]} (it references a table that is not copied)`));
  return { list: selectedLines.join('\n'), skipped };
}

/** Resolves each name on the recovered cluster and counts its rows. */
async function resolveTables(client: pg.Client, names: string[], database: string): Promise<RecoveredTable[]> {
  const tables: RecoveredTable[] = [];
  for (const typed of names) {
    const { schema, name } = parseTableName(typed);
    const qualified = schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
    const { rows } = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`,
      [qualified],
    );
    if (!rows[0]) {
      throw new NotFoundError(`table ${typed} did not exist in database ${database} at the recovery target`, {
        code: 'pitr.table_missing',
        object: typed,
        hint: 'Check the name (schema.name for tables outside the search path) and the target: a table created after the target is not there yet.',
      });
    }
    if (tables.some((t) => t.schema === rows[0]!.schema && t.name === rows[0]!.name)) continue;
    const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(rows[0].schema)}.${quoteIdent(rows[0].name)}`);
    tables.push({ ...rows[0], rows: Number(count.rows[0]!.n) });
  }
  return tables;
}

/** Creates the side database when missing (like the live one: encoding and locale), then its schemas; rejects tables that exist there. */
async function prepareSideDatabase(request: TableRecoveryRequest, tables: RecoveredTable[]): Promise<boolean> {
  const live = connectionTarget(request.database.url);
  const created = await withClient(live, async (client) => {
    if (await databaseExists(client, request.targetDatabase)) return false;
    const { rows } = await client.query<{ encoding: string; collate: string; ctype: string }>(
      'SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype FROM pg_database WHERE datname = current_database()',
    );
    const { encoding, collate, ctype } = rows[0]!;
    await client.query(`CREATE DATABASE ${quoteIdent(request.targetDatabase)} TEMPLATE template0 ENCODING ${quoteLiteral(encoding)} LC_COLLATE ${quoteLiteral(collate)} LC_CTYPE ${quoteLiteral(ctype)}`);
    return true;
  });
  await withClient(sideTarget(request), async (side) => {
    await assertTablesAbsent(side, tables, request.targetDatabase);
    for (const schema of new Set(tables.map((t) => t.schema))) await side.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  });
  return created;
}

async function assertTablesAbsent(client: pg.Client, tables: { schema?: string; name: string }[], database: string): Promise<void> {
  for (const table of tables) {
    const qualified = table.schema === undefined ? quoteIdent(table.name) : `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
    const { rows } = await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [qualified]);
    if (rows[0]!.found !== null) {
      throw new UsageError(`database ${database} already has a table ${rows[0]!.found}`, {
        code: 'pitr.table_exists',
        object: rows[0]!.found,
        hint: 'drplan never copies over existing tables: choose another --target-database, or drop or rename that table first.',
      });
    }
  }
}

async function assertSameCounts(client: pg.Client, tables: RecoveredTable[], database: string): Promise<void> {
  for (const table of tables) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`);
    const copied = Number(rows[0]!.n);
    if (copied !== table.rows) {
      throw new IntegrityError(`table ${table.schema}.${table.name} has ${copied} rows in database ${database} but ${table.rows} in the recovered cluster`, {
        code: 'pitr.row_count',
        object: `${table.schema}.${table.name}`,
      });
    }
  }
}

/** Rejects a side database that is a database of the plan on the same server: the copy goes beside live data, never into it. */
function assertNotLive(context: PlanContext, request: TableRecoveryRequest, live: ConnectionTarget): void {
  const liveHere = context.plan.databases
    .map((d) => ({ name: d.name, target: d === request.database ? live : safeTarget(d.url) }))
    .filter((d) => d.target !== undefined && d.target.endpoint === live.endpoint && d.target.database === request.targetDatabase);
  if (liveHere.length === 0) return;
  throw new UsageError(`--target-database ${request.targetDatabase} is the live database ${liveHere[0]!.name} of the plan`, {
    code: 'pitr.target_live',
    object: request.targetDatabase,
    hint: `Table recovery copies into a side database and never over live data: choose a new name, such as ${request.targetDatabase}_recovered.`,
  });
}

function safeTarget(url: string): ConnectionTarget | undefined {
  try {
    return connectionTarget(url);
  } catch {
    return undefined;
  }
}

function sideTarget(request: TableRecoveryRequest): ConnectionTarget {
  return connectionTarget(request.database.url, request.targetDatabase);
}

async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
}

async function giveTo(dir: string, owner: ServerOwner): Promise<void> {
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(dir, owner.uid, owner.gid);
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
