/**
 * Backup ids and the object keys of a backup inside a repository.
 */
import { describe, expect, it } from 'vitest';
import { assertValidBackupId, backupKeys, databasePrefix, defaultBackupId, fileExtension, keysOfAnyKind, physicalBackupKeys } from '../../src/backup/layout.js';
import { UsageError } from '../../src/errors.js';

function backupIdError(id: string): unknown {
  try {
    assertValidBackupId(id);
  } catch (err) {
    return err;
  }
  throw new Error(`expected assertValidBackupId(${JSON.stringify(id)}) to throw`);
}

describe('defaultBackupId', () => {
  it('formats UTC timestamp', () => {
    expect(defaultBackupId(new Date('2026-12-04T02:00:05Z'))).toBe('backup_20261204_020005');
  });

  it('uses pre_restore prefix', () => {
    expect(defaultBackupId(new Date('2026-12-04T02:00:05Z'), 'pre_restore')).toBe('pre_restore_20261204_020005');
  });

  it('converts offset to UTC', () => {
    expect(defaultBackupId(new Date('2026-12-04T23:59:59-02:00'))).toBe('backup_20261205_015959');
  });

  it('drops milliseconds', () => {
    expect(defaultBackupId(new Date('2026-01-02T03:04:05.999Z'))).toBe('backup_20260102_030405');
  });

  it('default id is valid', () => {
    expect(() => assertValidBackupId(defaultBackupId(new Date('2026-12-04T02:00:05Z')))).not.toThrow();
    expect(() => assertValidBackupId(defaultBackupId(new Date('2026-12-04T02:00:05Z'), 'pre_restore'))).not.toThrow();
  });
});

describe('assertValidBackupId', () => {
  it.each(['emergency_backup_20261204_031500', 'a', 'before-upgrade.v2', 'A'.repeat(128)])('accepts %s', (id) => {
    expect(() => assertValidBackupId(id)).not.toThrow();
  });

  it.each(['../etc', 'a/b', '.hidden', 'x..y', '', 'a'.repeat(129), 'name.meta.json', '-rf', '_x', 'a b', 'a\\b', 'ä'])('rejects %j', (id) => {
    const error = backupIdError(id);

    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).code).toBe('backup.name');
    expect((error as UsageError).exitCode).toBe(2);
    expect((error as UsageError).object).toBe(id);
    expect((error as UsageError).message).toBe(`invalid backup name ${JSON.stringify(id)}`);
    expect((error as UsageError).hint).toBe(
      'Use 1-128 letters, digits, "_", "-" or "." starting with a letter or digit, for example emergency_backup_20261204_031500.',
    );
  });
});

describe('physicalBackupKeys', () => {
  it('zstd layout', () => {
    expect(physicalBackupKeys('backups', 'shop', 'backup_20261204_020005', 'zstd')).toEqual({
      archive: 'backups/shop/backup_20261204_020005.base.tar.zst',
      manifest: 'backups/shop/backup_20261204_020005.manifest.zst',
      meta: 'backups/shop/backup_20261204_020005.meta.json',
    });
  });

  it('uncompressed layout', () => {
    expect(physicalBackupKeys('manual', 'shop', 'before_upgrade', 'none').archive).toBe('manual/shop/before_upgrade.base.tar');
  });

  it('clash check covers both kinds', () => {
    expect(keysOfAnyKind('backups', 'shop', 'b1', 'gzip').sort()).toEqual(
      ['backups/shop/b1.base.tar.gz', 'backups/shop/b1.dump.gz', 'backups/shop/b1.globals.sql.gz', 'backups/shop/b1.manifest.gz', 'backups/shop/b1.meta.json'],
    );
  });
});

describe('backupKeys', () => {
  it('zstd layout', () => {
    expect(backupKeys('backups', 'shop', 'backup_20261204_020005', 'zstd')).toEqual({
      dump: 'backups/shop/backup_20261204_020005.dump.zst',
      globals: 'backups/shop/backup_20261204_020005.globals.sql.zst',
      meta: 'backups/shop/backup_20261204_020005.meta.json',
    });
  });

  it('gzip layout', () => {
    expect(backupKeys('backups', 'shop', 'backup_20261204_020005', 'gzip')).toEqual({
      dump: 'backups/shop/backup_20261204_020005.dump.gz',
      globals: 'backups/shop/backup_20261204_020005.globals.sql.gz',
      meta: 'backups/shop/backup_20261204_020005.meta.json',
    });
  });

  it('uncompressed layout', () => {
    expect(backupKeys('backups', 'shop', 'backup_20261204_020005', 'none')).toEqual({
      dump: 'backups/shop/backup_20261204_020005.dump',
      globals: 'backups/shop/backup_20261204_020005.globals.sql',
      meta: 'backups/shop/backup_20261204_020005.meta.json',
    });
  });

  it('manual area layout', () => {
    expect(backupKeys('manual', 'shop', 'emergency_backup_20261204_031500', 'zstd')).toEqual({
      dump: 'manual/shop/emergency_backup_20261204_031500.dump.zst',
      globals: 'manual/shop/emergency_backup_20261204_031500.globals.sql.zst',
      meta: 'manual/shop/emergency_backup_20261204_031500.meta.json',
    });
  });

  it('keys share database prefix', () => {
    const keys = backupKeys('manual', 'shop', 'pre_restore_20261204_020005', 'gzip');

    expect(databasePrefix('manual', 'shop')).toBe('manual/shop/');
    expect(keys.dump.startsWith(databasePrefix('manual', 'shop'))).toBe(true);
    expect(keys.globals.startsWith(databasePrefix('manual', 'shop'))).toBe(true);
    expect(keys.meta.startsWith(databasePrefix('manual', 'shop'))).toBe(true);
  });
});

describe('fileExtension', () => {
  it.each([
    ['zstd', '.zst'],
    ['gzip', '.gz'],
    ['none', ''],
  ] as const)('%s gives %j', (compression, extension) => {
    expect(fileExtension(compression)).toBe(extension);
  });
});
