/**
 * Reads one database's archived WAL from every repository and checks it
 * against the physical base backups: archived range per timeline, gaps, the
 * chain from each base backup to the newest segment, and the WAL RPO.
 *
 * The repositories are taken together: recovery fetches each file from the
 * first repository that has it, so a file missing on one repository but
 * present on another is no gap. Such a file is still reported, per
 * repository, because that repository alone could no longer recover.
 */
import { readCatalog, type Catalog } from '../backup/catalog.js';
import type { PhysicalMetadata } from '../backup/metadata.js';
import type { PlanContext } from '../context.js';
import { IntegrityError, StorageError } from '../errors.js';
import { withRepositoryPrefix, type ObjectInfo, type Storage } from '../storage/storage.js';
import { CHECKSUM_SUFFIX, readChecksum, readObject } from './archive.js';
import { decompressBuffer } from './codec.js';
import { buildInventory, checkRecoveryChain, timelineRanges, type ChainResult, type TimelineRange, type WalInventory } from './continuity.js';
import { isWalFileName, walPrefix } from './layout.js';
import { DEFAULT_WAL_SEGMENT_SIZE, parseHistoryFile, parseWalFileName, type TimelineSwitch } from './segment.js';

const STORED_EXTENSION = /(\.zst|\.gz)$/;

/** One archived file as found in a repository. */
export interface ArchivedFile {
  name: string;
  key: string;
  storage: Storage;
  info: ObjectInfo;
}

export interface WalAnalysis {
  database: string;
  /** Archived WAL files (segments, history, partial and backup files), all repositories together. */
  files: number;
  timelines: TimelineRange[];
  /**
   * The highest archived segment in WAL order (timeline, then segment
   * number). `archivedAt` comes from its checksum object, or from the
   * object's modification time when that is missing or unreadable.
   */
  newest: { name: string; archivedAt: string; modified: string } | null;
  /** Seconds since the newest segment was archived; null without any segment. */
  rpoSeconds: number | null;
  chains: ChainResult[];
  /** Repositories whose WAL could not be listed or read. */
  problems: { repository: string; error: string }[];
  /** Segments another repository has but this one lacks: no gap for recovery, but a lost redundancy. */
  repositoryGaps: RepositoryWalGap[];
  /** False when a gap breaks a base backup's chain. */
  ok: boolean;
}

/** A run of segments, first and last included, that one repository lacks while another has them. */
export interface RepositoryWalGap {
  repository: string;
  timeline: number;
  first: string;
  last: string;
  count: number;
}

/** Analyzes one database's archive as of `now`; pass a catalog already read to save a listing. */
export async function analyzeWal(context: PlanContext, database: string, options: { catalog?: Catalog; now?: Date } = {}): Promise<WalAnalysis> {
  const catalog = options.catalog ?? (await readCatalog(context, database));
  const backups = physicalBackups(catalog, database);
  const problems: WalAnalysis['problems'] = [];
  const perRepository = new Map<string, Set<string>>();
  const files = await listArchivedFiles(context.storages, database, problems, perRepository);
  const walSegmentSize = backups[0]?.wal.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
  const inventory = await readInventory(files, walSegmentSize, problems);

  const newest = highestSegment(files, walSegmentSize);
  const archivedAt = newest ? await archiveTime(context, newest) : undefined;
  const now = options.now ?? new Date();
  const chains = backups.map((meta) =>
    checkRecoveryChain(inventory, { backupId: meta.id, timeline: meta.wal.timeline, firstSegment: meta.wal.firstSegment, lastSegment: meta.wal.lastSegment }),
  );
  return {
    database,
    files: files.size,
    timelines: timelineRanges(inventory),
    newest: newest && archivedAt ? { name: newest.name, archivedAt: archivedAt.toISOString(), modified: newest.info.modified.toISOString() } : null,
    rpoSeconds: archivedAt ? Math.max(0, Math.round((now.getTime() - archivedAt.getTime()) / 1000)) : null,
    chains,
    problems,
    repositoryGaps: findRepositoryGaps(perRepository, walSegmentSize),
    ok: chains.every((c) => c.ok),
  };
}

/**
 * Returns the highest segment in WAL order. Modification times are no guide:
 * copying or touching an old segment would make it look newest and hide a
 * stalled archive.
 */
function highestSegment(files: Map<string, ArchivedFile>, walSegmentSize: number): ArchivedFile | undefined {
  let highest: { file: ArchivedFile; timeline: number; segno: bigint } | undefined;
  for (const file of files.values()) {
    const parsed = parseWalFileName(file.name, walSegmentSize);
    if (parsed?.kind !== 'segment') continue;
    const higher = !highest || parsed.timeline > highest.timeline || (parsed.timeline === highest.timeline && parsed.segno > highest.segno);
    if (higher) highest = { file, timeline: parsed.timeline, segno: parsed.segno };
  }
  return highest?.file;
}

/** Returns when `file` was archived: its checksum object's archivedAt, else the object's modification time. */
async function archiveTime(context: PlanContext, file: ArchivedFile): Promise<Date> {
  try {
    const checksum = await readChecksum(file.storage, file.key);
    const recorded = checksum ? new Date(checksum.archivedAt) : undefined;
    if (recorded && !Number.isNaN(recorded.getTime())) return recorded;
  } catch (err) {
    context.log.warn({ repository: file.storage.name, key: file.key, err }, 'checksum object of the newest WAL segment could not be read; using the modification time as its archive time');
  }
  return file.info.modified;
}

/**
 * Reads the archive of `database` for checks before a point-in-time restore:
 * pass the result to checkRecoveryChain with the base backup and the target,
 * then to assertRecoveryChain to stop before a restore that would end at a gap.
 */
export async function readWalInventory(context: PlanContext, database: string, walSegmentSize: number): Promise<{ inventory: WalInventory; problems: WalAnalysis['problems'] }> {
  const problems: WalAnalysis['problems'] = [];
  const files = await listArchivedFiles(context.storages, database, problems);
  return { inventory: await readInventory(files, walSegmentSize, problems), problems };
}

/** Returns the database's physical base backups, oldest first. */
export function physicalBackups(catalog: Catalog, database: string): PhysicalMetadata[] {
  return catalog.entries
    .filter((e) => e.database === database && e.meta.kind === 'physical')
    .map((e) => e.meta as PhysicalMetadata)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/**
 * Lists archived files by WAL file name, the copy of the first repository in
 * plan order winning. `perRepository`, when given, receives the names each
 * repository that could be listed holds.
 */
export async function listArchivedFiles(
  storages: Storage[],
  database: string,
  problems: WalAnalysis['problems'],
  perRepository?: Map<string, Set<string>>,
): Promise<Map<string, ArchivedFile>> {
  const files = new Map<string, ArchivedFile>();
  const prefix = walPrefix(database);
  const listings = await Promise.all(
    storages.map(async (storage) => {
      const found: ArchivedFile[] = [];
      try {
        for await (const info of storage.list(prefix)) {
          const name = walFileNameOfKey(info.key, prefix);
          if (name) found.push({ name, key: info.key, storage, info });
        }
        perRepository?.set(storage.name, new Set(found.map((file) => file.name)));
      } catch (err) {
        problems.push({ repository: storage.name, error: (err as Error).message });
      }
      return found;
    }),
  );
  for (const file of listings.flat()) if (!files.has(file.name)) files.set(file.name, file);
  return files;
}

/**
 * Returns, for each listed repository, the runs of segments that another
 * repository has and it lacks. Runs follow the segments of the union, so
 * a stretch no repository has (a real gap) does not split or widen them.
 */
export function findRepositoryGaps(perRepository: Map<string, Set<string>>, walSegmentSize: number): RepositoryWalGap[] {
  if (perRepository.size < 2) return [];
  const union = [...new Set([...perRepository.values()].flatMap((names) => [...names]))]
    .map((name) => ({ name, parsed: parseWalFileName(name, walSegmentSize) }))
    .filter((file) => file.parsed?.kind === 'segment')
    .sort((a, b) => compareNames(a.name, b.name));
  const gaps: RepositoryWalGap[] = [];
  for (const [repository, names] of perRepository) {
    let run: RepositoryWalGap | undefined;
    for (const { name } of union) {
      if (names.has(name)) {
        run = undefined;
        continue;
      }
      const timeline = Number.parseInt(name.slice(0, 8), 16);
      if (run && run.timeline === timeline) {
        run.last = name;
        run.count += 1;
      } else {
        run = { repository, timeline, first: name, last: name, count: 1 };
        gaps.push(run);
      }
    }
  }
  return gaps;
}

/** Returns the WAL file name in a stored key, or undefined for checksum objects and foreign keys. */
export function walFileNameOfKey(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix) || key.endsWith(CHECKSUM_SUFFIX)) return undefined;
  const name = key.slice(prefix.length).replace(STORED_EXTENSION, '');
  return isWalFileName(name) ? name : undefined;
}

/** Builds the inventory of archived files, reading every timeline history file among them. */
export async function readInventory(files: Map<string, ArchivedFile>, walSegmentSize: number, problems: WalAnalysis['problems']): Promise<WalInventory> {
  const histories = new Map<number, TimelineSwitch[]>();
  for (const file of files.values()) {
    const parsed = parseWalFileName(file.name, walSegmentSize);
    if (parsed?.kind !== 'history') continue;
    try {
      const compression = file.key.endsWith('.zst') ? 'zstd' : file.key.endsWith('.gz') ? 'gzip' : 'none';
      histories.set(parsed.timeline, parseHistoryFile((await decompressBuffer(await readObject(file.storage, file.key), compression)).toString('utf8')));
    } catch (err) {
      problems.push({ repository: file.storage.name, error: `cannot read ${file.key}: ${(err as Error).message}` });
    }
  }
  return buildInventory([...files.keys()], histories, walSegmentSize);
}

/** Raises an IntegrityError for the first gap that breaks a base backup's chain, else a StorageError when a repository's WAL could not be read. */
export function assertWalHealthy(results: WalAnalysis[]): void {
  const broken = results.flatMap((r) => r.chains.filter((c) => !c.ok).map((c) => ({ database: r.database, chain: c })));
  if (broken.length > 0) {
    const { database, chain } = broken[0]!;
    const gap = chain.gaps[0]!;
    throw new IntegrityError(`database ${database}: base backup ${chain.backupId} cannot be recovered to the newest WAL: ${gapText(gap)} missing on timeline ${gap.timeline}`, {
      code: 'wal.gap',
      object: gap.first,
      hint: "Copy the missing segment from the server's pg_wal with `drplan wal push`, or take a new physical base backup.",
    });
  }
  const unreadable = results.flatMap((r) => r.problems);
  if (unreadable.length > 0) {
    throw new StorageError(`archived WAL could not be read: ${unreadable.map((p) => withRepositoryPrefix(p.repository, p.error)).join('; ')}`, { code: 'wal.unreadable' });
  }
}

/** Formats a gap as one segment name, or a range with its length. */
export function gapText(gap: { first: string; last: string; count: number }): string {
  return gap.count === 1 ? gap.first : `${gap.first} to ${gap.last} (${gap.count} segments)`;
}

/** Orders WAL file names by byte value, which is timeline then position for these fixed-width hex names. */
function compareNames(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}
