/** `drplan verify`: check every copy of a backup against its metadata, and with --deep restore it. */
import type { Command } from 'commander';
import { findBackup, readCatalog, type Catalog, type CatalogEntry, type CatalogFilter } from '../backup/catalog.js';
import { defaultDatabaseName, type PlanContext } from '../context.js';
import { AbortedError, IntegrityError, NotFoundError, UsageError } from '../errors.js';
import { deepVerify } from '../verify/deep-verify.js';
import { storeVerification, type VerificationRecord } from '../verify/records.js';
import { failuresOf, missingCopies, verifyBackup, type VerifyResult } from '../verify/verify-backup.js';
import { formatDuration, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';

interface VerifyOptions {
  database?: string;
  files?: string;
  deep?: boolean;
  json?: boolean;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check size, SHA-256 and archive readability of a backup on every repository; --deep also restores it')
    .argument('[backup]', 'backup id, or "latest"', 'latest')
    .option('--database <name>', 'database the backup belongs to')
    .option('--files <name>', 'file set the backup belongs to')
    .option('--deep', 'test-restore into a scratch database, compare row counts and run the plan checks; for a file set, extract into a temporary directory and compare with the metadata')
    .option('--json', 'print the result as JSON')
    .action(async (backup: string, options: VerifyOptions, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const { catalog, entry } = await resolveBackup(context, backup, options);
      const missing = await missingCopies(entry, catalog, context.plan.repositories.map((r) => r.name));
      const signal = interruptSignal();
      const record = options.deep ? await deepVerify(context, entry, signal, missing) : await checksumVerify(context, entry, signal, options.json ?? false, missing);
      if (options.deep) printDeep(record, options.json ?? false);
      const problems = [...(record.missing ?? []), ...record.failures];
      if (problems.length > 0) {
        throw new IntegrityError(`backup ${entry.id} failed ${options.deep ? 'deep ' : ''}verification:\n  ${problems.join('\n  ')}`, {
          code: 'verify.failed',
          object: entry.id,
          hint: 'Restore from another repository or an older backup, and find out why this one is bad (`drplan repo check`).',
        });
      }
    });
}

/**
 * Finds the backup to verify. An id given without --database or --files is
 * looked for among the default database's backups first, then everywhere, so
 * a file-set backup needs no extra option.
 */
async function resolveBackup(context: PlanContext, backup: string, options: VerifyOptions): Promise<{ catalog: Catalog; entry: CatalogEntry }> {
  if (options.files !== undefined && options.database !== undefined) {
    throw new UsageError('--files and --database cannot be used together', { code: 'usage.verify', hint: 'A backup is of a database or of a file set; pass one of them.' });
  }
  const database = defaultDatabaseName(context.plan, options.database);
  const filter: CatalogFilter | undefined = options.files !== undefined ? { fileset: options.files } : database !== undefined ? { database } : undefined;
  const catalog = await readCatalog(context, filter);
  try {
    return { catalog, entry: findBackup(catalog, backup, filter) };
  } catch (err) {
    const narrowedByUser = options.files !== undefined || options.database !== undefined;
    if (!(err instanceof NotFoundError) || backup === 'latest' || narrowedByUser || filter === undefined) throw err;
    const everything = await readCatalog(context);
    const filesets = everything.entries.filter((e) => e.id === backup && e.meta.kind === 'files');
    // Nothing else has the id either: the error names the database that was searched first.
    if (filesets.length === 0) throw err;
    // Several file sets with the id make findBackup report the ambiguity.
    return { catalog: everything, entry: filesets.length === 1 ? filesets[0]! : findBackup(everything, backup) };
  }
}

async function checksumVerify(context: PlanContext, entry: CatalogEntry, signal: AbortSignal, json: boolean, missing: string[]): Promise<VerificationRecord> {
  const startedAt = new Date();
  const result = await verifyBackup(entry, context.log.child({ component: 'verify' }), signal);
  // An interrupted check proves nothing about the backup, so it is not recorded.
  if (signal.aborted) throw new AbortedError('verification interrupted; no result was recorded', { code: 'verify.aborted' });
  if (json) printJson({ ...result, ok: result.ok && missing.length === 0, missing });
  else printChecksum(result, missing);
  for (const check of result.sanity.filter((k) => !k.ok)) process.stderr.write(`warning: ${check.detail}\n`);
  const record: VerificationRecord = {
    formatVersion: 1,
    backupId: entry.id,
    database: entry.database,
    kind: 'checksum',
    ok: result.ok,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    failures: failuresOf(result),
    missing,
    checks: result.copies.flatMap((c) => c.checks.map((k) => ({ name: `${c.repository} ${k.name}`, ok: k.ok, detail: k.detail }))),
  };
  await storeVerification(entry.copies.map((c) => ({ storage: c.storage, metaKey: c.metaKey })), record, startedAt);
  return record;
}

function printChecksum(result: VerifyResult, missing: string[]): void {
  for (const line of missing) process.stdout.write(`FAIL ${line}\n`);
  for (const copy of result.copies) {
    process.stdout.write(`${copy.ok ? 'ok  ' : 'FAIL'} ${copy.repository} ${copy.object}\n`);
    for (const check of copy.checks) process.stdout.write(`     ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}\n`);
  }
  for (const check of result.sanity) process.stdout.write(`${check.ok ? 'ok  ' : 'WARN'} sanity: ${check.detail}\n`);
}

function printDeep(record: VerificationRecord, json: boolean): void {
  if (json) return printJson(record);
  process.stdout.write(`deep verification of ${record.backupId}: ${record.ok ? 'passed' : 'FAILED'}\n`);
  if (record.restoreMs !== undefined) process.stdout.write(`  test restore into ${record.target}: ${formatDuration(record.restoreMs)}\n`);
  const tables = record.tables ?? [];
  const matching = tables.filter((t) => t.ok).length;
  if (tables.length > 0) process.stdout.write(`  row counts: ${matching} of ${tables.length} tables match the metadata\n`);
  for (const check of record.checks) process.stdout.write(`  ${check.ok ? 'ok  ' : 'FAIL'} check ${check.name}: ${check.detail}\n`);
  for (const failure of record.failures) process.stdout.write(`  FAIL ${failure}\n`);
}
