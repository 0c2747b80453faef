/**
 * Continuity of archived WAL, without I/O: which segments each timeline
 * has, and whether every segment a base backup needs from its first
 * segment to a target is there, following timeline switches.
 *
 * During recovery PostgreSQL reads segment N from the newest timeline of the
 * target's history that had begun by segment N (XLogFileReadAnyTLI). So on a
 * path of timelines, a parent supplies the segments before the segment that
 * contains the switch point, and the child supplies that segment and the ones after.
 */
import { IntegrityError, UsageError } from '../errors.js';
import { parseSegmentName, parseWalFileName, segmentName, segnoOfLsn, type TimelineSwitch } from './segment.js';

/** Everything known about one database's archive. */
export interface WalInventory {
  walSegmentSize: number;
  /** Plain segments by timeline, as sorted segment numbers. */
  segments: Map<number, bigint[]>;
  /** Parsed `.history` files by the timeline they describe. */
  histories: Map<number, TimelineSwitch[]>;
}

/** A run of missing segments on one timeline, first and last included. */
export interface WalGap {
  timeline: number;
  first: string;
  last: string;
  count: number;
}

export interface TimelineRange {
  timeline: number;
  first: string;
  last: string;
  segments: number;
  /** Segments missing between first and last. */
  gaps: WalGap[];
}

/** The WAL a base backup needs from the archive. */
export interface BaseBackupWal {
  backupId: string;
  timeline: number;
  firstSegment: string;
  lastSegment: string;
}

export interface ChainResult {
  backupId: string;
  firstSegment: string;
  /** Timelines followed, oldest first. */
  timelines: number[];
  /** The last segment the chain was checked up to. */
  until: string;
  gaps: WalGap[];
  ok: boolean;
}

/** One step of a timeline path: `timeline` supplies segments in [beginSegno, endSegno). */
interface PathStep {
  timeline: number;
  beginSegno: bigint;
  endSegno: bigint | undefined;
}

/** Builds an inventory from archived file names and the text of their `.history` files. */
export function buildInventory(names: string[], histories: Map<number, TimelineSwitch[]>, walSegmentSize: number): WalInventory {
  const segments = new Map<number, bigint[]>();
  for (const name of names) {
    const parsed = parseWalFileName(name, walSegmentSize);
    if (parsed?.kind !== 'segment') continue;
    segments.set(parsed.timeline, [...(segments.get(parsed.timeline) ?? []), parsed.segno]);
  }
  for (const list of segments.values()) list.sort(compareBigint);
  return { walSegmentSize, segments, histories };
}

/** Returns each timeline's first and last segment and the gaps between them. */
export function timelineRanges(inventory: WalInventory): TimelineRange[] {
  return [...inventory.segments.entries()]
    .sort(([a], [b]) => a - b)
    .map(([timeline, list]) => ({
      timeline,
      first: name(timeline, list[0]!, inventory),
      last: name(timeline, list.at(-1)!, inventory),
      segments: list.length,
      gaps: gapsBetween(timeline, list, list[0]!, list.at(-1)!, inventory),
    }));
}

/**
 * Checks that every segment from the backup's first segment up to `target`
 * (default: the newest archived segment on the backup's timeline path, and
 * at least the backup's last segment) is archived on the right timeline.
 * `targetTimeline` defaults to the newest timeline that descends from the
 * backup's timeline after the backup ended.
 */
export function checkRecoveryChain(inventory: WalInventory, backup: BaseBackupWal, target: { timeline?: number; segno?: bigint } = {}): ChainResult {
  const size = inventory.walSegmentSize;
  const first = parseSegmentName(backup.firstSegment, size)!.segno;
  const last = parseSegmentName(backup.lastSegment, size)!.segno;
  const path = target.timeline !== undefined ? timelinePath(inventory, target.timeline) : newestPathThrough(inventory, backup.timeline, last);
  const reachable = path.some((step) => step.timeline === backup.timeline && (step.endSegno === undefined || step.endSegno >= last));
  const newest = newestOnPath(inventory, path) ?? last;
  const until = target.segno ?? (newest > last ? newest : last);
  const gaps: WalGap[] = [];
  if (!reachable) {
    const timeline = path.at(-1)!.timeline;
    gaps.push({ timeline, first: name(timeline, first, inventory), last: name(timeline, until, inventory), count: Number(until - first + 1n) });
  } else {
    for (const step of path) {
      const from = step.beginSegno > first ? step.beginSegno : first;
      const to = step.endSegno === undefined || step.endSegno - 1n > until ? until : step.endSegno - 1n;
      if (from > to) continue;
      const present = (inventory.segments.get(step.timeline) ?? []).filter((segno) => segno >= from && segno <= to);
      gaps.push(...gapsBetween(step.timeline, present, from, to, inventory));
    }
  }
  const untilTimeline = timelineFor(path, until);
  return {
    backupId: backup.backupId,
    firstSegment: backup.firstSegment,
    timelines: path.filter((step) => step.endSegno === undefined || step.endSegno > first).map((step) => step.timeline),
    until: name(untilTimeline, until, inventory),
    gaps,
    ok: gaps.length === 0,
  };
}

/** Throws an IntegrityError naming the first missing segment when the chain has a gap. */
export function assertRecoveryChain(chain: ChainResult, database: string): void {
  const gap = chain.gaps[0];
  if (!gap) return;
  const range = gap.count === 1 ? `segment ${gap.first} is` : `segments ${gap.first} to ${gap.last} (${gap.count}) are`;
  throw new IntegrityError(`database ${database}: WAL ${range} missing from the archive, so base backup ${chain.backupId} cannot be recovered past it`, {
    code: 'wal.gap',
    object: gap.first,
    hint: 'Find the segment in the server\'s pg_wal and push it with `drplan wal push`, or take a new physical base backup.',
  });
}

/** The timeline recovery follows: a number, the newest one reachable from the backup (`latest`), or the backup's own (`current`). */
export type TimelineRequest = number | 'latest' | 'current';

/**
 * Returns the timeline recovery must follow from a base backup on
 * `backup.timeline` that ended at `backup.stopLsn`. A timeline is reachable
 * when it is the backup's own or its history shows it branching off the
 * backup's timeline at or after the stop LSN; a timeline that branched
 * earlier never contained the backup. `latest` takes the highest reachable
 * timeline, so a timeline forked from an older backup is not followed,
 * and refuses when an ancestor of that timeline went on after the fork (see
 * assertSingleHistory). A numbered request that is not reachable is a UsageError.
 */
export function chooseRecoveryTimeline(inventory: WalInventory, backup: { backupId: string; timeline: number; stopLsn: bigint }, request: TimelineRequest): number {
  if (request === 'current') return backup.timeline;
  if (request === 'latest') {
    const known = [...new Set([...inventory.segments.keys(), ...inventory.histories.keys()])].sort((a, b) => b - a);
    const newest = known.find((timeline) => isReachable(inventory, backup, timeline)) ?? backup.timeline;
    assertSingleHistory(inventory, backup.timeline, newest);
    return newest;
  }
  if (isReachable(inventory, backup, request)) return request;
  const history = inventory.histories.get(request);
  const reason = history === undefined ? `no ${timelineHex(request)}.history file is archived` : `its history does not pass through timeline ${backup.timeline} after LSN ${formatLsnText(backup.stopLsn)}`;
  throw new UsageError(`timeline ${request} cannot be reached from base backup ${backup.backupId} on timeline ${backup.timeline}: ${reason}`, {
    code: 'pitr.timeline',
    object: String(request),
    hint: `Choose --target-timeline ${backup.timeline} (the backup's own), latest, or a timeline that branched off after the backup; \`drplan wal status\` lists the archived timelines.`,
  });
}

/**
 * Rejects `latest` when it would follow `chosen` although a timeline on its
 * path, from the backup's timeline on, has archived a segment that begins at
 * or after the point where the next timeline of the path branched off. The
 * archive then contains two histories that both went on after the fork, as
 * when a promoted test restore archives into the repository of a primary
 * that keeps writing. The higher timeline number does not tell which one is
 * wanted. A segment that straddles the switch point does not count: a
 * standby promoted at the end of archived WAL branches off inside the last
 * segment it read, while the old timeline stopped there.
 */
function assertSingleHistory(inventory: WalInventory, backupTimeline: number, chosen: number): void {
  const switches = inventory.histories.get(chosen) ?? [];
  const start = switches.findIndex((entry) => entry.timeline === backupTimeline);
  if (start < 0) return;
  for (let index = start; index < switches.length; index++) {
    const { timeline: parent, switchLsn } = switches[index]!;
    const child = switches[index + 1]?.timeline ?? chosen;
    const size = BigInt(inventory.walSegmentSize);
    const firstAfter = (switchLsn + size - 1n) / size;
    const parentSegments = inventory.segments.get(parent) ?? [];
    const newestParent = parentSegments.at(-1);
    if (newestParent === undefined || newestParent < firstAfter) continue;
    throw divergedTimelines(inventory, { parent, child, chosen, switchLsn, newestParent });
  }
}

function divergedTimelines(
  inventory: WalInventory,
  fork: { parent: number; child: number; chosen: number; switchLsn: bigint; newestParent: bigint },
): UsageError {
  const newestOf = (timeline: number) => {
    const list = inventory.segments.get(timeline) ?? [];
    return list.length > 0 ? name(timeline, list.at(-1)!, inventory) : 'no segment archived';
  };
  const candidates = [...new Set([fork.parent, fork.child, fork.chosen])].sort((a, b) => a - b);
  const listed = candidates.map((timeline) => `timeline ${timeline} (newest archived ${newestOf(timeline)})`).join(', ');
  const choices = candidates.map((timeline) => `--target-timeline ${timeline}`).join(' or ');
  return new UsageError(
    `ambiguous --target-timeline latest: timeline ${fork.child} branched off timeline ${fork.parent} at LSN ${formatLsnText(fork.switchLsn)}, ` +
      `and timeline ${fork.parent} continued to ${name(fork.parent, fork.newestParent, inventory)}, so the archive contains two histories after that point: ${listed}`,
    {
      code: 'pitr.timeline_diverged',
      object: String(fork.child),
      hint:
        `Choose one with ${choices}: timeline ${fork.parent} is the history a primary that kept writing after the fork is still on, ` +
        `timeline ${fork.chosen} the one a server promoted at the fork went on with (for example a test restore that archived into this repository).`,
    },
  );
}

function isReachable(inventory: WalInventory, backup: { timeline: number; stopLsn: bigint }, timeline: number): boolean {
  if (timeline === backup.timeline) return true;
  const history = inventory.histories.get(timeline) ?? [];
  return history.some((entry) => entry.timeline === backup.timeline && entry.switchLsn >= backup.stopLsn);
}

function timelineHex(timeline: number): string {
  return timeline.toString(16).toUpperCase().padStart(8, '0');
}

function formatLsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Returns the name of segment `segno` as recovery along `timeline`'s path reads it. */
export function segmentOnPath(inventory: WalInventory, timeline: number, segno: bigint): string {
  return name(timelineFor(timelinePath(inventory, timeline), segno), segno, inventory);
}

/** Returns the name of the newest segment recovery along `timeline`'s path reads, in WAL order; undefined when none is archived. */
export function newestSegmentOnPath(inventory: WalInventory, timeline: number): string | undefined {
  const path = timelinePath(inventory, timeline);
  const newest = newestOnPath(inventory, path);
  return newest === undefined ? undefined : name(timelineFor(path, newest), newest, inventory);
}

/** Returns the timelines from timeline 1 (or the oldest known) to `timeline`, with the segments each supplies. */
export function timelinePath(inventory: WalInventory, timeline: number): PathStep[] {
  const switches = inventory.histories.get(timeline) ?? [];
  const steps: PathStep[] = [];
  let begin = 0n;
  for (const entry of switches) {
    const end = segnoOfLsn(entry.switchLsn, inventory.walSegmentSize);
    steps.push({ timeline: entry.timeline, beginSegno: begin, endSegno: end });
    begin = end;
  }
  steps.push({ timeline, beginSegno: begin, endSegno: undefined });
  return steps;
}

/** Picks the newest timeline whose history passes through `timeline` at or after segment `last`. */
function newestPathThrough(inventory: WalInventory, timeline: number, last: bigint): PathStep[] {
  const candidates = [...new Set([...inventory.segments.keys(), ...inventory.histories.keys(), timeline])].sort((a, b) => b - a);
  for (const candidate of candidates) {
    if (candidate < timeline) break;
    const path = timelinePath(inventory, candidate);
    if (path.some((step) => step.timeline === timeline && (step.endSegno === undefined || step.endSegno >= last))) return path;
  }
  return timelinePath(inventory, timeline);
}

function newestOnPath(inventory: WalInventory, path: PathStep[]): bigint | undefined {
  let newest: bigint | undefined;
  for (const step of path) {
    for (const segno of inventory.segments.get(step.timeline) ?? []) {
      const inside = segno >= step.beginSegno && (step.endSegno === undefined || segno < step.endSegno);
      if (inside && (newest === undefined || segno > newest)) newest = segno;
    }
  }
  return newest;
}

function timelineFor(path: PathStep[], segno: bigint): number {
  return [...path].reverse().find((step) => step.beginSegno <= segno)?.timeline ?? path.at(-1)!.timeline;
}

/** Returns the runs of segments in [from, to] that `present` (sorted) lacks. */
function gapsBetween(timeline: number, present: bigint[], from: bigint, to: bigint, inventory: WalInventory): WalGap[] {
  const gaps: WalGap[] = [];
  let expected = from;
  for (const segno of [...present, to + 1n]) {
    if (segno < expected) continue;
    if (segno > expected) {
      gaps.push({ timeline, first: name(timeline, expected, inventory), last: name(timeline, segno - 1n, inventory), count: Number(segno - expected) });
    }
    expected = segno + 1n;
  }
  return gaps;
}

function name(timeline: number, segno: bigint, inventory: WalInventory): string {
  return segmentName({ timeline, segno }, inventory.walSegmentSize);
}

function compareBigint(a: bigint, b: bigint): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

