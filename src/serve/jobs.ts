/** The job handlers: a dispatch table from `jobs[].type` to a library function. */
import { findBackup, readCatalog } from '../backup/catalog.js';
import { runFilesBackup } from '../backup/files-backup.js';
import { runLogicalBackup } from '../backup/logical-backup.js';
import { runPhysicalBackup } from '../backup/physical-backup.js';
import { jobDatabase } from '../config/jobs.js';
import type { JobConfig } from '../config/schema.js';
import { selectDatabase, type PlanContext } from '../context.js';
import { IntegrityError } from '../errors.js';
import { runPrune } from '../retention/prune.js';
import { analyzeWal, assertWalHealthy } from '../wal/analyze.js';
import { checksumVerify } from '../verify/checksum-verify.js';
import { deepVerify } from '../verify/deep-verify.js';
import { missingCopies } from '../verify/verify-backup.js';
import type { AlertTracker } from './alerts.js';

export interface JobEnvironment {
  context: PlanContext;
  alerts: AlertTracker;
  signal: AbortSignal;
}

/** The report of a successful run: one line, and fields for the log and the API. */
export interface JobOutcome {
  summary: string;
  details?: Record<string, string | number | boolean>;
}

export type JobHandler = (job: JobConfig, env: JobEnvironment) => Promise<JobOutcome>;

export type JobType = JobConfig['type'];

/** The handlers, by job type. */
export const jobHandlers: Record<JobType, JobHandler> = {
  backup: runBackupJob,
  verify: runVerifyJob,
  prune: runPruneJob,
  files: runFilesJob,
  'wal-check': runWalCheckJob,
};

async function runBackupJob(job: JobConfig, env: JobEnvironment): Promise<JobOutcome> {
  const database = selectDatabase(env.context.plan, jobDatabase(env.context.plan, job));
  const kind = job.kind ?? 'logical';
  const request = { database, signal: env.signal };
  const meta = kind === 'physical' ? await runPhysicalBackup(env.context, request) : await runLogicalBackup(env.context, request);
  return {
    summary: `committed ${kind} backup ${meta.id} of ${database.name} (${meta.storedBytes} bytes stored)`,
    details: { backupId: meta.id, database: database.name, bytes: meta.storedBytes },
  };
}

async function runFilesJob(job: JobConfig, env: JobEnvironment): Promise<JobOutcome> {
  const meta = await runFilesBackup(env.context, { fileset: job.fileset!, signal: env.signal });
  return {
    summary: `committed ${meta.id} of file set ${job.fileset} (${meta.storedBytes} bytes stored)`,
    details: { backupId: meta.id, fileset: job.fileset!, bytes: meta.storedBytes },
  };
}

/** Verifies the newest backup of the job's database; a failure raises verify.failed, the next pass verify.passed. */
async function runVerifyJob(job: JobConfig, env: JobEnvironment): Promise<JobOutcome> {
  const database = jobDatabase(env.context.plan, job)!;
  const catalog = await readCatalog(env.context, database);
  const entry = findBackup(catalog, 'latest', database);
  const missing = await missingCopies(entry, catalog, env.context.plan.repositories.map((r) => r.name));
  const kind = job.deep ? 'deep' : 'checksum';
  const record = job.deep ? await deepVerify(env.context, entry, env.signal, missing) : (await checksumVerify(env.context, entry, env.signal, missing)).record;
  const problems = [...(record.missing ?? []), ...record.failures];
  const details = { database, backupId: entry.id, kind };
  if (problems.length > 0) {
    env.alerts.problem('verify.failed', database, 'critical', `${kind} verification of ${entry.id} (${database}) failed: ${problems[0]}`, { ...details, failures: problems.length });
    throw new IntegrityError(`backup ${entry.id} failed ${kind} verification:\n  ${problems.join('\n  ')}`, {
      code: 'verify.failed',
      object: entry.id,
      hint: 'Restore from another repository or an older backup, and find out why this one is bad (`drplan repo check`).',
    });
  }
  env.alerts.clear('verify.failed', database, `${kind} verification of ${entry.id} (${database}) passed`, details);
  const restore = record.restoreMs !== undefined ? `, test restore ${record.restoreMs} ms` : '';
  return { summary: `${kind} verification of ${entry.id} passed${restore}`, details };
}

/**
 * Checks the database's archived WAL: at least one file archived, every
 * repository readable, and no gap in the chain of any physical base backup.
 */
async function runWalCheckJob(job: JobConfig, env: JobEnvironment): Promise<JobOutcome> {
  const database = jobDatabase(env.context.plan, job)!;
  const analysis = await analyzeWal(env.context, database);
  if (analysis.files === 0) {
    throw new IntegrityError(`database ${database}: no archived WAL found in any repository`, {
      code: 'wal.empty',
      object: database,
      hint: 'Set archive_command to `drplan wal push` (see `drplan wal status`), or remove the wal-check job.',
    });
  }
  assertWalHealthy([analysis]);
  // Null when only history or backup files are archived, none of them a segment.
  const newest = analysis.newest ? `newest ${analysis.newest.name} (${analysis.rpoSeconds} s old)` : 'no segment archived yet';
  return {
    summary: `${analysis.files} archived WAL files, ${analysis.chains.length} base backup chains continuous, ${newest}`,
    details: { database, files: analysis.files, chains: analysis.chains.length, newest: analysis.newest?.name ?? '', walRpoSeconds: analysis.rpoSeconds ?? -1 },
  };
}

async function runPruneJob(_job: JobConfig, env: JobEnvironment): Promise<JobOutcome> {
  const report = await runPrune(env.context, { dryRun: false, now: new Date(), signal: env.signal });
  const deleted = report.repositories.reduce((sum, r) => sum + r.decisions.filter((d) => d.delete).length, 0);
  const partials = report.repositories.reduce((sum, r) => sum + r.partials.length + r.incomplete.length, 0);
  for (const repo of report.repositories) {
    for (const warning of repo.warnings) env.context.log.warn({ repository: repo.repository }, warning);
  }
  return { summary: `deleted ${deleted} backups and ${partials} partial objects`, details: { deleted, partials } };
}
