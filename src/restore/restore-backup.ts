/**
 * Restores a logical backup into a new database, or over the configured one
 * after a committed safety backup.
 *
 * Order matters for safety: the backup is downloaded and its SHA-256 checked
 * before anything is written to any database, and an in-place restore starts
 * only once the pre-restore backup of the live database is committed.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import type pg from 'pg';
import { runLogicalBackup } from '../backup/logical-backup.js';
import { findBackup, readCatalog, type CatalogEntry } from '../backup/catalog.js';
import { asLogical } from '../backup/metadata.js';
import type { BackupMetadata } from '../backup/metadata.js';
import type { DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { UsageError } from '../errors.js';
import { connectionTarget, quoteIdent, withClient, type ConnectionTarget } from '../postgres/connection.js';
import { restoreArchive } from '../postgres/restore.js';
import { findTool, type PgTool } from '../postgres/tools.js';
import { selectTables } from '../postgres/toc.js';
import { acquireDatabaseLock } from '../lock/database-lock.js';
import { parseDuration } from '../util/duration.js';
import { fetchVerified } from './fetch.js';
import { applyGlobals } from './globals.js';

export interface RestoreRequest {
  backup: string;
  database?: DatabaseConfig;
  /** The database whose backups to search, when it is no longer in the plan. */
  databaseName?: string;
  /** Restore into this new database; mutually exclusive with `inPlace`. */
  targetDatabase?: string;
  /** Server to restore into; defaults to the backup's database server. */
  targetUrl?: string;
  inPlace: boolean;
  clean: boolean;
  tables: string[];
  jobs: number;
  globals: boolean;
  signal: AbortSignal;
}

export interface RestoreResult {
  backup: BackupMetadata;
  repository: string;
  targetDatabase: string;
  /** The backup's start time: the restored data is as of this moment or slightly later (its snapshot). */
  recoveryPoint: string;
  durationMs: number;
  rolesCreated: string[];
  preRestoreBackup?: string;
  /** Copies on other repositories that were missing or corrupted, with the reason. */
  rejectedCopies: string[];
}

/** A resolved restore: the backup and the target, found without touching any database. */
export interface RestorePlan {
  entry: CatalogEntry;
  target: ConnectionTarget;
  /** The server's maintenance database, for CREATE DATABASE and roles. */
  maintenance: ConnectionTarget;
  database: DatabaseConfig;
}

/** Resolves the backup and target; used by both the real run and `--dry-run`. */
export async function planRestore(context: PlanContext, request: RestoreRequest): Promise<RestorePlan> {
  if (request.inPlace === (request.targetDatabase !== undefined)) {
    throw new UsageError('choose exactly one of --target-database NAME and --in-place', {
      code: 'usage.target',
      hint: '--target-database restores side by side into a new database; --in-place overwrites the configured one after a safety backup.',
    });
  }
  if (request.inPlace && request.targetUrl !== undefined) {
    throw new UsageError('--in-place restores over the database in the plan and takes no --target-url', {
      code: 'usage.target',
      hint: 'The safety backup is taken from the database URL in the plan; use --target-database with --target-url to restore elsewhere.',
    });
  }
  const filter = request.databaseName ?? request.database?.name;
  const catalog = await readCatalog(context, filter);
  const entry = findBackup(catalog, request.backup, filter);
  asLogical(entry.meta);
  const database = request.database ?? context.plan.databases.find((d) => d.name === entry.database);
  if (!database && request.targetUrl === undefined) {
    throw new UsageError(`backup ${entry.id} belongs to database ${entry.database}, which is not in the plan`, {
      code: 'usage.database',
      hint: 'Name the server to restore into with --target-url, together with --target-database.',
    });
  }
  const serverUrl = request.targetUrl ?? database!.url;
  const target = connectionTarget(serverUrl, request.inPlace ? undefined : request.targetDatabase);
  if (!request.inPlace && database && isSameDatabase(target, connectionTarget(database.url))) {
    throw new UsageError(`--target-database ${target.database} is the live database ${database.name} of the plan`, {
      code: 'usage.target',
      hint: 'Use --in-place to restore over it (a safety backup is taken first), or choose another --target-database.',
    });
  }
  return { entry, target, maintenance: connectionTarget(serverUrl, 'postgres'), database: database ?? { name: entry.database, url: serverUrl } };
}

function isSameDatabase(a: ConnectionTarget, b: ConnectionTarget): boolean {
  return a.endpoint === b.endpoint && a.database === b.database;
}

/** Runs the restore described by `plan`. */
export async function runRestore(context: PlanContext, request: RestoreRequest, plan: RestorePlan): Promise<RestoreResult> {
  const started = Date.now();
  const { entry, target } = plan;
  const log = context.log.child({ component: 'restore', backupId: entry.id, database: target.database });
  const fetched = await fetchVerified(entry, context.plan.backup.tempDir ?? os.tmpdir(), log, request.signal);
  try {
    const meta = asLogical(entry.meta);
    const tool = await findTool('pg_restore', meta.server.major, meta.server.version);
    const listFile = await writeTableSelection(tool, fetched.archive, request.tables, request.signal);

    const preRestoreBackup = request.inPlace ? await takeSafetyBackup(context, plan.database, request.signal) : undefined;
    const rolesCreated = await prepareTarget(plan, request, fetched.globalsSql, log);
    log.info({ repository: fetched.copy.storage.name }, 'pg_restore started');
    // Over the live database, the lock keeps a scheduled backup from taking a half-restored state.
    const lock = request.inPlace
      ? await acquireDatabaseLock(context.storages, plan.database.name, { purpose: 'restore', timeoutMs: parseDuration(context.plan.backup.lockTimeout), log, signal: request.signal })
      : undefined;
    try {
      await restoreArchive(tool, fetched.archive, target, {
        jobs: request.jobs,
        clean: request.inPlace || request.clean,
        singleTransaction: request.inPlace,
        listFile,
        signal: request.signal,
      });
    } finally {
      await lock?.release();
    }
    const durationMs = Date.now() - started;
    log.info({ durationMs, repository: fetched.copy.storage.name }, 'restore finished');
    return {
      backup: fetched.copy.meta,
      repository: fetched.copy.storage.name,
      targetDatabase: target.database,
      recoveryPoint: fetched.copy.meta.startedAt,
      durationMs,
      rolesCreated,
      preRestoreBackup,
      rejectedCopies: fetched.rejected,
    };
  } finally {
    await fetched.dispose();
  }
}

async function takeSafetyBackup(context: PlanContext, database: DatabaseConfig, signal: AbortSignal): Promise<string> {
  const meta = await runLogicalBackup(context, { database, origin: 'pre_restore', signal });
  return meta.id;
}

/** Recreates missing roles, then creates the target database or checks it may be overwritten. */
async function prepareTarget(plan: RestorePlan, request: RestoreRequest, globalsSql: string | undefined, log: PlanContext['log']): Promise<string[]> {
  return withClient(plan.maintenance, async (client) => {
    const roles = request.globals && globalsSql ? await applyGlobals(client, globalsSql, log) : [];
    if (!request.inPlace) await createOrCheckTarget(client, plan, request.clean);
    return roles;
  });
}

async function createOrCheckTarget(client: pg.Client, plan: RestorePlan, clean: boolean): Promise<void> {
  const name = plan.target.database;
  const exists = (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  if (!exists) {
    const meta = asLogical(plan.entry.meta);
    const owner = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [meta.databaseOwner])).rowCount === 1;
    const encoding = meta.encoding.replace(/[^A-Za-z0-9_]/g, '');
    const ownerClause = owner ? ` OWNER ${quoteIdent(meta.databaseOwner)}` : '';
    await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING '${encoding}'${ownerClause}`);
    return;
  }
  if (clean) return;
  const objects = await withClient(plan.target, (target) => countUserObjects(target));
  if (objects > 0) {
    throw new UsageError(`target database ${name} already exists and contains ${objects} objects`, {
      code: 'restore.target_not_empty',
      object: name,
      hint: 'Choose a new --target-database name, or pass --clean to replace the objects in the backup.',
    });
  }
}

async function countUserObjects(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
  );
  return Number(rows[0]!.n);
}

/** Writes the `--use-list` file for a single-table restore beside the archive. */
async function writeTableSelection(tool: PgTool, archive: string, tables: string[], signal: AbortSignal): Promise<string | undefined> {
  if (tables.length === 0) return undefined;
  const listFile = `${archive}.list`;
  await writeFile(listFile, await selectTables(tool, archive, tables.map(parseTableName), signal));
  return listFile;
}

/** Splits `schema.table` (the schema is optional). */
export function parseTableName(value: string): { schema?: string; name: string } {
  const dot = value.indexOf('.');
  return dot > 0 ? { schema: value.slice(0, dot), name: value.slice(dot + 1) } : { name: value };
}
