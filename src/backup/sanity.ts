/**
 * Size sanity checks: a stored backup that is tiny, or far smaller or larger
 * than the recent backups of the same database, is flagged. A sudden drop in
 * size is the classic sign of a dump of the wrong or an emptied database.
 */
import type { BackupFlag } from './metadata.js';

/** Below this many stored bytes a backup is flagged whatever its history. */
export const MIN_STORED_BYTES = 1024;
/** How many recent backups of the same database form the comparison. */
export const RECENT_COUNT = 7;
export const LOW_RATIO = 0.5;
export const HIGH_RATIO = 3;

/** Returns the flags for a backup of `storedBytes`, given the sizes of recent good backups (newest first). */
export function sizeFlags(storedBytes: number, recentSizes: number[]): BackupFlag[] {
  const flags: BackupFlag[] = [];
  if (storedBytes < MIN_STORED_BYTES) {
    flags.push({ code: 'size.tiny', message: `stored size ${storedBytes} bytes is below the minimum of ${MIN_STORED_BYTES} bytes` });
  }
  const recent = recentSizes.slice(0, RECENT_COUNT);
  if (recent.length === 0) return flags;
  const median = medianOf(recent);
  if (storedBytes < median * LOW_RATIO) {
    flags.push({ code: 'size.small', message: `stored size ${storedBytes} bytes is below ${LOW_RATIO} x the median ${median} bytes of the last ${recent.length} backups` });
  } else if (storedBytes > median * HIGH_RATIO) {
    flags.push({ code: 'size.large', message: `stored size ${storedBytes} bytes is above ${HIGH_RATIO} x the median ${median} bytes of the last ${recent.length} backups` });
  }
  return flags;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : Math.round((sorted[middle - 1]! + sorted[middle]!) / 2);
}
