import { afterEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import {
  describeTarget,
  formatLsn,
  formatTargetTime,
  parseRecoveryTarget,
  parseTargetLsn,
  parseTargetTime,
  parseTargetXid,
} from '../../src/restore/pitr-target.js';

const originalTz = process.env.TZ;

function withZone(zone: string): void {
  // Node re-reads the time zone when TZ is assigned.
  process.env.TZ = zone;
}

afterEach(() => {
  if (originalTz === undefined) delete process.env.TZ;
  else process.env.TZ = originalTz;
});

describe('parseTargetTime', () => {
  it.each([
    ['2026-12-04T13:30:00Z', '2026-12-04T13:30:00.000Z'],
    ['2026-12-04 13:30:00 UTC', '2026-12-04T13:30:00.000Z'],
    ['2026-12-04 14:30:00+01:00', '2026-12-04T13:30:00.000Z'],
    ['2026-12-04 19:00:00+0530', '2026-12-04T13:30:00.000Z'],
    ['2026-12-04 05:30-08', '2026-12-04T13:30:00.000Z'],
    ['2026-12-04T13:30:00.123456Z', '2026-12-04T13:30:00.123Z'],
  ])('reads %s with its offset', (input, expected) => {
    withZone('Asia/Kolkata');
    const time = parseTargetTime(input);
    expect(time.instant.toISOString()).toBe(expected);
    expect(time.localZone).toBeUndefined();
  });

  it('reads a time without offset in TZ', () => {
    withZone('Asia/Kolkata');
    const time = parseTargetTime('2026-12-04 19:00:00');
    expect(time.instant.toISOString()).toBe('2026-12-04T13:30:00.000Z');
    expect(time.localZone).toBe('Asia/Kolkata');
  });

  it('follows daylight saving in TZ', () => {
    withZone('America/New_York');
    expect(parseTargetTime('2026-07-01 12:00').instant.toISOString()).toBe('2026-07-01T16:00:00.000Z');
    expect(parseTargetTime('2026-12-01 12:00').instant.toISOString()).toBe('2026-12-01T17:00:00.000Z');
  });

  it('rejects a skipped local time', () => {
    withZone('America/New_York');
    // On 2026-03-08 the clocks went from 02:00 straight to 03:00.
    expect(() => parseTargetTime('2026-03-08 02:30')).toThrow(/does not exist in America\/New_York/);
  });

  it('rejects a repeated local time', () => {
    withZone('America/New_York');
    // On 2026-11-01 the clocks went back from 02:00 to 01:00, so 01:30 happened twice.
    expect(() => parseTargetTime('2026-11-01 01:30')).toThrow(/happens twice in America\/New_York \(2026-11-01T05:30:00.000Z and 2026-11-01T06:30:00.000Z\)/);
  });

  it.each(['yesterday', '2026-12-04', '2026-13-01 00:00', '2026-02-30 10:00', '2026-12-04 24:00', '2026-12-04 10:00+16:00', '12/04/2026 10:00'])(
    'rejects %s',
    (input) => {
      const error = catchError(() => parseTargetTime(input));
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toContain(`invalid --target-time ${JSON.stringify(input)}`);
      expect(error.hint).toContain('2026-12-04 14:30:00+01:00');
    },
  );

  it('keeps microseconds for PostgreSQL', () => {
    expect(formatTargetTime(parseTargetTime('2026-12-04 14:30:00.000250+01:00'))).toBe('2026-12-04 13:30:00.000250+00:00');
    expect(formatTargetTime(parseTargetTime('2026-12-04T13:30Z'))).toBe('2026-12-04 13:30:00+00:00');
  });
});

describe('parseTargetLsn', () => {
  it('reads and formats an LSN', () => {
    expect(parseTargetLsn('0/3000028')).toBe(0x3000028n);
    expect(parseTargetLsn('1A/ff')).toBe((0x1an << 32n) | 0xffn);
    expect(formatLsn((0x1an << 32n) | 0xffn)).toBe('1A/FF');
  });

  it.each(['3000028', '0/', 'G/1', '0/123456789'])('rejects %s', (input) => {
    const error = catchError(() => parseTargetLsn(input));
    expect(error.message).toBe(`invalid --target-lsn ${JSON.stringify(input)}`);
    expect(error.hint).toContain('0/3000028');
  });
});

describe('parseTargetXid', () => {
  it('reads an xid', () => {
    expect(parseTargetXid('748')).toBe(748n);
    expect(parseTargetXid('4294967296000')).toBe(4294967296000n);
  });

  it.each(['0', '2', '-5', 'abc', '18446744073709551616'])('rejects %s', (input) => {
    expect(() => parseTargetXid(input)).toThrow(`invalid --target-xid ${JSON.stringify(input)}`);
  });
});

describe('parseRecoveryTarget', () => {
  it('needs exactly one target', () => {
    expect(() => parseRecoveryTarget({})).toThrow('a point-in-time restore needs a recovery target');
    expect(() => parseRecoveryTarget({ targetLsn: '0/1', target: 'latest' })).toThrow('choose one recovery target, not --target-lsn and --target');
  });

  it('accepts only latest as a named target', () => {
    expect(parseRecoveryTarget({ target: 'latest' })).toEqual({ kind: 'latest' });
    expect(() => parseRecoveryTarget({ target: 'newest' })).toThrow('invalid --target "newest"');
  });

  it('describes each target', () => {
    withZone('Asia/Kolkata');
    expect(describeTarget(parseRecoveryTarget({ targetTime: '2026-12-04 19:00' }))).toBe('time 2026-12-04 13:30:00+00:00 (UTC, read as local time in Asia/Kolkata)');
    expect(describeTarget(parseRecoveryTarget({ targetLsn: '0/3000028', exclusive: true }))).toBe('LSN 0/3000028');
    expect(parseRecoveryTarget({ targetXid: '800', exclusive: true })).toEqual({ kind: 'xid', xid: 800n, inclusive: false });
  });
});

function catchError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    return error as UsageError;
  }
  throw new Error('expected an error');
}
