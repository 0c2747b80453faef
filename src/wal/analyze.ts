/**
 * Reads one database's archived WAL from every repository and checks it
 * against the physical base backups: archived range per timeline, gaps, the
 * chain from each base backup to the newest segment, and the WAL RPO.
 *
 * The repositories are taken together: recovery fetches each file from the
 * first repository that has it, so a file missing on one repository but
 * present on another is no gap.
 */
import { readCatalog, type Catalog } from '../backup/catalog.js';
import type { PhysicalMetadata } from '../backup/metadata.js';
import type { PlanContext } from '../context.js';
import type { ObjectInfo, Storage } from '../storage/storage.js';
import { CHECKSUM_SUFFIX, readObject } from './archive.js';
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
  newest: { name: string; modified: string } | null;
  /** Seconds since the newest archived WAL file was stored; null without any. */
  rpoSeconds: number | null;
  chains: ChainResult[];
  /** Repositories whose WAL could not be listed or read. */
  problems: { repository: string; error: string }[];
  /** False when a gap breaks a base backup's chain. */
  ok: boolean;
}

/** Analyzes one database's archive as of `now`; pass a catalog already read to save a listing. */
export async function analyzeWal(context: PlanContext, database: string, options: { catalog?: Catalog; now?: Date } = {}): Promise<WalAnalysis> {
  const catalog = options.catalog ?? (await readCatalog(context, database));
  const backups = physicalBackups(catalog, database);
  const problems: WalAnalysis['problems'] = [];
  const files = await listArchivedFiles(context.storages, database, problems);
  const inventory = await readInventory(files, backups[0]?.wal.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE, problems);

  const newest = [...files.values()].reduce<ArchivedFile | undefined>((best, f) => (!best || f.info.modified > best.info.modified ? f : best), undefined);
  const now = options.now ?? new Date();
  const chains = backups.map((meta) =>
    checkRecoveryChain(inventory, { backupId: meta.id, timeline: meta.wal.timeline, firstSegment: meta.wal.firstSegment, lastSegment: meta.wal.lastSegment }),
  );
  return {
    database,
    files: files.size,
    timelines: timelineRanges(inventory),
    newest: newest ? { name: newest.name, modified: newest.info.modified.toISOString() } : null,
    rpoSeconds: newest ? Math.max(0, Math.round((now.getTime() - newest.info.modified.getTime()) / 1000)) : null,
    chains,
    problems,
    ok: chains.every((c) => c.ok),
  };
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

/** Lists archived files by WAL file name, the copy of the first repository in plan order winning. */
export async function listArchivedFiles(storages: Storage[], database: string, problems: WalAnalysis['problems']): Promise<Map<string, ArchivedFile>> {
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
      } catch (err) {
        problems.push({ repository: storage.name, error: (err as Error).message });
      }
      return found;
    }),
  );
  for (const file of listings.flat()) if (!files.has(file.name)) files.set(file.name, file);
  return files;
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
