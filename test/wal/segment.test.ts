import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import {
  nextSegmentName,
  parseHistoryFile,
  parseLsn,
  parseSegmentName,
  parseWalFileName,
  segmentName,
  segmentsPerLog,
  segnoOfLsn,
} from '../../src/wal/segment.js';

const MIB = 1024 * 1024;

describe('segment names', () => {
  it('parses timeline, log and seg', () => {
    expect(parseSegmentName('000000010000000000000003')).toEqual({ timeline: 1, segno: 3n });
    expect(parseSegmentName('0000000A00000002000000FF')).toEqual({ timeline: 10, segno: 2n * 256n + 255n });
  });

  it('rejects seg past the end of a log', () => {
    expect(parseSegmentName('000000010000000000000100')).toBeUndefined();
    expect(parseSegmentName('000000010000000000000100', MIB)).toEqual({ timeline: 1, segno: 256n });
  });

  it('rejects names that are not segments', () => {
    expect(parseSegmentName('00000001000000000000003')).toBeUndefined();
    expect(parseSegmentName('00000002.history')).toBeUndefined();
    expect(parseSegmentName('00000001000000000000000g')).toBeUndefined();
  });

  it('formats back to the same name', () => {
    for (const name of ['000000010000000000000000', '0000000300000001000000FE', 'FFFFFFFF00000ABC00000012']) {
      expect(segmentName(parseSegmentName(name)!)).toBe(name);
    }
  });

  it('next segment rolls over the log', () => {
    expect(nextSegmentName('000000010000000000000003')).toBe('000000010000000000000004');
    expect(nextSegmentName('0000000100000000000000FF')).toBe('000000010000000100000000');
    expect(nextSegmentName('000000020000000000000003', 1024 * MIB)).toBe('000000020000000100000000');
    expect(nextSegmentName('000000010000000000000FFF', MIB)).toBe('000000010000000100000000');
  });

  it('next segment of a non-segment is a usage error', () => {
    expect(() => nextSegmentName('00000002.history')).toThrow(UsageError);
  });

  it('segments per log follow the segment size', () => {
    expect(segmentsPerLog()).toBe(256n);
    expect(segmentsPerLog(64 * MIB)).toBe(64n);
    expect(segmentsPerLog(MIB)).toBe(4096n);
    expect(() => segmentsPerLog(3 * MIB)).toThrow(/invalid WAL segment size 3145728/);
    expect(() => segmentsPerLog(2048 * MIB)).toThrow(UsageError);
  });
});

describe('WAL file names', () => {
  it('classifies every kind PostgreSQL archives', () => {
    expect(parseWalFileName('000000010000000000000003')).toEqual({ kind: 'segment', name: '000000010000000000000003', timeline: 1, segno: 3n });
    expect(parseWalFileName('000000020000000000000005.partial')).toMatchObject({ kind: 'partial', timeline: 2, segno: 5n });
    expect(parseWalFileName('000000010000000000000002.00000028.backup')).toMatchObject({ kind: 'backup', timeline: 1, segno: 2n });
    expect(parseWalFileName('00000002.history')).toEqual({ kind: 'history', name: '00000002.history', timeline: 2 });
  });

  it('rejects other names', () => {
    for (const name of ['RECOVERYXLOG', '000000010000000000000003.zst', '00000002.HISTORY', 'archive_status', '']) {
      expect(parseWalFileName(name), name).toBeUndefined();
    }
  });
});

describe('LSNs and history files', () => {
  it('parses an LSN', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028n);
    expect(parseLsn('1/0')).toBe(0x1_0000_0000n);
    expect(() => parseLsn('3000028')).toThrow(/invalid LSN "3000028"/);
  });

  it('finds the segment of an LSN', () => {
    expect(segnoOfLsn(0x3000028n)).toBe(3n);
    expect(segnoOfLsn(0x1_0000_0000n)).toBe(256n);
    expect(segnoOfLsn(0x3000028n, MIB)).toBe(48n);
  });

  it('parses a history file', () => {
    const text = '1\t0/5000198\tno recovery target specified\n\n# comment\n2\t0/9000000\tat restore point "x"\n';
    expect(parseHistoryFile(text)).toEqual([
      { timeline: 1, switchLsn: 0x5000198n },
      { timeline: 2, switchLsn: 0x9000000n },
    ]);
  });

  it('rejects a damaged history line', () => {
    expect(() => parseHistoryFile('1\tnonsense\n')).toThrow(/invalid timeline history line/);
  });
});
