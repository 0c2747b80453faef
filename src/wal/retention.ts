/**
 * Retention of archived WAL: files older than the first segment of the
 * oldest kept physical base backup can no longer be replayed by any restore,
 * so they go. Timeline history files stay, because recovery reads them to
 * follow timeline switches and they are tiny. A database without a physical
 * base backup keeps everything: its WAL may be meant for one still to come.
 */
import type { PhysicalMetadata } from '../backup/metadata.js';
import type { Logger } from '../logging.js';
import type { Storage } from '../storage/storage.js';
import { CHECKSUM_SUFFIX } from './archive.js';
import { walFileNameOfKey } from './analyze.js';
import { walPrefix } from './layout.js';
import { parseSegmentName, parseWalFileName } from './segment.js';

export interface WalPruneResult {
  database: string;
  /** The first segment still needed, or null when nothing may be deleted. */
  keepFrom: string | null;
  /** Archived WAL files deleted (or, in a dry run, to delete). */
  files: number;
  bytes: number;
}

/**
 * Deletes, unless `dryRun`, the archived WAL of `database` on one repository
 * that precedes the first segment of the oldest of `keptBackups`.
 */
export async function pruneWal(storage: Storage, database: string, keptBackups: PhysicalMetadata[], options: { dryRun: boolean; log: Logger }): Promise<WalPruneResult> {
  const oldest = oldestFirstSegment(keptBackups);
  if (!oldest) return { database, keepFrom: null, files: 0, bytes: 0 };
  const keys = await keysBefore(storage, database, oldest.segno, oldest.walSegmentSize);
  const files = keys.filter((k) => !k.key.endsWith(CHECKSUM_SUFFIX));
  const bytes = files.reduce((sum, k) => sum + k.size, 0);
  if (!options.dryRun) {
    // The WAL file before its checksum object: a checksum object alone is harmless, a file without one loses its check.
    for (const { key } of [...files, ...keys.filter((k) => k.key.endsWith(CHECKSUM_SUFFIX))]) await storage.delete(key);
  }
  if (files.length > 0) {
    options.log.info({ repository: storage.name, database, files: files.length, bytes, keepFrom: oldest.name, dryRun: options.dryRun }, options.dryRun ? 'archived WAL to delete' : 'archived WAL deleted');
  }
  return { database, keepFrom: oldest.name, files: files.length, bytes };
}

/** Returns the earliest first segment among the backups, with its segment size. */
export function oldestFirstSegment(backups: PhysicalMetadata[]): { name: string; segno: bigint; walSegmentSize: number } | undefined {
  let oldest: { name: string; segno: bigint; walSegmentSize: number } | undefined;
  for (const meta of backups) {
    const position = parseSegmentName(meta.wal.firstSegment, meta.wal.walSegmentSize);
    if (position && (!oldest || position.segno < oldest.segno)) oldest = { name: meta.wal.firstSegment, segno: position.segno, walSegmentSize: meta.wal.walSegmentSize };
  }
  return oldest;
}

/** Lists the stored keys (WAL files and checksum objects) of segments before `segno` on any timeline. */
async function keysBefore(storage: Storage, database: string, segno: bigint, walSegmentSize: number): Promise<{ key: string; size: number }[]> {
  const prefix = walPrefix(database);
  const found: { key: string; size: number }[] = [];
  for await (const info of storage.list(prefix)) {
    const stored = info.key.endsWith(CHECKSUM_SUFFIX) ? info.key.slice(0, -CHECKSUM_SUFFIX.length) : info.key;
    const name = walFileNameOfKey(stored, prefix);
    const parsed = name ? parseWalFileName(name, walSegmentSize) : undefined;
    // Every timeline: a timeline that branched before `segno` cannot lead from a kept backup to any target.
    if (parsed && parsed.kind !== 'history' && parsed.segno < segno) found.push({ key: info.key, size: info.size });
  }
  return found;
}
