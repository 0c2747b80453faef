/**
 * Deep verification: the checksum verification, then a real test restore
 * into a scratch database, a row count comparison for every table, the
 * plan's own checks, and a record of the result on every repository. A
 * file-set backup is instead extracted into a temporary directory and its
 * entries, files and bytes compared with the metadata. A physical base
 * backup is extracted and checked with pg_verifybackup.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { CatalogEntry } from '../backup/catalog.js';
import { asLogical } from '../backup/metadata.js';
import type { DatabaseConfig, VerifyCheck } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { AbortedError } from '../errors.js';
import { connectionTarget, quoteIdent, withClient } from '../postgres/connection.js';
import { runRestore, type RestorePlan } from '../restore/restore-backup.js';
import { runFilesRestore } from '../restore/files-restore.js';
import { verifyBaseBackup } from './deep-verify-physical.js';
import { openScratchServer } from './scratch.js';
import { storeVerification, type VerificationRecord } from './records.js';
import { failuresOf, verifyBackup } from './verify-backup.js';

type TableResult = NonNullable<VerificationRecord['tables']>[number];
type CheckOutcome = VerificationRecord['checks'][number];

/** Runs a deep verification of `entry`, stores its record and returns it; `missing` lists copies that could not be checked. */
export async function deepVerify(context: PlanContext, entry: CatalogEntry, signal: AbortSignal, missing: string[] = []): Promise<VerificationRecord> {
  const startedAt = new Date();
  const log = context.log.child({ component: 'verify', backupId: entry.id, database: entry.database });
  const checksum = await verifyBackup(entry, log, signal);
  const failures = failuresOf(checksum);
  const record: VerificationRecord = {
    formatVersion: 1,
    backupId: entry.id,
    database: entry.database,
    kind: 'deep',
    ok: false,
    startedAt: startedAt.toISOString(),
    finishedAt: startedAt.toISOString(),
    failures,
    missing,
    checks: [],
  };

  if (!checksum.copies.some((c) => c.ok)) failures.push(`backup ${entry.id}: no copy passed the checksum verification, so no test restore was run`);
  else if (entry.meta.kind === 'physical') await verifyBaseBackup(context, entry, record, signal);
  else if (entry.meta.kind === 'files') await testExtract(context, entry, record, signal);
  else await testRestore(context, entry, record, signal);

  record.ok = failures.length === 0;
  record.finishedAt = new Date().toISOString();
  // An interrupted test restore proves nothing about the backup, so it is not recorded.
  if (signal.aborted) throw new AbortedError('deep verification interrupted; no result was recorded', { code: 'verify.aborted' });
  const failedStores = await storeVerification(entry.copies.map((c) => ({ storage: c.storage, metaKey: c.metaKey })), record, startedAt);
  for (const repository of failedStores) log.warn({ repository }, 'could not store the verification record on this repository');
  log.info({ durationMs: record.restoreMs, ok: record.ok }, 'deep verification finished');
  return record;
}

/** Restores into a scratch database, compares row counts, runs the plan's checks, then removes the scratch target. */
async function testRestore(context: PlanContext, entry: CatalogEntry, record: VerificationRecord, signal: AbortSignal): Promise<void> {
  const scratch = await openScratchServer(context.plan.verify?.url, asLogical(entry.meta).server.major, signal);
  const databaseName = `drplan_verify_${randomBytes(4).toString('hex')}`;
  record.target = scratch.description;
  const target = connectionTarget(scratch.url, databaseName);
  try {
    const restorePlan: RestorePlan = { entry, target, maintenance: connectionTarget(scratch.url, 'postgres'), database: databaseOf(context, entry) };
    const restored = await runRestore(
      context,
      { backup: entry.id, targetDatabase: databaseName, inPlace: false, clean: false, tables: [], jobs: context.plan.verify?.jobs ?? 2, globals: true, signal },
      restorePlan,
    );
    record.restoreMs = restored.durationMs;

    await withClient(target, async (client) => {
      record.tables = await compareRowCounts(client, entry);
      record.checks = await runChecks(client, planChecks(context, entry.database));
    });
    for (const table of record.tables!.filter((t) => !t.ok)) {
      record.failures.push(`table ${table.table}: ${table.actual === null ? 'missing after restore' : `${table.actual} rows after restore`}, metadata records ${table.expected}`);
    }
    for (const check of record.checks.filter((c) => !c.ok)) record.failures.push(`check "${check.name}" failed: ${check.detail}`);
  } catch (err) {
    record.failures.push(`test restore failed: ${(err as Error).message}`);
  } finally {
    await dropScratchDatabase(scratch.url, databaseName).catch((err) => context.log.warn({ err, database: databaseName }, 'could not drop the scratch database'));
    await scratch.dispose();
  }
}

/** Extracts a file-set backup into a temporary directory and compares entries, files and bytes with the metadata. */
async function testExtract(context: PlanContext, entry: CatalogEntry, record: VerificationRecord, signal: AbortSignal): Promise<void> {
  const dir = await mkdtemp(path.join(context.plan.backup.tempDir ?? os.tmpdir(), 'drplan-verify-'));
  record.target = 'a temporary directory';
  try {
    const restored = await runFilesRestore(context, { backup: entry.id, fileset: entry.database, to: dir, force: false, signal });
    record.restoreMs = restored.durationMs;
    record.checks.push({ name: 'extract', ok: true, detail: `${restored.fileCount} files, ${restored.fileBytes} bytes extracted, as the metadata records` });
  } catch (err) {
    record.failures.push(`test extraction failed: ${(err as Error).message}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function databaseOf(context: PlanContext, entry: CatalogEntry): DatabaseConfig {
  return context.plan.databases.find((d) => d.name === entry.database) ?? { name: entry.database, url: 'postgres://localhost/' };
}

async function compareRowCounts(client: pg.Client, entry: CatalogEntry): Promise<TableResult[]> {
  const results: TableResult[] = [];
  for (const table of asLogical(entry.meta).tables) {
    const name = `${table.schema}.${table.name}`;
    let actual: number | null = null;
    try {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`);
      actual = Number(rows[0]!.n);
    } catch {
      actual = null;
    }
    results.push({ table: name, expected: table.rows, actual, ok: actual === table.rows });
  }
  return results;
}

function planChecks(context: PlanContext, database: string): VerifyCheck[] {
  return (context.plan.verify?.checks ?? []).filter((check) => check.database === undefined || check.database === database);
}

/** Runs each check: `expect` compares the first column of the first row, `minRows` the number of rows. */
async function runChecks(client: pg.Client, checks: VerifyCheck[]): Promise<CheckOutcome[]> {
  const outcomes: CheckOutcome[] = [];
  for (const check of checks) {
    try {
      const result = await client.query({ text: check.sql, rowMode: 'array' });
      const rows = result.rows as unknown[][];
      if (check.expect !== undefined) {
        const actual = rows[0]?.[0];
        const ok = rows.length > 0 && String(actual) === String(check.expect);
        outcomes.push({ name: check.name, ok, detail: `expected ${JSON.stringify(check.expect)}, got ${rows.length > 0 ? JSON.stringify(actual) : 'no rows'}` });
      } else if (check.minRows !== undefined) {
        outcomes.push({ name: check.name, ok: rows.length >= check.minRows, detail: `expected at least ${check.minRows} rows, got ${rows.length}` });
      } else {
        outcomes.push({ name: check.name, ok: true, detail: `query ran, ${rows.length} rows` });
      }
    } catch (err) {
      outcomes.push({ name: check.name, ok: false, detail: `query failed: ${(err as Error).message}` });
    }
  }
  return outcomes;
}

async function dropScratchDatabase(serverUrl: string, name: string): Promise<void> {
  await withClient(connectionTarget(serverUrl, 'postgres'), (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}
