/**
 * The list of committed backups, read from the repositories themselves (their
 * metadata files), so it works on a machine with nothing but the plan.
 */
import { text } from 'node:stream/consumers';
import type { PlanContext } from '../context.js';
import { DrplanError, NotFoundError, UsageError } from '../errors.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { isVerificationKey, metaKeyOfRecord, verificationSchema, type VerificationRecord } from '../verify/records.js';
import { AREAS, FILES_AREA, META_SUFFIX } from './layout.js';
import { parseMetadata, subjectOf, type BackupMetadata } from './metadata.js';

/** One repository's copy of a backup. */
export interface BackupCopy {
  storage: Storage;
  meta: BackupMetadata;
  metaKey: string;
  /** Keys of this copy's verification records, oldest first. */
  verificationKeys: string[];
  /** The newest verification record, when there is one and it is readable. */
  lastVerification?: VerificationRecord;
  /** For a backup with sanity flags: a deep verification has passed on it, so a restore proved it. */
  flagsAccepted?: boolean;
}

/** Everything found in one repository's backup areas. */
export interface RepositoryListing {
  storage: Storage;
  objects: ObjectInfo[];
}

/** A backup with every repository that has a committed copy of it. */
export interface CatalogEntry {
  id: string;
  /** The database, or for a file-set backup the file set's name. */
  database: string;
  /** The metadata of the first copy, in plan order. */
  meta: BackupMetadata;
  copies: BackupCopy[];
}

export interface Catalog {
  /** Newest first. */
  entries: CatalogEntry[];
  /** Repositories that could not be read, or held unreadable metadata. */
  problems: { repository: string; error: Error; key?: string }[];
  /** Every object of every readable repository, for audits and cleanup. */
  listings: RepositoryListing[];
}

/**
 * Narrows a catalog to one database's backups (never a file set's, even of the
 * same name) or to one file set's backups. No filter reads everything.
 */
export type CatalogFilter = { database: string; fileset?: undefined } | { fileset: string; database?: undefined };

/** Reads every committed backup of every repository; a database name or a filter narrows it. */
export async function readCatalog(context: PlanContext, filter?: string | CatalogFilter): Promise<Catalog> {
  const narrowed = typeof filter === 'string' ? { database: filter } : filter;
  const problems: Catalog['problems'] = [];
  const listings: RepositoryListing[] = [];
  const perStorage = await Promise.all(
    context.storages.map(async (storage) => {
      try {
        const objects = await listAreas(storage, narrowed);
        listings.push({ storage, objects });
        const copies = await readCopies(storage, objects, problems);
        return copies.filter((copy) => matchesFilter(copy.meta, narrowed));
      } catch (err) {
        problems.push({ repository: storage.name, error: err as Error });
        return [] as BackupCopy[];
      }
    }),
  );
  return { entries: mergeCopies(perStorage.flat()), problems, listings };
}

/** Lists the areas the filter can match: the database areas, the file-set area, or all of them. */
async function listAreas(storage: Storage, filter: CatalogFilter | undefined): Promise<ObjectInfo[]> {
  const prefixes: string[] = [];
  if (filter?.fileset === undefined) prefixes.push(...AREAS.map((area) => (filter?.database ? `${area}/${filter.database}/` : `${area}/`)));
  if (filter?.database === undefined) prefixes.push(filter?.fileset ? `${FILES_AREA}/${filter.fileset}/` : `${FILES_AREA}/`);
  const objects: ObjectInfo[] = [];
  for (const prefix of prefixes) {
    for await (const object of storage.list(prefix)) objects.push(object);
  }
  return objects;
}

/** Checks the metadata too, so a stray file-set metadata in a database area (or the reverse) never matches. */
function matchesFilter(meta: BackupMetadata, filter: CatalogFilter | undefined): boolean {
  if (filter?.database !== undefined) return meta.kind !== 'files' && meta.database === filter.database;
  if (filter?.fileset !== undefined) return meta.kind === 'files' && meta.fileset === filter.fileset;
  return true;
}

async function readCopies(storage: Storage, objects: ObjectInfo[], problems: Catalog['problems']): Promise<BackupCopy[]> {
  const records = new Map<string, string[]>();
  for (const object of objects.filter((o) => isVerificationKey(o.key)).sort((a, b) => a.key.localeCompare(b.key))) {
    const metaKey = metaKeyOfRecord(object.key);
    records.set(metaKey, [...(records.get(metaKey) ?? []), object.key]);
  }
  const copies: BackupCopy[] = [];
  for (const object of objects.filter((o) => o.key.endsWith(META_SUFFIX))) {
    try {
      const meta = parseMetadata(await text(await storage.get(object.key)), object.key, storage.name);
      const verificationKeys = records.get(object.key) ?? [];
      const lastVerification = await readVerification(storage, verificationKeys.at(-1));
      const flagsAccepted = (meta.flags ?? []).length > 0 ? await passedDeepVerification(storage, verificationKeys) : undefined;
      copies.push({ storage, meta, metaKey: object.key, verificationKeys, lastVerification, flagsAccepted });
    } catch (err) {
      if (!(err instanceof DrplanError)) throw err;
      problems.push({ repository: storage.name, error: err, key: object.key });
    }
  }
  return copies;
}

/** Reads one verification record; an unreadable record counts as none. */
export async function readVerification(storage: Storage, key: string | undefined): Promise<VerificationRecord | undefined> {
  if (!key) return undefined;
  try {
    const parsed = verificationSchema.safeParse(JSON.parse(await text(await storage.get(key))));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a flagged backup's records (flags are rare, so this stays cheap) for a passed deep verification. */
async function passedDeepVerification(storage: Storage, keys: string[]): Promise<boolean> {
  for (const key of [...keys].reverse()) {
    const record = await readVerification(storage, key);
    if (record?.kind === 'deep' && record.ok) return true;
  }
  return false;
}

/** Returns the newest verification of the backup across its copies. */
export function lastVerificationOf(entry: CatalogEntry): VerificationRecord | undefined {
  const records = entry.copies.flatMap((c) => (c.lastVerification ? [c.lastVerification] : []));
  return records.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
}

/**
 * Checks that a backup is good: committed, not failed by its most recent
 * verification, and either free of sanity flags or proved by a passed deep
 * verification (a database that really grew is accepted that way). Only good
 * backups count for objectives and retention.
 */
export function isGood(entry: CatalogEntry): boolean {
  const flagged = (entry.meta.flags ?? []).length > 0;
  const accepted = entry.copies.some((c) => c.flagsAccepted === true);
  return (!flagged || accepted) && lastVerificationOf(entry)?.ok !== false;
}

function mergeCopies(copies: BackupCopy[]): CatalogEntry[] {
  const byKey = new Map<string, CatalogEntry>();
  for (const copy of copies) {
    const key = `${copy.meta.kind === 'files' ? 'files' : 'db'}\u0000${subjectOf(copy.meta)}\u0000${copy.meta.id}`;
    const entry = byKey.get(key);
    if (entry) entry.copies.push(copy);
    else byKey.set(key, { id: copy.meta.id, database: subjectOf(copy.meta), meta: copy.meta, copies: [copy] });
  }
  return [...byKey.values()].sort((a, b) => b.meta.finishedAt.localeCompare(a.meta.finishedAt) || b.id.localeCompare(a.id));
}

/**
 * Finds a backup by id, or with `latest` the newest that is not a pre_restore
 * backup; the filter narrows the search. Without a file-set filter, `latest`
 * means the newest database backup, so a file set is never taken for a database.
 */
export function findBackup(catalog: Catalog, idOrLatest: string, filter?: string | CatalogFilter): CatalogEntry {
  const narrowed = typeof filter === 'string' ? { database: filter } : filter;
  const candidates = catalog.entries.filter((e) => matchesFilter(e.meta, narrowed));
  if (idOrLatest === 'latest') {
    // A pre_restore backup contains the state an in-place restore replaced, often
    // the damaged one; "latest" must not bring that back by accident.
    const databaseOrFiles = candidates.filter((e) => narrowed?.fileset !== undefined || e.meta.kind !== 'files');
    return findLatest(databaseOrFiles.filter((e) => e.meta.origin !== 'pre_restore'), narrowed, catalog);
  }
  const matches = candidates.filter((e) => e.id === idOrLatest);
  if (matches.length > 1) {
    throw new UsageError(`backup id ${idOrLatest} exists for several subjects: ${matches.map(describeSubject).join(', ')}`, {
      code: 'usage.ambiguous',
      hint: 'Pass --database NAME, or --files NAME for a file set.',
    });
  }
  if (!matches[0]) throw notFound(idOrLatest, narrowed, catalog);
  return matches[0];
}

/** Describes what a backup is of, such as `database app` or `file set uploads`. */
export function describeSubject(entry: CatalogEntry): string {
  return entry.meta.kind === 'files' ? `file set ${entry.database}` : `database ${entry.database}`;
}

function findLatest(candidates: CatalogEntry[], filter: CatalogFilter | undefined, catalog: Catalog): CatalogEntry {
  const subjects = new Set(candidates.map(describeSubject));
  if (subjects.size > 1) {
    throw new UsageError(`"latest" is ambiguous: the repositories hold backups of ${[...subjects].map((s) => s.replace(/^database /, '')).join(', ')}`, {
      code: 'usage.latest',
      hint: 'Pass --database NAME.',
    });
  }
  const newest = candidates[0];
  if (!newest) throw notFound('latest', filter, catalog);
  return newest;
}

function notFound(id: string, filter: CatalogFilter | undefined, catalog: Catalog): NotFoundError {
  let scope = '';
  if (filter?.database !== undefined) scope = ` for database ${filter.database}`;
  if (filter?.fileset !== undefined) scope = ` for file set ${filter.fileset}`;
  const unreadable = catalog.problems.length > 0 ? ` (${catalog.problems.length} repository problem(s) while listing)` : '';
  return new NotFoundError(`backup ${id} not found${scope} in any repository${unreadable}`, {
    code: 'backup.missing',
    object: id,
    hint: 'Run `drplan list` to see the backups that exist.',
  });
}
