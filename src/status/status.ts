/**
 * The state of the plan: for every database the measured recovery point and
 * recovery time next to their objectives, the last failure, and the state of
 * every repository. Everything is read from the repositories.
 */
import { isGood, readCatalog, readVerification, type Catalog, type CatalogEntry } from '../backup/catalog.js';
import type { DatabaseConfig, Plan } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { parseDuration } from '../util/duration.js';
import { analyzeWal, type WalAnalysis } from '../wal/analyze.js';
import type { VerificationRecord } from '../verify/records.js';
import { lastFailureEvent, type FailureEvent } from './events.js';

export interface ObjectiveStatus {
  /** The objective as written in the plan, such as `24h`; null when the plan sets none. */
  objective: string | null;
  objectiveSeconds: number | null;
  /** The measured value; null when nothing has been measured yet. */
  measuredSeconds: number | null;
  /** `met`, `breached`, `unmeasured` (an objective but no measurement) or `no objective`. */
  state: 'met' | 'breached' | 'unmeasured' | 'no objective';
}

export interface DatabaseStatus {
  database: string;
  /** `time` is when the newest good backup started (the recovery point); `finishedAt` when it was committed. */
  rpo: ObjectiveStatus & { newestGoodBackup: { id: string; time: string; finishedAt: string; storedBytes: number } | null };
  rto: ObjectiveStatus & { verification: { backupId: string; finishedAt: string; restoreMs: number } | null };
  lastFailure: FailureEvent | null;
  /**
   * Archived WAL: range per timeline, gaps, base backup chains and the WAL
   * RPO. `broken` is true when a gap breaks the chain of the newest physical
   * base backup, so point-in-time recovery cannot reach the newest WAL.
   */
  wal: WalAnalysis & { broken: boolean };
}

export interface RepositoryStatus {
  repository: string;
  reachable: boolean;
  error?: string;
  backups: number;
  bytes: number;
}

export interface StatusReport {
  at: string;
  /** False when any objective is breached or a database's WAL is broken. */
  ok: boolean;
  databases: DatabaseStatus[];
  repositories: RepositoryStatus[];
}

/** Builds the status report as of `now`. */
export async function buildStatus(context: PlanContext, now: Date = new Date()): Promise<StatusReport> {
  const catalog = await readCatalog(context);
  const databases: DatabaseStatus[] = [];
  for (const database of context.plan.databases) databases.push(await databaseStatus(context, catalog, database, now));
  const repositories = await repositoryStatus(context, catalog);
  const breached = databases.some((d) => d.rpo.state === 'breached' || d.rto.state === 'breached' || d.wal.broken);
  return { at: now.toISOString(), ok: !breached, databases, repositories };
}

async function databaseStatus(context: PlanContext, catalog: Catalog, database: DatabaseConfig, now: Date): Promise<DatabaseStatus> {
  const entries = catalog.entries.filter((e) => e.meta.kind !== 'files' && e.database === database.name);
  const newestGood = entries.find((e) => isGood(e));
  const rpoObjective = objectiveFor(context.plan, database, 'rpo');
  const rpoMeasured = newestGood ? Math.round((now.getTime() - Date.parse(newestGood.meta.startedAt)) / 1000) : null;
  const verification = await newestPassedDeep(entries);
  const rtoObjective = objectiveFor(context.plan, database, 'rto');
  const rtoMeasured = verification?.restoreMs !== undefined ? verification.restoreMs / 1000 : null;
  return {
    database: database.name,
    rpo: {
      ...judge(rpoObjective, rpoMeasured, true),
      newestGoodBackup: newestGood ? { id: newestGood.id, time: newestGood.meta.startedAt, finishedAt: newestGood.meta.finishedAt, storedBytes: newestGood.meta.storedBytes } : null,
    },
    rto: {
      ...judge(rtoObjective, rtoMeasured, false),
      verification: verification ? { backupId: verification.backupId, finishedAt: verification.finishedAt, restoreMs: verification.restoreMs! } : null,
    },
    lastFailure: (await lastFailureOf(context, entries, database.name)) ?? null,
    wal: withBrokenFlag(await analyzeWal(context, database.name, { catalog, now })),
  };
}

/** Marks the WAL broken when the newest physical base backup's chain has a gap; an older broken chain only narrows the window. */
function withBrokenFlag(wal: WalAnalysis): WalAnalysis & { broken: boolean } {
  const newest = wal.chains.at(-1);
  return { ...wal, broken: newest !== undefined && !newest.ok };
}

/**
 * Compares a measurement with its objective. With no measurement, a missing
 * backup breaches the RPO (there is nothing to recover), while a missing test
 * restore leaves the RTO unmeasured.
 */
function judge(objective: string | undefined, measured: number | null, missingBreaches: boolean): ObjectiveStatus {
  if (objective === undefined) return { objective: null, objectiveSeconds: null, measuredSeconds: measured, state: 'no objective' };
  const objectiveSeconds = parseDuration(objective) / 1000;
  if (measured === null) return { objective, objectiveSeconds, measuredSeconds: null, state: missingBreaches ? 'breached' : 'unmeasured' };
  return { objective, objectiveSeconds, measuredSeconds: measured, state: measured <= objectiveSeconds ? 'met' : 'breached' };
}

/** Returns the database's own objective, else the plan-wide one (a single value, or the `database` entry of a table). */
export function objectiveFor(plan: Plan, database: DatabaseConfig, kind: 'rpo' | 'rto'): string | undefined {
  const own = database.objectives?.[kind];
  if (own) return own;
  const planWide = plan.objectives?.[kind];
  if (typeof planWide === 'string') return planWide;
  return planWide?.[database.name] ?? planWide?.database;
}

const MAX_RECORDS_READ = 50;

/** Finds the newest passed deep verification among the database's backups. */
async function newestPassedDeep(entries: CatalogEntry[]): Promise<VerificationRecord | undefined> {
  let best: VerificationRecord | undefined;
  let reads = 0;
  for (const entry of entries) {
    const copy = entry.copies[0]!;
    for (const key of [...copy.verificationKeys].reverse()) {
      if (reads++ >= MAX_RECORDS_READ) return best;
      const record = key === copy.verificationKeys.at(-1) ? copy.lastVerification : await readVerification(copy.storage, key);
      if (record?.kind === 'deep' && record.ok && (!best || record.finishedAt > best.finishedAt)) best = record;
    }
  }
  return best;
}

async function lastFailureOf(context: PlanContext, entries: CatalogEntry[], database: string): Promise<FailureEvent | undefined> {
  const event = await lastFailureEvent(context.storages, database);
  const failedVerification = entries
    .flatMap((e) => e.copies.map((c) => c.lastVerification))
    .filter((r): r is VerificationRecord => r !== undefined && !r.ok)
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
  const verifyEvent: FailureEvent | undefined = failedVerification
    ? { kind: 'verify', database, backupId: failedVerification.backupId, at: failedVerification.finishedAt, message: failedVerification.failures.join('; ') }
    : undefined;
  return [event, verifyEvent].filter((e): e is FailureEvent => e !== undefined).sort((a, b) => b.at.localeCompare(a.at))[0];
}

async function repositoryStatus(context: PlanContext, catalog: Catalog): Promise<RepositoryStatus[]> {
  return Promise.all(
    context.storages.map(async (storage) => {
      const listing = catalog.listings.find((l) => l.storage === storage);
      const backups = catalog.entries.filter((e) => e.copies.some((c) => c.storage === storage)).length;
      const bytes = listing ? listing.objects.reduce((sum, o) => sum + o.size, 0) : 0;
      try {
        await storage.check();
        return { repository: storage.name, reachable: listing !== undefined, backups, bytes };
      } catch (err) {
        return { repository: storage.name, reachable: false, error: (err as Error).message, backups, bytes };
      }
    }),
  );
}
