/**
 * Where a backup's objects live inside a repository. Local disk and S3 use
 * the same layout, so a repository can be copied between them:
 *
 *   backups/<database>/<id>.dump.zst         pg_dump custom format, compressed
 *   backups/<database>/<id>.globals.sql.zst  pg_dumpall --globals-only
 *   backups/<database>/<id>.base.tar.zst     pg_basebackup tar stream (physical backups)
 *   backups/<database>/<id>.manifest.zst     backup_manifest of that base backup
 *   backups/<database>/<id>.meta.json        metadata, written last (the commit point)
 *
 * Backups with a chosen name and pre-restore safety backups go under
 * `manual/` instead of `backups/`.
 */
import { UsageError } from '../errors.js';
import type { Compression } from '../config/schema.js';

export const AREAS = ['backups', 'manual'] as const;
export type Area = (typeof AREAS)[number];

export const META_SUFFIX = '.meta.json';

/** Backup ids and chosen names: safe as a file name and as an S3 key segment. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Returns the default id for a backup started at `time`: `<prefix>_YYYYMMDD_HHMMSS` in UTC. */
export function defaultBackupId(time: Date, prefix = 'backup'): string {
  const iso = time.toISOString();
  return `${prefix}_${iso.slice(0, 10).replace(/-/g, '')}_${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** Rejects a chosen name that could escape the repository or is not a plain name. */
export function assertValidBackupId(id: string): void {
  if (!ID_PATTERN.test(id) || id.includes('..') || id.endsWith(META_SUFFIX)) {
    throw new UsageError(`invalid backup name ${JSON.stringify(id)}`, {
      code: 'backup.name',
      object: id,
      hint: 'Use 1-128 letters, digits, "_", "-" or "." starting with a letter or digit, for example emergency_backup_20261204_031500.',
    });
  }
}

const EXTENSIONS: Record<Compression, string> = { zstd: '.zst', gzip: '.gz', none: '' };

export function fileExtension(compression: Compression): string {
  return EXTENSIONS[compression];
}

/** Returns the keys of one backup's objects. */
export function backupKeys(area: Area, database: string, id: string, compression: Compression) {
  const base = `${area}/${database}/${id}`;
  return {
    dump: `${base}.dump${fileExtension(compression)}`,
    globals: `${base}.globals.sql${fileExtension(compression)}`,
    meta: `${base}${META_SUFFIX}`,
  };
}

/** Returns the keys of one physical base backup's objects. */
export function physicalBackupKeys(area: Area, database: string, id: string, compression: Compression) {
  const base = `${area}/${database}/${id}`;
  return {
    archive: `${base}.base.tar${fileExtension(compression)}`,
    manifest: `${base}.manifest${fileExtension(compression)}`,
    meta: `${base}${META_SUFFIX}`,
  };
}

/** Returns every key that a backup of any kind named `id` would use, for clash checks. */
export function keysOfAnyKind(area: Area, database: string, id: string, compression: Compression): string[] {
  return [...new Set([...Object.values(backupKeys(area, database, id, compression)), ...Object.values(physicalBackupKeys(area, database, id, compression))])];
}

/** Returns the key prefix of a database's backups in one area. */
export function databasePrefix(area: Area, database: string): string {
  return `${area}/${database}/`;
}
