/**
 * WAL file names and segment arithmetic, without I/O.
 *
 * A segment name is three 8-digit hex fields: timeline, "log" and "seg".
 * PostgreSQL numbers segments continuously (segno) and splits the number as
 * log = segno / segmentsPerLog, seg = segno % segmentsPerLog, where
 * segmentsPerLog = 2^32 / segment size (XLogSegmentsPerXLogId in
 * access/xlog_internal.h). With the default 16 MiB segments seg runs from
 * 00000000 to 000000FF.
 */
import { UsageError } from '../errors.js';

/** PostgreSQL's default wal_segment_size. */
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

/** One segment position: a timeline and the continuous segment number. */
export interface SegmentPosition {
  timeline: number;
  segno: bigint;
}

/** The kind and position of an archived WAL file, parsed from its name. */
export type WalFileName =
  | { kind: 'segment'; name: string; timeline: number; segno: bigint }
  | { kind: 'partial'; name: string; timeline: number; segno: bigint }
  | { kind: 'backup'; name: string; timeline: number; segno: bigint }
  | { kind: 'history'; name: string; timeline: number };

const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const HISTORY_NAME = /^([0-9A-F]{8})\.history$/;
const PARTIAL_NAME = /^([0-9A-F]{24})\.partial$/;
const BACKUP_NAME = /^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$/;

/** Returns how many segments one 4 GiB "log" holds for a segment size; rejects sizes PostgreSQL does not allow. */
export function segmentsPerLog(walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  // initdb accepts powers of two from 1 MiB to 1 GiB.
  const valid = Number.isInteger(walSegmentSize) && walSegmentSize >= 1 << 20 && walSegmentSize <= 1 << 30 && (walSegmentSize & (walSegmentSize - 1)) === 0;
  if (!valid) {
    throw new UsageError(`invalid WAL segment size ${walSegmentSize}`, {
      code: 'wal.segment_size',
      object: String(walSegmentSize),
      hint: 'PostgreSQL segment sizes are powers of two from 1 MiB to 1 GiB; the default is 16 MiB (16777216).',
    });
  }
  return 0x1_0000_0000n / BigInt(walSegmentSize);
}

/** Parses a plain segment name such as 000000010000000000000003; undefined for anything else. */
export function parseSegmentName(name: string, walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): SegmentPosition | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (!match) return undefined;
  const perLog = segmentsPerLog(walSegmentSize);
  const seg = BigInt(`0x${match[3]}`);
  // A seg field past the last segment of a log cannot come from a server with this segment size.
  if (seg >= perLog) return undefined;
  return { timeline: Number.parseInt(match[1]!, 16), segno: BigInt(`0x${match[2]}`) * perLog + seg };
}

/** Formats a segment position as PostgreSQL names the file. */
export function segmentName(position: SegmentPosition, walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): string {
  const perLog = segmentsPerLog(walSegmentSize);
  return hex8(BigInt(position.timeline)) + hex8(position.segno / perLog) + hex8(position.segno % perLog);
}

/** Returns the name of the segment after `name` on the same timeline. */
export function nextSegmentName(name: string, walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): string {
  const position = requireSegment(name, walSegmentSize);
  return segmentName({ timeline: position.timeline, segno: position.segno + 1n }, walSegmentSize);
}

/** Parses any archived WAL file name; undefined when it is not one. */
export function parseWalFileName(name: string, walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): WalFileName | undefined {
  const history = HISTORY_NAME.exec(name);
  if (history) return { kind: 'history', name, timeline: Number.parseInt(history[1]!, 16) };
  const base = PARTIAL_NAME.exec(name)?.[1] ?? BACKUP_NAME.exec(name)?.[1] ?? name;
  const position = parseSegmentName(base, walSegmentSize);
  if (!position) return undefined;
  const kind = name.endsWith('.partial') ? 'partial' : name.endsWith('.backup') ? 'backup' : 'segment';
  return { kind, name, ...position };
}

/** Parses an LSN such as 0/3000028 into a byte position. */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!match) {
    throw new UsageError(`invalid LSN ${JSON.stringify(lsn)}`, { code: 'wal.lsn', object: lsn, hint: 'An LSN is two hex numbers separated by "/", such as 0/3000028.' });
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Returns the segment number that contains the byte at `lsn`. */
export function segnoOfLsn(lsn: bigint, walSegmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  segmentsPerLog(walSegmentSize);
  return lsn / BigInt(walSegmentSize);
}

/** One line of a timeline history file: the parent timeline and where the child branched off it. */
export interface TimelineSwitch {
  /** The parent timeline. */
  timeline: number;
  /** The first LSN that belongs to the next timeline in the file, not to `timeline`. */
  switchLsn: bigint;
}

/**
 * Parses a `.history` file: one line per ancestor, oldest first, each
 * "parentTLI<TAB>switchpoint<TAB>reason". Blank lines and lines starting
 * with # are comments, as in PostgreSQL's readTimeLineHistory().
 */
export function parseHistoryFile(text: string): TimelineSwitch[] {
  const switches: TimelineSwitch[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})/.exec(line);
    if (!match) {
      throw new UsageError(`invalid timeline history line ${JSON.stringify(line)}`, {
        code: 'wal.history',
        object: line,
        hint: 'Each line of a .history file is a timeline number, a switch LSN such as 0/3000028 and a reason.',
      });
    }
    switches.push({ timeline: Number(match[1]), switchLsn: parseLsn(match[2]!) });
  }
  return switches;
}

function requireSegment(name: string, walSegmentSize: number): SegmentPosition {
  const position = parseSegmentName(name, walSegmentSize);
  if (!position) {
    throw new UsageError(`${JSON.stringify(name)} is not a WAL segment name`, {
      code: 'wal.segment',
      object: name,
      hint: 'A segment name is 24 hex digits such as 000000010000000000000003.',
    });
  }
  return position;
}

function hex8(value: bigint): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}
