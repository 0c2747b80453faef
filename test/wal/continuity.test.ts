import { describe, expect, it } from 'vitest';
import { IntegrityError, UsageError } from '../../src/errors.js';
import { assertRecoveryChain, buildInventory, checkRecoveryChain, chooseRecoveryTimeline, timelineRanges } from '../../src/wal/continuity.js';
import { DEFAULT_WAL_SEGMENT_SIZE, parseHistoryFile, segmentName, type TimelineSwitch } from '../../src/wal/segment.js';

/** Names of segments `from`..`to` on `timeline`. */
function run(timeline: number, from: number, to: number): string[] {
  const names: string[] = [];
  for (let segno = from; segno <= to; segno++) names.push(segmentName({ timeline, segno: BigInt(segno) }));
  return names;
}

function inventory(names: string[], histories: Record<number, string> = {}) {
  const parsed = new Map<number, TimelineSwitch[]>(Object.entries(histories).map(([tli, text]) => [Number(tli), parseHistoryFile(text)]));
  return buildInventory(names, parsed, DEFAULT_WAL_SEGMENT_SIZE);
}

const backup = { backupId: 'base1', timeline: 1, firstSegment: '000000010000000000000002', lastSegment: '000000010000000000000003' };

describe('timeline ranges', () => {
  it('reports first, last and gaps per timeline', () => {
    const ranges = timelineRanges(inventory([...run(1, 1, 4), ...run(1, 7, 9), ...run(2, 9, 10), '00000002.history', '000000010000000000000009.partial']));
    expect(ranges).toEqual([
      {
        timeline: 1,
        first: '000000010000000000000001',
        last: '000000010000000000000009',
        segments: 7,
        gaps: [{ timeline: 1, first: '000000010000000000000005', last: '000000010000000000000006', count: 2 }],
      },
      { timeline: 2, first: '000000020000000000000009', last: '00000002000000000000000A', segments: 2, gaps: [] },
    ]);
  });

  it('crosses a log boundary without a false gap', () => {
    const ranges = timelineRanges(inventory(run(1, 254, 258)));
    expect(ranges[0]!.first).toBe('0000000100000000000000FE');
    expect(ranges[0]!.last).toBe('000000010000000100000002');
    expect(ranges[0]!.gaps).toEqual([]);
  });
});

describe('recovery chain', () => {
  it('continuous on one timeline', () => {
    const chain = checkRecoveryChain(inventory(run(1, 1, 8)), backup);
    expect(chain.ok).toBe(true);
    expect(chain.until).toBe('000000010000000000000008');
    expect(chain.timelines).toEqual([1]);
  });

  it('names a missing middle segment', () => {
    const names = run(1, 1, 8).filter((n) => n !== '000000010000000000000005');
    const chain = checkRecoveryChain(inventory(names), backup);
    expect(chain.ok).toBe(false);
    expect(chain.gaps).toEqual([{ timeline: 1, first: '000000010000000000000005', last: '000000010000000000000005', count: 1 }]);
    expect(() => assertRecoveryChain(chain, 'main')).toThrow(IntegrityError);
    expect(() => assertRecoveryChain(chain, 'main')).toThrow(/segment 000000010000000000000005 is missing/);
  });

  it('ignores gaps before the first segment', () => {
    const chain = checkRecoveryChain(inventory([...run(1, 0, 0), ...run(1, 2, 5)]), backup);
    expect(chain.ok).toBe(true);
  });

  it('missing first segment breaks the chain', () => {
    const chain = checkRecoveryChain(inventory(run(1, 3, 6)), backup);
    expect(chain.gaps[0]).toEqual({ timeline: 1, first: '000000010000000000000002', last: '000000010000000000000002', count: 1 });
  });

  it('the backup must reach its last segment', () => {
    const chain = checkRecoveryChain(inventory(run(1, 2, 2)), backup);
    expect(chain.ok).toBe(false);
    expect(chain.gaps[0]!.first).toBe('000000010000000000000003');
  });

  it('follows a timeline switch', () => {
    // Timeline 2 branched off inside segment 6: timeline 1 supplies 2..5, timeline 2 supplies 6 on.
    const names = [...run(1, 1, 6), '000000010000000000000006.partial', ...run(2, 6, 9), '00000002.history'];
    const chain = checkRecoveryChain(inventory(names, { 2: '1\t0/6000100\tno recovery target specified\n' }), backup);
    expect(chain.ok).toBe(true);
    expect(chain.timelines).toEqual([1, 2]);
    expect(chain.until).toBe('000000020000000000000009');
  });

  it('names a gap on the new timeline', () => {
    const names = [...run(1, 1, 5), ...run(2, 6, 6), ...run(2, 8, 9)];
    const chain = checkRecoveryChain(inventory(names, { 2: '1\t0/6000100\tx\n' }), backup);
    expect(chain.gaps).toEqual([{ timeline: 2, first: '000000020000000000000007', last: '000000020000000000000007', count: 1 }]);
  });

  it('switch segment must come from the new timeline', () => {
    // Timeline 1 has segment 6, but recovery on timeline 2 reads 000000020000000000000006.
    const names = [...run(1, 1, 6), ...run(2, 7, 8)];
    const chain = checkRecoveryChain(inventory(names, { 2: '1\t0/6000100\tx\n' }), backup);
    expect(chain.gaps).toEqual([{ timeline: 2, first: '000000020000000000000006', last: '000000020000000000000006', count: 1 }]);
  });

  it('follows two switches', () => {
    const names = [...run(1, 2, 4), ...run(2, 5, 7), ...run(3, 8, 10)];
    const histories = { 2: '1\t0/5000000\tx\n', 3: '1\t0/5000000\tx\n2\t0/8000000\ty\n' };
    const chain = checkRecoveryChain(inventory(names, histories), backup);
    expect(chain.ok).toBe(true);
    expect(chain.timelines).toEqual([1, 2, 3]);
    expect(chain.until).toBe('00000003000000000000000A');
  });

  it('skips a timeline that branched before the backup ended', () => {
    // Timeline 2 branched at segment 2, before this backup's last segment, so it cannot continue the backup.
    const names = [...run(1, 2, 6), ...run(2, 2, 9)];
    const chain = checkRecoveryChain(inventory(names, { 2: '1\t0/2000000\tx\n' }), backup);
    expect(chain.timelines).toEqual([1]);
    expect(chain.ok).toBe(true);
    expect(chain.until).toBe('000000010000000000000006');
  });

  it('checks up to an explicit target', () => {
    const names = [...run(1, 1, 5), ...run(1, 8, 9)];
    expect(checkRecoveryChain(inventory(names), backup, { segno: 5n }).ok).toBe(true);
    const past = checkRecoveryChain(inventory(names), backup, { segno: 8n });
    expect(past.gaps).toEqual([{ timeline: 1, first: '000000010000000000000006', last: '000000010000000000000007', count: 2 }]);
  });

  it('target timeline without the backup is a break', () => {
    const names = [...run(1, 2, 4), ...run(3, 2, 4)];
    const chain = checkRecoveryChain(inventory(names, { 3: '2\t0/1000000\tx\n' }), backup, { timeline: 3 });
    expect(chain.ok).toBe(false);
  });
});

describe('recovery timeline', () => {
  // Timeline 2 forked at 0/2800000, before a backup of timeline 1 that ended at 0/6000100; timeline 3 forked from 1 after it, at 0/8000000.
  // Timeline 1 stopped at the fork unless `parentLast` goes past segment 7.
  const forked = (parentLast = 7) =>
    inventory([...run(1, 2, parentLast), ...run(2, 2, 4), ...run(3, 8, 9), '00000002.history', '00000003.history'], {
      2: '1\t0/2800000\tno recovery target specified\n',
      3: '1\t0/8000000\tno recovery target specified\n',
    });
  const later = { backupId: 'base2', timeline: 1, stopLsn: 0x6000100n };

  it('latest skips a timeline forked before the backup', () => {
    const archive = inventory([...run(1, 2, 9), ...run(2, 2, 4), '00000002.history'], { 2: '1\t0/2800000\tno recovery target specified\n' });
    expect(chooseRecoveryTimeline(archive, later, 'latest')).toBe(1);
  });

  it('latest follows a timeline forked after the backup', () => {
    expect(chooseRecoveryTimeline(forked(), later, 'latest')).toBe(3);
  });

  it('current is the backup timeline', () => {
    expect(chooseRecoveryTimeline(forked(), later, 'current')).toBe(1);
  });

  it('rejects an unreachable timeline', () => {
    expect(() => chooseRecoveryTimeline(forked(), later, 2)).toThrow(UsageError);
    expect(() => chooseRecoveryTimeline(forked(), later, 2)).toThrow('timeline 2 cannot be reached from base backup base2 on timeline 1: its history does not pass through timeline 1 after LSN 0/6000100');
    expect(() => chooseRecoveryTimeline(forked(), later, 7)).toThrow('no 00000007.history file is archived');
  });

  it('latest follows the child when the parent stopped inside the switch segment', () => {
    // A standby promoted at the end of archived segment 6 branches off inside it; timeline 1 has segment 6 but nothing after.
    const archive = inventory([...run(1, 2, 6), ...run(2, 6, 9)], { 2: '1\t0/6000100\tno recovery target specified\n' });
    expect(chooseRecoveryTimeline(archive, { backupId: 'base1', timeline: 1, stopLsn: 0x3000100n }, 'latest')).toBe(2);
  });

  it('latest refuses when the parent went on after the fork', () => {
    // Timeline 1 archived segments 8 and 9, which start at or after the fork at 0/8000000: two histories.
    let caught: unknown;
    try {
      chooseRecoveryTimeline(forked(9), later, 'latest');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UsageError);
    const error = caught as UsageError;
    expect(error.message).toBe(
      'ambiguous --target-timeline latest: timeline 3 branched off timeline 1 at LSN 0/8000000, and timeline 1 continued to 000000010000000000000009, ' +
        'so the archive contains two histories after that point: timeline 1 (newest archived 000000010000000000000009), timeline 3 (newest archived 000000030000000000000009)',
    );
    expect(error.hint).toContain('Choose one with --target-timeline 1 or --target-timeline 3');
  });

  it('latest refuses when a middle timeline went on after the next fork', () => {
    // 1 -> 2 at 0/5000000 (timeline 1 stopped), 2 -> 3 at 0/8000000, and timeline 2 archived segment 9 after that.
    const archive = inventory([...run(1, 2, 4), ...run(2, 5, 9), ...run(3, 8, 8)], { 2: '1\t0/5000000\tx\n', 3: '1\t0/5000000\tx\n2\t0/8000000\ty\n' });
    const backupOnOne = { backupId: 'base1', timeline: 1, stopLsn: 0x3000100n };
    expect(() => chooseRecoveryTimeline(archive, backupOnOne, 'latest')).toThrow('timeline 3 branched off timeline 2 at LSN 0/8000000, and timeline 2 continued to 000000020000000000000009');
    expect(chooseRecoveryTimeline(archive, backupOnOne, 2)).toBe(2);
  });

  it('an explicit timeline is followed even when the histories diverged', () => {
    expect(chooseRecoveryTimeline(forked(9), later, 1)).toBe(1);
    expect(chooseRecoveryTimeline(forked(9), later, 3)).toBe(3);
    expect(chooseRecoveryTimeline(forked(9), later, 'current')).toBe(1);
  });

  it('checks the chain along the chosen timeline', () => {
    const chain = checkRecoveryChain(forked(9), backup, { timeline: 1 });
    expect(chain.timelines).toEqual([1]);
    expect(chain.until).toBe('000000010000000000000009');
    expect(chain.ok).toBe(true);
  });
});
