/**
 * Planning a point-in-time restore without writing anything. It finds the
 * recoverable window of a database (oldest good base backup to newest
 * archived WAL) and the base backup that serves the target, and checks that
 * the archived WAL from that backup on has no gap.
 */
import { isGood, readCatalog, type CatalogEntry } from '../backup/catalog.js';
import type { PhysicalMetadata } from '../backup/metadata.js';
import type { DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { IntegrityError, NotFoundError, StorageError, UsageError } from '../errors.js';
import { withRepositoryPrefix } from '../storage/storage.js';
import { listArchivedFiles, readInventory, type ArchivedFile, type WalAnalysis } from '../wal/analyze.js';
import { assertRecoveryChain, checkRecoveryChain, chooseRecoveryTimeline, newestSegmentOnPath, type ChainResult, type TimelineRequest, type WalInventory } from '../wal/continuity.js';
import { parseLsn, parseSegmentName, segmentName, segnoOfLsn } from '../wal/segment.js';
import { describeTarget, formatLsn, type RecoveryTarget } from './pitr-target.js';

/** The span a database can be recovered to. */
export interface RecoveryWindow {
  /** The oldest good base backup: recovery cannot stop before it has finished. */
  oldestBackup: { id: string; finishedAt: string; stopLsn: string };
  /** The newest archived segment: when it was stored and the LSN where it ends. */
  newestWal: { name: string; archivedAt: string; endLsn: string } | null;
}

export interface PitrPlan {
  database: DatabaseConfig;
  target: RecoveryTarget;
  /** The base backup to extract. */
  entry: CatalogEntry;
  meta: PhysicalMetadata;
  window: RecoveryWindow;
  /** The timeline recovery follows, written as recovery_target_timeline. */
  timeline: number;
  /** The archived WAL the recovery replays, checked for gaps along `timeline`'s path. */
  chain: ChainResult;
  inventory: WalInventory;
  /** Repositories whose WAL could not be listed; recovery reads the others. */
  walProblems: WalAnalysis['problems'];
}

/**
 * Finds the base backup for `target` and checks the WAL it needs. A target
 * outside the recoverable window is a UsageError naming the window. A gap in
 * the archived WAL is an IntegrityError naming the first missing segment.
 */
export async function planPitr(context: PlanContext, database: DatabaseConfig, target: RecoveryTarget, timelineRequest: TimelineRequest = 'latest'): Promise<PitrPlan> {
  const backups = await goodPhysicalBackups(context, database.name);
  const walSegmentSize = physical(backups.at(-1)!).wal.walSegmentSize;
  const problems: WalAnalysis['problems'] = [];
  const files = await listArchivedFiles(context.storages, database.name, problems);
  const inventory = await readInventory(files, walSegmentSize, problems);
  for (const problem of problems) context.log.warn({ repository: problem.repository, database: database.name }, `archived WAL unreadable: ${problem.error}`);

  const reaching = backupsReaching(backups, inventory, timelineRequest);
  // The window ends where recovery from the newest usable backup would end, on the timeline it would follow.
  const windowTimeline = chooseRecoveryTimeline(inventory, backupPosition(physical(reaching.at(-1)!)), timelineRequest);
  const window = recoveryWindow(backups, files, inventory, windowTimeline);
  const entry = chooseBackup(reaching, target, window, database.name);
  const meta = physical(entry);
  const timeline = chooseRecoveryTimeline(inventory, backupPosition(meta), timelineRequest);
  const chain = checkRecoveryChain(
    inventory,
    { backupId: meta.id, timeline: meta.wal.timeline, firstSegment: meta.wal.firstSegment, lastSegment: meta.wal.lastSegment },
    { timeline, ...targetSegment(target, meta) },
  );
  assertChainForTarget(chain, database.name, target, meta);
  return { database, target, entry, meta, window, timeline, chain, inventory, walProblems: problems };
}

/**
 * Rejects a chain with a gap, as assertRecoveryChain does. For a target that
 * is not an LSN, the hint also offers --target-lsn at the start of the last
 * segment before the gap. Every record before that point starts in archived
 * WAL, so recovery can stop there when the backup ended before it.
 */
function assertChainForTarget(chain: ChainResult, database: string, target: RecoveryTarget, meta: PhysicalMetadata): void {
  try {
    assertRecoveryChain(chain, database);
  } catch (error) {
    const gap = chain.gaps[0];
    if (!(error instanceof IntegrityError) || gap === undefined || target.kind === 'lsn') throw error;
    const size = meta.wal.walSegmentSize;
    const before = parseSegmentName(gap.first, size)!.segno - 1n;
    const lsn = before * BigInt(size);
    if (lsn < parseLsn(meta.wal.stopLsn)) throw error;
    const suggestion = `To recover up to just before the gap instead, use --target-lsn ${formatLsn(lsn)} (the start of segment ${segmentName({ timeline: gap.timeline, segno: before }, size)}).`;
    throw new IntegrityError(error.message, { code: error.code, object: error.object, hint: `${error.hint} ${suggestion}`, cause: error.cause });
  }
}

function backupPosition(meta: PhysicalMetadata): { backupId: string; timeline: number; stopLsn: bigint } {
  return { backupId: meta.id, timeline: meta.wal.timeline, stopLsn: parseLsn(meta.wal.stopLsn) };
}

/**
 * Keeps the backups from which a numbered timeline can be reached, so that
 * `--target-timeline 1` after a fork takes a backup of timeline 1. With none
 * left, chooseRecoveryTimeline names the reason for the newest backup before
 * the target is placed in the window, whose message would blame the target.
 */
function backupsReaching(backups: CatalogEntry[], inventory: WalInventory, request: TimelineRequest): CatalogEntry[] {
  if (typeof request !== 'number') return backups;
  const reaching = backups.filter((entry) => {
    try {
      chooseRecoveryTimeline(inventory, backupPosition(physical(entry)), request);
      return true;
    } catch {
      return false;
    }
  });
  if (reaching.length === 0) chooseRecoveryTimeline(inventory, backupPosition(physical(backups.at(-1)!)), request);
  return reaching;
}

/** Returns the good physical backups of `database`, oldest first by the time they finished. */
async function goodPhysicalBackups(context: PlanContext, database: string): Promise<CatalogEntry[]> {
  const catalog = await readCatalog(context, database);
  const backups = catalog.entries
    .filter((e) => e.database === database && e.meta.kind === 'physical' && isGood(e))
    .sort((a, b) => a.meta.finishedAt.localeCompare(b.meta.finishedAt));
  const unreachable = catalog.problems.filter((problem) => problem.key === undefined);
  if (backups.length === 0 && unreachable.length > 0) {
    // Without a listing, "no backup" would be a guess: the unreachable repository may hold the one needed.
    throw new StorageError(`cannot find a physical base backup of database ${database}: ${unreachable.map((p) => withRepositoryPrefix(p.repository, p.error.message)).join('; ')}`, {
      code: 'pitr.unreachable',
      object: unreachable[0]!.repository,
      hint: `Restore access to repository ${unreachable.map((p) => p.repository).join(', ')} and retry; \`drplan list\` shows what each repository holds.`,
      cause: unreachable[0]!.error,
    });
  }
  if (backups.length === 0) {
    const unreadable = catalog.problems.length > 0 ? ` (${catalog.problems.length} repository problem(s) while listing)` : '';
    throw new NotFoundError(`no good physical base backup of database ${database} in any repository${unreadable}`, {
      code: 'pitr.no_base_backup',
      object: database,
      hint: `Point-in-time recovery starts from a physical base backup: take one with \`drplan backup --kind physical --database ${database}\`.`,
    });
  }
  return backups;
}

/**
 * Returns the window from the oldest good backup to the newest segment, in
 * WAL order, on the path of `timeline`. Its time is that segment's
 * modification time, because a copy of an older segment stored later, or a segment of a timeline
 * recovery does not follow, does not show how far the recovery reaches.
 */
function recoveryWindow(backups: CatalogEntry[], files: Map<string, ArchivedFile>, inventory: WalInventory, timeline: number): RecoveryWindow {
  const oldest = physical(backups[0]!);
  const newestName = newestSegmentOnPath(inventory, timeline);
  const newest = newestName === undefined ? undefined : files.get(newestName);
  const segno = newestName === undefined ? undefined : parseSegmentName(newestName, inventory.walSegmentSize)?.segno;
  return {
    oldestBackup: { id: oldest.id, finishedAt: oldest.finishedAt, stopLsn: oldest.wal.stopLsn },
    newestWal:
      newest && segno !== undefined
        ? { name: newest.name, archivedAt: newest.info.modified.toISOString(), endLsn: formatLsn((segno + 1n) * BigInt(inventory.walSegmentSize)) }
        : null,
  };
}

/**
 * Picks the newest base backup that ended before the target: by finish time
 * for a time, by stop LSN for an LSN. A transaction id cannot be placed in
 * time without replaying WAL, so it and "latest" take the newest backup.
 */
function chooseBackup(backups: CatalogEntry[], target: RecoveryTarget, window: RecoveryWindow, database: string): CatalogEntry {
  if (window.newestWal === null) throw outsideWindow(target, window, database, 'no WAL is archived');
  if (target.kind === 'time') {
    const instant = target.time.instant.getTime();
    if (instant > Date.parse(window.newestWal.archivedAt)) throw outsideWindow(target, window, database, 'it is after the newest archived WAL');
    const usable = backups.filter((e) => Date.parse(e.meta.finishedAt) <= instant);
    if (usable.length === 0) throw outsideWindow(target, window, database, 'it is before the oldest base backup finished');
    return usable.at(-1)!;
  }
  if (target.kind === 'lsn') {
    // Recovery stops at the first record that starts at or after the target, so that record must lie in archived WAL.
    if (target.lsn >= parseLsn(window.newestWal.endLsn)) throw outsideWindow(target, window, database, 'it is at or past the end of the newest archived WAL segment');
    const usable = backups.filter((e) => parseLsn(physical(e).wal.stopLsn) <= target.lsn);
    if (usable.length === 0) throw outsideWindow(target, window, database, 'it is before the end of the oldest base backup');
    return usable.reduce((best, e) => (parseLsn(physical(e).wal.stopLsn) >= parseLsn(physical(best).wal.stopLsn) ? e : best));
  }
  return backups.at(-1)!;
}

/** The segment an LSN target lies in: the WAL must be continuous up to there. Other targets are checked to the newest segment. */
function targetSegment(target: RecoveryTarget, meta: PhysicalMetadata): { segno?: bigint } {
  if (target.kind !== 'lsn') return {};
  return { segno: segnoOfLsn(target.lsn, meta.wal.walSegmentSize) };
}

/** Narrows a catalog entry that goodPhysicalBackups selected. */
function physical(entry: CatalogEntry): PhysicalMetadata {
  return entry.meta as PhysicalMetadata;
}

function outsideWindow(target: RecoveryTarget, window: RecoveryWindow, database: string, reason: string): UsageError {
  const from = `${window.oldestBackup.finishedAt} (base backup ${window.oldestBackup.id} finished, LSN ${window.oldestBackup.stopLsn})`;
  const to = window.newestWal ? `${window.newestWal.archivedAt} (newest archived WAL ${window.newestWal.name} stored, ending at LSN ${window.newestWal.endLsn})` : 'nothing archived yet';
  return new UsageError(`cannot recover database ${database} to ${describeTarget(target)}: ${reason}; the recoverable window is from ${from} to ${to}, times in UTC`, {
    code: 'pitr.outside_window',
    object: database,
    hint: window.newestWal
      ? 'Choose a target inside the window. A target after the newest archived WAL needs its WAL archived first (check `drplan wal status`).'
      : 'Nothing can be recovered until WAL is archived: set archive_command to `drplan wal push` (see `drplan wal status`).',
  });
}
