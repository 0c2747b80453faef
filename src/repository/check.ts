/**
 * `drplan repo check`: audits each repository for metadata without its
 * objects, objects without metadata, size mismatches, unreadable metadata
 * and, through wal-check.ts, problems of the archived WAL.
 */
import { readCatalog } from '../backup/catalog.js';
import { storedObjects } from '../backup/metadata.js';
import type { PlanContext } from '../context.js';
import { findPartials } from '../retention/prune.js';
import { checkArchivedWal, type WalCheckOptions } from './wal-check.js';

export interface RepositoryProblem {
  /** A repository name, or "all repositories" for a WAL gap that no repository fills. */
  repository: string;
  kind:
    | 'unreachable'
    | 'unreadable metadata'
    | 'missing object'
    | 'size mismatch'
    | 'object without metadata'
    | 'incomplete write'
    | 'missing WAL segment'
    | 'missing checksum object'
    | 'checksum without WAL object'
    | 'unreadable checksum object'
    | 'damaged WAL object'
    | 'WAL gap';
  key: string;
  detail: string;
}

/** Returns every problem found; an empty list means all repositories are consistent. */
export async function checkRepositories(context: PlanContext, options: WalCheckOptions = {}): Promise<RepositoryProblem[]> {
  const catalog = await readCatalog(context);
  const problems: RepositoryProblem[] = catalog.problems.map((p) => ({
    repository: p.repository,
    kind: p.key ? 'unreadable metadata' : 'unreachable',
    key: p.key ?? '',
    detail: p.error.message,
  }));
  for (const listing of catalog.listings) {
    const sizes = new Map(listing.objects.map((o) => [o.key, o.size]));
    const repository = listing.storage.name;
    for (const entry of catalog.entries) {
      for (const copy of entry.copies.filter((c) => c.storage === listing.storage)) {
        const objects = storedObjects(copy.meta);
        for (const object of objects) {
          const size = sizes.get(object.key);
          if (size === undefined) problems.push({ repository, kind: 'missing object', key: object.key, detail: `metadata ${copy.metaKey} names ${object.key}, which does not exist` });
          else if (size !== object.bytes) problems.push({ repository, kind: 'size mismatch', key: object.key, detail: `stored ${size} bytes, metadata says ${object.bytes}` });
        }
      }
    }
    for await (const write of listing.storage.listIncomplete()) {
      const detail = `started ${write.started.toISOString()}; a running backup, or one that crashed (prune removes it after the grace period)`;
      problems.push({ repository, kind: 'incomplete write', key: write.key, detail });
    }
    for (const orphan of findPartials(listing.objects, Number.POSITIVE_INFINITY)) {
      problems.push({ repository, kind: 'object without metadata', key: orphan.key, detail: `${orphan.size} bytes, modified ${orphan.modified.toISOString()}; a partial or uncommitted backup` });
    }
  }
  problems.push(...(await checkArchivedWal(context, catalog, options)));
  return problems;
}
