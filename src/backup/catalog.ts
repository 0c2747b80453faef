/**
 * The list of committed backups, read from the repositories themselves (their
 * metadata files), so it works on a machine with nothing but the plan.
 */
import { text } from 'node:stream/consumers';
import type { PlanContext } from '../context.js';
import { DrplanError, NotFoundError, UsageError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { AREAS, META_SUFFIX } from './layout.js';
import { parseMetadata, type BackupMetadata } from './metadata.js';

/** One repository's copy of a backup. */
export interface BackupCopy {
  storage: Storage;
  meta: BackupMetadata;
}

/** A backup with every repository that holds a committed copy of it. */
export interface CatalogEntry {
  id: string;
  database: string;
  /** The metadata of the first copy, in plan order. */
  meta: BackupMetadata;
  copies: BackupCopy[];
}

export interface Catalog {
  /** Newest first. */
  entries: CatalogEntry[];
  /** Repositories that could not be read, or held unreadable metadata. */
  problems: { repository: string; error: Error }[];
}

/** Reads every committed backup of every repository, optionally for one database. */
export async function readCatalog(context: PlanContext, database?: string): Promise<Catalog> {
  const problems: Catalog['problems'] = [];
  const perStorage = await Promise.all(
    context.storages.map((storage) =>
      readRepository(storage, database, problems).catch((err: Error) => {
        problems.push({ repository: storage.name, error: err });
        return [] as BackupCopy[];
      }),
    ),
  );
  return { entries: mergeCopies(perStorage.flat()), problems };
}

async function readRepository(storage: Storage, database: string | undefined, problems: Catalog['problems']): Promise<BackupCopy[]> {
  const copies: BackupCopy[] = [];
  for (const area of AREAS) {
    const prefix = database ? `${area}/${database}/` : `${area}/`;
    for await (const object of storage.list(prefix)) {
      if (!object.key.endsWith(META_SUFFIX)) continue;
      try {
        const meta = parseMetadata(await text(await storage.get(object.key)), object.key, storage.name);
        copies.push({ storage, meta });
      } catch (err) {
        if (!(err instanceof DrplanError)) throw err;
        problems.push({ repository: storage.name, error: err });
      }
    }
  }
  return copies;
}

function mergeCopies(copies: BackupCopy[]): CatalogEntry[] {
  const byKey = new Map<string, CatalogEntry>();
  for (const copy of copies) {
    const key = `${copy.meta.database}\u0000${copy.meta.id}`;
    const entry = byKey.get(key);
    if (entry) entry.copies.push(copy);
    else byKey.set(key, { id: copy.meta.id, database: copy.meta.database, meta: copy.meta, copies: [copy] });
  }
  return [...byKey.values()].sort((a, b) => b.meta.finishedAt.localeCompare(a.meta.finishedAt) || b.id.localeCompare(a.id));
}

/** Finds a backup by id, or the newest with `latest`; `database` narrows the search. */
export function findBackup(catalog: Catalog, idOrLatest: string, database?: string): CatalogEntry {
  const candidates = catalog.entries.filter((e) => database === undefined || e.database === database);
  if (idOrLatest === 'latest') {
    const databases = new Set(candidates.map((e) => e.database));
    if (databases.size > 1) {
      throw new UsageError(`"latest" is ambiguous: the repositories hold backups of ${[...databases].join(', ')}`, {
        code: 'usage.latest',
        hint: 'Pass --database NAME.',
      });
    }
    const newest = candidates[0];
    if (!newest) throw notFound(idOrLatest, database, catalog);
    return newest;
  }
  const matches = candidates.filter((e) => e.id === idOrLatest);
  if (matches.length > 1) {
    throw new UsageError(`backup id ${idOrLatest} exists for several databases: ${matches.map((m) => m.database).join(', ')}`, {
      code: 'usage.ambiguous',
      hint: 'Pass --database NAME.',
    });
  }
  if (!matches[0]) throw notFound(idOrLatest, database, catalog);
  return matches[0];
}

function notFound(id: string, database: string | undefined, catalog: Catalog): NotFoundError {
  const scope = database ? ` for database ${database}` : '';
  const unreadable = catalog.problems.length > 0 ? ` (${catalog.problems.length} repository problem(s) while listing)` : '';
  return new NotFoundError(`backup ${id} not found${scope} in any repository${unreadable}`, {
    code: 'backup.missing',
    object: id,
    hint: 'Run `drplan list` to see the backups that exist.',
  });
}
