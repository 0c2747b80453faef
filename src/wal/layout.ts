/**
 * The location of archived WAL inside a repository, beside the backups:
 *
 *   wal/<database>/<file name><compression extension>
 *
 * for every file PostgreSQL's archiver hands over: segments
 * (000000010000000000000003), timeline history files (00000002.history),
 * backup history files (000000010000000000000003.00000028.backup) and
 * partial segments (000000010000000000000003.partial). The file name starts
 * with the timeline, so listing a database's prefix returns the files in
 * timeline, then WAL order.
 */
import { UsageError } from '../errors.js';
import type { Compression } from '../config/schema.js';
import { fileExtension } from '../backup/layout.js';

export const WAL_AREA = 'wal';

const SEGMENT = /^[0-9A-F]{24}$/;
const WAL_FILE = /^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$/;

/** True for a plain WAL segment name such as 000000010000000000000003. */
export function isSegmentName(name: string): boolean {
  return SEGMENT.test(name);
}

/** True for any file name PostgreSQL archives: segment, history, partial or backup file. */
export function isWalFileName(name: string): boolean {
  return WAL_FILE.test(name);
}

/** Rejects anything that is not a file name PostgreSQL archives, before it becomes part of a key. */
export function assertWalFileName(name: string): void {
  if (!WAL_FILE.test(name)) {
    throw new UsageError(`${JSON.stringify(name)} is not a WAL file name`, {
      code: 'wal.name',
      object: name,
      hint: 'Expected a segment such as 000000010000000000000003, a timeline history file such as 00000002.history, a .partial segment or a .backup file.',
    });
  }
}

/** Returns the key prefix of one database's archived WAL. */
export function walPrefix(database: string): string {
  return `${WAL_AREA}/${database}/`;
}

/** Returns the key of one archived WAL file. */
export function walKey(database: string, fileName: string, compression: Compression): string {
  assertWalFileName(fileName);
  return `${walPrefix(database)}${fileName}${fileExtension(compression)}`;
}
