/**
 * `drplan prune`: applies each repository's retention rules, removes partial
 * objects left by interrupted runs, and records what it deleted.
 */
import type { CatalogEntry, BackupCopy } from '../backup/catalog.js';
import { isGood, readCatalog } from '../backup/catalog.js';
import { storedObjects, type BackupMetadata, type PhysicalMetadata } from '../backup/metadata.js';
import type { RetentionConfig, RetentionRules } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { acquireDatabaseLock, acquireFilesetLock } from '../lock/database-lock.js';
import type { Logger } from '../logging.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { LockedError } from '../errors.js';
import { keyStamp, parseDuration } from '../util/duration.js';
import { FILES_AREA } from '../backup/layout.js';
import { pruneWal, type WalPruneResult } from '../wal/retention.js';
import { decideRetention, type RetentionDecision } from './policy.js';

export interface PruneDecision extends RetentionDecision {
  class: 'scheduled' | 'manual' | 'pre_restore';
  kind: BackupMetadata['kind'];
  /** Set for a file-set backup; `database` then contains the file set's name. */
  fileset?: true;
}

export interface RepositoryPrune {
  repository: string;
  decisions: PruneDecision[];
  /** Objects without metadata, older than the grace period. */
  partials: { key: string; size: number; modified: string }[];
  /**
   * Objects without metadata still within retention.partialGrace: a backup
   * that is running, or one that stopped too recently to be called
   * abandoned. `repo check` lists them too; prune removes them after
   * `removableAt`.
   */
  partialsInGrace: { key: string; size: number; modified: string; removableAt: string }[];
  /** Temporary files and unfinished multipart uploads older than the grace period. */
  incomplete: { key: string; started: string; uploadId?: string }[];
  /** Archived WAL older than the oldest kept physical base backup, per database. */
  wal: WalPruneResult[];
  warnings: string[];
}

export interface PruneReport {
  dryRun: boolean;
  at: string;
  repositories: RepositoryPrune[];
}

export interface PruneOptions {
  dryRun: boolean;
  now: Date;
  signal?: AbortSignal;
}

/** Decides and, unless `dryRun`, carries out the deletions on every repository. */
export async function runPrune(context: PlanContext, options: PruneOptions): Promise<PruneReport> {
  const catalog = await readCatalog(context);
  if (catalog.problems.length > 0) {
    // Deciding on an incomplete picture could delete what only looks superseded.
    throw catalog.problems[0]!.error;
  }
  const report: PruneReport = { dryRun: options.dryRun, at: options.now.toISOString(), repositories: [] };
  for (const listing of catalog.listings) {
    const config = context.plan.repositories.find((r) => r.name === listing.storage.name)!;
    const copies = catalog.entries.flatMap((entry) => entry.copies.filter((c) => c.storage === listing.storage).map((copy) => ({ entry, copy })));
    const result = planRepository(context, listing.storage.name, config.retention, copies, listing.objects, options.now);
    result.incomplete = await findIncomplete(listing.storage, graceCutoff(config.retention, options.now));
    result.wal = await planWalPrune(context, listing.storage, result, copies);
    if (!options.dryRun) await applyRepository(context, listing.storage, result, copies, options.signal);
    report.repositories.push(result);
  }
  return report;
}

function planRepository(
  context: PlanContext,
  repository: string,
  retention: RetentionConfig | undefined,
  copies: { entry: CatalogEntry; copy: BackupCopy }[],
  objects: ObjectInfo[],
  now: Date,
): RepositoryPrune {
  const decisions: PruneDecision[] = [];
  // Each database, kind and origin is its own group, so keepLast: 7 keeps
  // seven logical and seven physical backups rather than seven of either.
  const byGroup = new Map<string, { entry: CatalogEntry; copy: BackupCopy }[]>();
  // Each database and each file set is decided on its own, even when a file set has a database's name.
  for (const item of copies) {
    const group = `${subjectOfEntry(item.entry)}\u0000${item.entry.meta.kind}\u0000${item.entry.meta.origin}`;
    byGroup.set(group, [...(byGroup.get(group) ?? []), item]);
  }
  for (const items of byGroup.values()) {
    const { origin, kind } = items[0]!.entry.meta;
    const fileset = kind === 'files' ? { fileset: true as const } : {};
    const rules = rulesFor(context, retention, origin);
    const candidates = items.map(({ entry }) => ({ id: entry.id, database: entry.database, time: new Date(entry.meta.startedAt), good: isGood(entry) }));
    decisions.push(...decideRetention(candidates, rules, now).map((d) => ({ ...d, class: origin, kind, ...fileset })));
  }
  // Each class is decided on its own, so a warning that no good backup remains
  // is false while another class still keeps a good backup of that database.
  const keepsGood = new Set(decisions.filter((d) => !d.delete && d.rule !== 'bad, newest').map(subjectOfDecision));
  for (const decision of decisions) {
    if (decision.warning !== undefined && keepsGood.has(subjectOfDecision(decision))) delete decision.warning;
  }
  const warnings = decisions.flatMap((d) => (d.warning ? [d.warning] : []));
  const cutoff = graceCutoff(retention, now);
  const partials = findPartials(objects, cutoff).map((o) => ({ key: o.key, size: o.size, modified: o.modified.toISOString() }));
  const partialsInGrace = findPartialsInGrace(objects, cutoff, parseDuration(retention?.partialGrace ?? '24h'));
  return { repository, decisions, partials, partialsInGrace, incomplete: [], wal: [], warnings };
}

/** Lists the objects without metadata modified at or after `cutoff`, with the time each becomes removable. */
function findPartialsInGrace(objects: ObjectInfo[], cutoff: number, graceMs: number): RepositoryPrune['partialsInGrace'] {
  return findPartials(objects, Number.POSITIVE_INFINITY)
    .filter((o) => o.modified.getTime() >= cutoff)
    .map((o) => ({ key: o.key, size: o.size, modified: o.modified.toISOString(), removableAt: new Date(o.modified.getTime() + graceMs).toISOString() }));
}

/**
 * Returns the time before which partial objects count as abandoned. The real
 * clock, not --now, bounds it: a what-if time in the future must not make a
 * running backup's objects look abandoned.
 */
function graceCutoff(retention: RetentionConfig | undefined, now: Date): number {
  return Math.min(now.getTime(), Date.now()) - parseDuration(retention?.partialGrace ?? '24h');
}

async function findIncomplete(storage: Storage, before: number): Promise<RepositoryPrune['incomplete']> {
  const found: RepositoryPrune['incomplete'] = [];
  for await (const write of storage.listIncomplete()) {
    if (write.started.getTime() < before) found.push({ key: write.key, started: write.started.toISOString(), uploadId: write.uploadId });
  }
  return found;
}

/** Returns the rules for one class of backups, with the plan's compliance cap applied to all of them. */
function rulesFor(context: PlanContext, retention: RetentionConfig | undefined, origin: PruneDecision['class']): RetentionRules {
  const base: RetentionRules = retention ?? {};
  let specific: RetentionRules | undefined;
  if (origin === 'manual') specific = retention?.manual;
  if (origin === 'pre_restore') specific = retention?.preRestore;
  const rules = { ...(specific ?? base) };
  const caps = [rules.maxAgeDays, base.maxAgeDays, context.plan.compliance?.maxRetentionDays].filter((v): v is number => v !== undefined);
  if (caps.length > 0) rules.maxAgeDays = Math.min(...caps);
  return rules;
}

const BACKUP_SUFFIX = /(\.dump(\.zst|\.gz)?|\.globals\.sql(\.zst|\.gz)?|\.base\.tar(\.zst|\.gz)?|\.manifest(\.zst|\.gz)?|\.tar(\.zst|\.gz)?|\.meta\.json|\.verify-\d{8}T\d{9}Z\.json)$/;

/** Objects of a backup whose metadata is missing, last modified before `before`. */
export function findPartials(objects: ObjectInfo[], before: number): ObjectInfo[] {
  const committed = new Set(objects.filter((o) => o.key.endsWith('.meta.json')).map((o) => o.key.replace(BACKUP_SUFFIX, '')));
  return objects.filter((o) => !committed.has(o.key.replace(BACKUP_SUFFIX, '')) && o.modified.getTime() < before);
}

async function applyRepository(context: PlanContext, storage: Storage, result: RepositoryPrune, copies: { entry: CatalogEntry; copy: BackupCopy }[], signal?: AbortSignal): Promise<void> {
  const log = context.log.child({ component: 'prune', repository: storage.name });
  const subjects = new Set([
    ...result.decisions.filter((d) => d.delete).map(subjectOfDecision),
    ...result.partials.map((p) => subjectOfKey(p.key)),
    ...result.incomplete.map((w) => subjectOfKey(w.key)),
    ...result.wal.filter((w) => w.files > 0).map((w) => w.database),
  ]);
  // Everything is deleted under the database's (or file set's) lock, so no backup of it runs meanwhile.
  for (const subject of subjects) {
    const lock = await lockSubject(context, storage, subject, log, signal);
    try {
      for (const decision of result.decisions.filter((d) => d.delete && subjectOfDecision(d) === subject)) {
        const { copy } = copies.find((c) => c.entry.id === decision.id && subjectOfEntry(c.entry) === subject)!;
        await deleteCopy(storage, copy);
        log.info({ backupId: decision.id, database: decision.database, fileset: decision.fileset, rule: decision.rule }, 'backup deleted');
      }
      await removeLeftovers(storage, result, subject, log);
      // After the backups: the WAL a deleted backup needed goes with it, and what a kept one needs stays.
      const walIndex = result.wal.findIndex((w) => w.database === subject);
      if (walIndex >= 0) result.wal[walIndex] = await pruneWal(storage, subject, keptPhysical(result, copies, subject), { dryRun: false, log });
    } finally {
      await lock.release();
    }
  }
  await recordPrune(storage, result);
}

/** Counts, without deleting, the archived WAL each database's kept physical backups no longer need. */
async function planWalPrune(context: PlanContext, storage: Storage, result: RepositoryPrune, copies: { entry: CatalogEntry; copy: BackupCopy }[]): Promise<WalPruneResult[]> {
  const log = context.log.child({ component: 'prune', repository: storage.name });
  const databases = [...new Set(copies.filter((c) => c.entry.meta.kind === 'physical').map((c) => c.entry.database))];
  const planned: WalPruneResult[] = [];
  for (const database of databases) planned.push(await pruneWal(storage, database, keptPhysical(result, copies, database), { dryRun: true, log }));
  return planned;
}

/** Returns the database's physical backups on this repository that retention keeps. */
function keptPhysical(result: RepositoryPrune, copies: { entry: CatalogEntry; copy: BackupCopy }[], database: string): PhysicalMetadata[] {
  const deleted = new Set(result.decisions.filter((d) => d.delete && d.database === database).map((d) => d.id));
  return copies
    .filter((c) => c.entry.database === database && c.copy.meta.kind === 'physical' && !deleted.has(c.entry.id))
    .map((c) => c.copy.meta as PhysicalMetadata);
}

/**
 * Subjects name what a lock protects: a database name, or `files/<fileset>`
 * for a file set (database names hold no "/", so the two never clash).
 */
function subjectOfKey(key: string): string {
  const [area, name = ''] = key.split('/');
  return area === FILES_AREA ? `${FILES_AREA}/${name}` : name;
}

function subjectOfEntry(entry: CatalogEntry): string {
  return entry.meta.kind === 'files' ? `${FILES_AREA}/${entry.database}` : entry.database;
}

function subjectOfDecision(decision: PruneDecision): string {
  return decision.fileset ? `${FILES_AREA}/${decision.database}` : decision.database;
}

function lockSubject(context: PlanContext, storage: Storage, subject: string, log: Logger, signal?: AbortSignal, timeoutMs = parseDuration(context.plan.backup.lockTimeout)) {
  const options = { purpose: 'prune' as const, timeoutMs, log, signal };
  const prefix = `${FILES_AREA}/`;
  return subject.startsWith(prefix) ? acquireFilesetLock([storage], subject.slice(prefix.length), options) : acquireDatabaseLock([storage], subject, options);
}

/** Removes a subject's partial objects and unfinished writes, and returns their keys. */
async function removeLeftovers(storage: Storage, result: Pick<RepositoryPrune, 'partials' | 'incomplete'>, subject: string, log: Logger): Promise<string[]> {
  const removed: string[] = [];
  for (const partial of result.partials.filter((p) => subjectOfKey(p.key) === subject)) {
    // A backup that was running while prune listed the repository may have committed since.
    if (await storage.stat(partial.key.replace(BACKUP_SUFFIX, '.meta.json'))) continue;
    await storage.delete(partial.key);
    removed.push(partial.key);
    log.info({ key: partial.key, bytes: partial.size }, 'partial object deleted');
  }
  for (const write of result.incomplete.filter((w) => subjectOfKey(w.key) === subject)) {
    await storage.abortIncomplete({ key: write.key, started: new Date(write.started), uploadId: write.uploadId });
    removed.push(write.key);
    log.info({ key: write.key }, 'incomplete write removed');
  }
  return removed;
}

/** The result of the start-up cleanup on one repository. */
export interface AbandonedCleanup {
  repository: string;
  /** Keys of the objects and unfinished writes removed. */
  removed: string[];
  /** Subjects left alone because a live run holds their lock. */
  busy: string[];
}

/**
 * Removes objects without metadata and unfinished writes of every database
 * and file set whose lock is free or stale, whatever their age. Without a
 * live lock holder no run can still commit them, so the grace period that
 * prune keeps for runs of other processes is not needed. A subject whose lock
 * a live run holds is left for prune.
 */
export async function cleanAbandoned(context: PlanContext, signal?: AbortSignal): Promise<AbandonedCleanup[]> {
  const catalog = await readCatalog(context);
  const results: AbandonedCleanup[] = [];
  for (const listing of catalog.listings) {
    const { storage } = listing;
    const log = context.log.child({ component: 'cleanup', repository: storage.name });
    const partials = findPartials(listing.objects, Number.POSITIVE_INFINITY).map((o) => ({ key: o.key, size: o.size, modified: o.modified.toISOString() }));
    const incomplete = await findIncomplete(storage, Number.POSITIVE_INFINITY);
    const subjects = new Set([...partials.map((p) => subjectOfKey(p.key)), ...incomplete.map((w) => subjectOfKey(w.key))]);
    const result: AbandonedCleanup = { repository: storage.name, removed: [], busy: [] };
    for (const subject of subjects) {
      const lock = await lockSubject(context, storage, subject, log, signal, 0).catch((err: unknown) => {
        if (err instanceof LockedError) return undefined;
        throw err;
      });
      if (!lock) {
        result.busy.push(subject);
        continue;
      }
      try {
        result.removed.push(...(await removeLeftovers(storage, { partials, incomplete }, subject, log)));
      } finally {
        await lock.release();
      }
    }
    results.push(result);
  }
  return results;
}

/** Deletes the metadata first, so the backup stops being committed before its data goes. */
async function deleteCopy(storage: Storage, copy: BackupCopy): Promise<void> {
  await storage.delete(copy.metaKey);
  const keys = [...storedObjects(copy.meta).map((o) => o.key), ...copy.verificationKeys];
  for (const key of keys) await storage.delete(key);
}

async function recordPrune(storage: Storage, result: RepositoryPrune): Promise<void> {
  const deleted = result.decisions.filter((d) => d.delete);
  const walFiles = result.wal.reduce((sum, w) => sum + w.files, 0);
  if (deleted.length === 0 && result.partials.length === 0 && result.incomplete.length === 0 && walFiles === 0) return;
  const stamp = keyStamp(new Date());
  const record = { formatVersion: 1, at: new Date().toISOString(), deleted, partials: result.partials, incomplete: result.incomplete, wal: result.wal, warnings: result.warnings };
  await storage.put(`prune/${stamp}.json`, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
}
