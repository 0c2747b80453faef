/**
 * The WAL facts of a base backup read from backup_label and backup_manifest,
 * and the segment names derived from them.
 */
import { describe, expect, it } from 'vitest';
import { backupSegments, parseBackupLabel, parseManifestWalRange } from '../../src/postgres/basebackup.js';
import { insideDirectory } from '../../src/backup/physical-restore.js';
import { IntegrityError } from '../../src/errors.js';

const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-04 02:00:00 UTC
LABEL: drplan backup_20261204_020000
START TIMELINE: 1
`;

function manifest(ranges: unknown[]): Buffer {
  return Buffer.from(JSON.stringify({ 'PostgreSQL-Backup-Manifest-Version': 1, Files: [], 'WAL-Ranges': ranges, 'Manifest-Checksum': '0' }));
}

describe('parseBackupLabel', () => {
  it('reads start LSN and timeline', () => {
    expect(parseBackupLabel(LABEL)).toEqual({ startLsn: '0/2000028', timeline: 1 });
  });

  it('rejects label without start', () => {
    expect(() => parseBackupLabel('LABEL: x\n')).toThrow(IntegrityError);
  });
});

describe('parseManifestWalRange', () => {
  it('reads stop LSN of last range', () => {
    const ranges = [
      { Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/3000000' },
      { Timeline: 2, 'Start-LSN': '0/3000000', 'End-LSN': '0/3000138' },
    ];
    expect(parseManifestWalRange(manifest(ranges))).toEqual({ timeline: 2, startLsn: '0/2000028', endLsn: '0/3000138' });
  });

  it('rejects manifest without ranges', () => {
    expect(() => parseManifestWalRange(manifest([]))).toThrow('backup_manifest of the base backup has no WAL-Ranges entry');
  });

  it('rejects invalid JSON', () => {
    expect(() => parseManifestWalRange(Buffer.from('{'))).toThrow('backup_manifest of the base backup is not valid JSON');
  });
});

describe('backupSegments', () => {
  it('names start and stop segments', () => {
    expect(backupSegments('0/2000028', '0/2000138', 1, 1, 16 * 1024 * 1024)).toEqual({
      firstSegment: '000000010000000000000002',
      lastSegment: '000000010000000000000002',
    });
  });

  it('stop on boundary ends previous segment', () => {
    expect(backupSegments('0/2000028', '0/3000000', 1, 1, 16 * 1024 * 1024).lastSegment).toBe('000000010000000000000002');
  });

  it('splits log and seg fields', () => {
    expect(backupSegments('1/2000028', '1/5000100', 3, 3, 16 * 1024 * 1024)).toEqual({
      firstSegment: '000000030000000100000002',
      lastSegment: '000000030000000100000005',
    });
  });

  it('uses segment size', () => {
    expect(backupSegments('0/8000028', '0/C000100', 1, 1, 64 * 1024 * 1024)).toEqual({
      firstSegment: '000000010000000000000002',
      lastSegment: '000000010000000000000003',
    });
  });
});

describe('insideDirectory', () => {
  it('resolves nested entry', () => {
    expect(insideDirectory('/restore/data', 'base/1/1259')).toBe('/restore/data/base/1/1259');
  });

  it.each(['../outside', 'base/../../outside', '/etc/passwd'])('rejects %s', (name) => {
    expect(() => insideDirectory('/restore/data', name)).toThrow(IntegrityError);
  });
});
