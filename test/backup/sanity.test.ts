import { describe, expect, it } from 'vitest';
import { sizeFlags } from '../../src/backup/sanity.js';

describe('sizeFlags', () => {
  it('flags a tiny object', () => {
    expect(sizeFlags(900, [])).toEqual([{ code: 'size.tiny', message: 'stored size 900 bytes is below the minimum of 1024 bytes' }]);
  });

  it('accepts a first backup', () => {
    expect(sizeFlags(50_000, [])).toEqual([]);
  });

  it('flags a drop below half the median', () => {
    expect(sizeFlags(4_000, [10_000, 9_000, 11_000])).toEqual([
      { code: 'size.small', message: 'stored size 4000 bytes is below 0.5 x the median 10000 bytes of the last 3 backups' },
    ]);
  });

  it('flags growth above three times the median', () => {
    expect(sizeFlags(31_000, [10_000, 10_000])).toEqual([
      { code: 'size.large', message: 'stored size 31000 bytes is above 3 x the median 10000 bytes of the last 2 backups' },
    ]);
  });

  it('accepts sizes within the band', () => {
    expect(sizeFlags(5_000, [10_000])).toEqual([]);
    expect(sizeFlags(30_000, [10_000])).toEqual([]);
  });

  it('uses only the newest seven', () => {
    const recent = [10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000];
    expect(sizeFlags(10_000, recent)).toEqual([]);
  });
});
