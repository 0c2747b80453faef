/**
 * The archived-WAL part of `drplan repo check`. Per repository it finds WAL
 * objects whose stored size differs from their checksum object, WAL objects
 * without a checksum object, checksum objects without their WAL object, and
 * segments that only other repositories contain. For all repositories
 * together it finds gaps that break a base backup's chain.
 *
 * Comparing sizes reads every checksum object (one small GET per archived
 * file). Comparing content downloads and decompresses every archived file, so
 * it runs only on request (`repo check --wal-content`).
 */
import type { Catalog } from '../backup/catalog.js';
import type { Compression } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { analyzeWal, findRepositoryGaps, gapText, listArchivedFiles, walFileNameOfKey } from '../wal/analyze.js';
import { CHECKSUM_SUFFIX, readChecksum, readObject, type WalChecksum } from '../wal/archive.js';
import { decompressBuffer, sha256 } from '../wal/codec.js';
import type { WalGap } from '../wal/continuity.js';
import { walPrefix } from '../wal/layout.js';
import { DEFAULT_WAL_SEGMENT_SIZE } from '../wal/segment.js';
import type { RepositoryProblem } from './check.js';

/** Checksum objects read at once; each is a few hundred bytes. */
const CHECKSUM_READS = 16;
/** WAL files downloaded at once by the content check; each is held in memory twice (stored and decompressed, 16 MiB by default). */
const CONTENT_READS = 4;

/** Label for problems that concern the repositories taken together. */
export const ALL_REPOSITORIES = 'all repositories';

export interface WalCheckOptions {
  /** Downloads, decompresses and hashes every archived WAL file against its checksum object. */
  content?: boolean;
}

/** One archived WAL object in one repository, with its checksum object if that exists. */
interface WalObject {
  storage: Storage;
  name: string;
  info: ObjectInfo;
  hasChecksum: boolean;
}

/** Returns the problems of every database's archived WAL in every repository. */
export async function checkArchivedWal(context: PlanContext, catalog: Catalog, options: WalCheckOptions = {}): Promise<RepositoryProblem[]> {
  const problems: RepositoryProblem[] = [];
  // A repository the catalog could not list is already reported as unreachable.
  const unreachable = new Set(catalog.problems.filter((p) => !p.key).map((p) => p.repository));
  const reachable = context.storages.filter((s) => !unreachable.has(s.name));
  for (const database of context.plan.databases) {
    for (const storage of reachable) problems.push(...(await checkRepositoryWal(storage, database.name, options)));
    problems.push(...(await repositoryGapProblems(context, database.name)));
    problems.push(...(await chainGapProblems(context, database.name, catalog)));
  }
  return problems;
}

/** Audits one database's WAL objects and checksum objects in one repository. */
async function checkRepositoryWal(storage: Storage, database: string, options: WalCheckOptions): Promise<RepositoryProblem[]> {
  const repository = storage.name;
  const prefix = walPrefix(database);
  let listed: ObjectInfo[];
  try {
    listed = await listAll(storage, prefix);
  } catch (err) {
    return [{ repository, kind: 'unreachable', key: prefix, detail: `archived WAL could not be listed: ${(err as Error).message}` }];
  }

  const keys = new Set(listed.map((o) => o.key));
  const problems: RepositoryProblem[] = [];
  const objects: WalObject[] = [];
  for (const info of listed) {
    if (info.key.endsWith(CHECKSUM_SUFFIX)) {
      const walKey = info.key.slice(0, -CHECKSUM_SUFFIX.length);
      if (!keys.has(walKey)) problems.push({ repository, kind: 'checksum without WAL object', key: info.key, detail: `${walKey} does not exist` });
      continue;
    }
    const name = walFileNameOfKey(info.key, prefix);
    if (name) objects.push({ storage, name, info, hasChecksum: keys.has(`${info.key}${CHECKSUM_SUFFIX}`) });
  }

  for (const object of objects.filter((o) => !o.hasChecksum)) {
    problems.push({ repository, kind: 'missing checksum object', key: object.info.key, detail: `${object.info.key}${CHECKSUM_SUFFIX} does not exist, so nothing records the SHA-256 of ${object.name}` });
  }
  const checked = objects.filter((o) => o.hasChecksum);
  const results = await mapLimited(checked, options.content ? CONTENT_READS : CHECKSUM_READS, (object) => checkWalObject(object, options));
  for (const problem of results) if (problem) problems.push(problem);
  return problems;
}

/** Compares one WAL object with its checksum object: the listed size always, the content on request. */
async function checkWalObject(object: WalObject, options: WalCheckOptions): Promise<RepositoryProblem | undefined> {
  const repository = object.storage.name;
  const key = object.info.key;
  let checksum: WalChecksum | undefined;
  try {
    checksum = await readChecksum(object.storage, key);
  } catch (err) {
    return { repository, kind: 'unreadable checksum object', key: `${key}${CHECKSUM_SUFFIX}`, detail: (err as Error).message };
  }
  // Deleted between the listing and the read: reported as missing, like one never written.
  if (!checksum) return { repository, kind: 'missing checksum object', key, detail: `${key}${CHECKSUM_SUFFIX} does not exist` };
  if (object.info.size !== checksum.storedBytes) {
    return { repository, kind: 'size mismatch', key, detail: `stored ${object.info.size} bytes, checksum object says ${checksum.storedBytes}` };
  }
  if (!options.content) return undefined;
  return checkWalContent(object, checksum);
}

/** Downloads, decompresses and hashes one WAL object; returns a problem when it does not match its checksum object. */
async function checkWalContent(object: WalObject, checksum: WalChecksum): Promise<RepositoryProblem | undefined> {
  const repository = object.storage.name;
  const key = object.info.key;
  let original: Buffer;
  try {
    original = await decompressBuffer(await readObject(object.storage, key), compressionOfKey(key));
  } catch (err) {
    return { repository, kind: 'damaged WAL object', key, detail: `cannot be decompressed: ${(err as Error).message}` };
  }
  const actual = sha256(original);
  if (actual !== checksum.sha256 || original.length !== checksum.bytes) {
    return { repository, kind: 'damaged WAL object', key, detail: `content has sha256 ${actual} (${original.length} bytes), checksum object says ${checksum.sha256} (${checksum.bytes} bytes)` };
  }
  return undefined;
}

/**
 * Returns the archived WAL segments a repository lacks while another
 * contains them. Recovery still finds them, but that repository alone could not
 * recover, so it counts as a problem here.
 */
async function repositoryGapProblems(context: PlanContext, database: string): Promise<RepositoryProblem[]> {
  const perRepository = new Map<string, Set<string>>();
  // Listing failures are already reported per repository by checkRepositoryWal.
  await listArchivedFiles(context.storages, database, [], perRepository);
  return findRepositoryGaps(perRepository, DEFAULT_WAL_SEGMENT_SIZE).map((gap) => {
    const segments = gap.count === 1 ? `segment ${gap.first}` : `segments ${gap.first} to ${gap.last} (${gap.count})`;
    return { repository: gap.repository, kind: 'missing WAL segment', key: `${walPrefix(database)}${gap.first}`, detail: `database ${database}: ${segments} missing here but held by another repository` };
  });
}

/**
 * Returns the gaps, missing in every repository, that break a base backup's
 * chain, as `wal status` finds them. A gap shared by several chains is one
 * problem that names every base backup it breaks.
 */
async function chainGapProblems(context: PlanContext, database: string, catalog: Catalog): Promise<RepositoryProblem[]> {
  const analysis = await analyzeWal(context, database, { catalog });
  const gaps = new Map<string, { gap: WalGap; backupIds: string[] }>();
  for (const chain of analysis.chains.filter((c) => !c.ok)) {
    for (const gap of chain.gaps) {
      const id = `${gap.timeline}/${gap.first}`;
      const known = gaps.get(id);
      if (known) known.backupIds.push(chain.backupId);
      else gaps.set(id, { gap, backupIds: [chain.backupId] });
    }
  }
  return [...gaps.values()].map(({ gap, backupIds }) => ({
    repository: ALL_REPOSITORIES,
    kind: 'WAL gap',
    key: `${walPrefix(database)}${gap.first}`,
    detail: `database ${database}: ${gapText(gap)} missing on timeline ${gap.timeline} in every repository; base backup ${backupIds.join(', ')} cannot be recovered past it`,
  }));
}

async function listAll(storage: Storage, prefix: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  for await (const info of storage.list(prefix)) objects.push(info);
  return objects;
}

function compressionOfKey(key: string): Compression {
  if (key.endsWith('.zst')) return 'zstd';
  if (key.endsWith('.gz')) return 'gzip';
  return 'none';
}

/** Runs `task` on every item with at most `limit` running at once; results keep the order of `items`. */
async function mapLimited<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
