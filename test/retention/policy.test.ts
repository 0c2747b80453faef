/**
 * Retention decisions for one database, with the clock fixed at NOW
 * (Friday 2026-12-04 12:00 UTC) and one backup a day at 02:00 UTC.
 * Expected ids are written out from the calendar, not computed with the
 * code under test.
 */
import { describe, expect, it } from 'vitest';
import type { RetentionRules } from '../../src/config/schema.js';
import { decideRetention, type RetentionCandidate, type RetentionDecision } from '../../src/retention/policy.js';

const NOW = new Date('2026-12-04T12:00:00Z');

/** Returns the id of the backup of `day` (YYYY-MM-DD) taken at `time` (HHMMSS, UTC). */
function idOf(day: string, time = '020000'): string {
  return `backup_${day.replace(/-/g, '')}_${time}`;
}

/** Builds one good backup a day at 02:00 UTC, newest first, so index 0 is the backup of the day of `now`. */
function dailyBackups(count: number, now = NOW): RetentionCandidate[] {
  const backups: RetentionCandidate[] = [];
  for (let i = 0; i < count; i++) {
    const time = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - i, 2));
    backups.push({ id: idOf(time.toISOString().slice(0, 10)), database: 'app', time, good: true });
  }
  return backups;
}

/** Marks the backups at `indexes` as bad (flagged or failed verification). */
function withBad(backups: RetentionCandidate[], indexes: number[]): RetentionCandidate[] {
  return backups.map((backup, index) => (indexes.includes(index) ? { ...backup, good: false } : backup));
}

function kept(decisions: RetentionDecision[]): [string, string][] {
  return decisions.filter((d) => !d.delete).map((d) => [d.id, d.rule]);
}

function deleted(decisions: RetentionDecision[]): RetentionDecision[] {
  return decisions.filter((d) => d.delete);
}

function deletedRules(decisions: RetentionDecision[]): Set<string> {
  return new Set(deleted(decisions).map((d) => d.rule));
}

function decide(backups: RetentionCandidate[], rules: RetentionRules, now = NOW): RetentionDecision[] {
  return decideRetention(backups, rules, now);
}

describe('decideRetention keep-rules', () => {
  const backups = dailyBackups(120);

  it('fixture spans expected days', () => {
    expect(backups[0]!.id).toBe('backup_20261204_020000');
    expect(backups[119]!.id).toBe('backup_20260807_020000');
  });

  it('keepLast keeps newest three', () => {
    const decisions = decide(backups, { keepLast: 3 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-12-03'), 'keepLast'],
      [idOf('2026-12-02'), 'keepLast'],
    ]);
    expect(deleted(decisions).length).toBe(117);
    expect(deletedRules(decisions)).toEqual(new Set(['not selected']));
  });

  it('keepDays keeps last 30 days', () => {
    const decisions = decide(backups, { keepDays: 30 });
    const since = NOW.getTime() - 30 * 86_400_000;
    const expected = backups.filter((b) => b.time.getTime() >= since).map((b) => b.id);

    expect(expected.length).toBe(30);
    expect(kept(decisions).map(([id]) => id)).toEqual(expected);
    expect(kept(decisions)[0]).toEqual([idOf('2026-12-04'), 'newest good']);
    expect(new Set(kept(decisions).slice(1).map(([, rule]) => rule))).toEqual(new Set(['keepDays']));
    expect(kept(decisions).at(-1)).toEqual([idOf('2026-11-05'), 'keepDays']);
    expect(decisions.find((d) => d.id === idOf('2026-11-04'))).toEqual({ id: idOf('2026-11-04'), database: 'app', delete: true, rule: 'not selected' });
    expect(deleted(decisions).length).toBe(90);
    expect(deletedRules(decisions)).toEqual(new Set(['not selected']));
  });

  it('keepDaily keeps one per day', () => {
    const decisions = decide(backups, { keepDaily: 7 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-12-03'), 'keepDaily'],
      [idOf('2026-12-02'), 'keepDaily'],
      [idOf('2026-12-01'), 'keepDaily'],
      [idOf('2026-11-30'), 'keepDaily'],
      [idOf('2026-11-29'), 'keepDaily'],
      [idOf('2026-11-28'), 'keepDaily'],
    ]);
    expect(deleted(decisions).length).toBe(113);
  });

  it('keepDaily picks newest of day', () => {
    const afternoon: RetentionCandidate = { id: idOf('2026-12-03', '140000'), database: 'app', time: new Date('2026-12-03T14:00:00Z'), good: true };
    const decisions = decide([...backups, afternoon], { keepDaily: 3 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-12-03', '140000'), 'keepDaily'],
      [idOf('2026-12-02'), 'keepDaily'],
    ]);
    expect(decisions.find((d) => d.id === idOf('2026-12-03'))?.rule).toBe('not selected');
  });

  it('keepWeekly keeps newest per ISO week', () => {
    // ISO weeks start on Monday: Nov 30-Dec 6, Nov 23-29, Nov 16-22, Nov 9-15, Nov 2-8, Oct 26-Nov 1.
    const decisions = decide(backups, { keepWeekly: 6 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-11-29'), 'keepWeekly'],
      [idOf('2026-11-22'), 'keepWeekly'],
      [idOf('2026-11-15'), 'keepWeekly'],
      [idOf('2026-11-08'), 'keepWeekly'],
      [idOf('2026-11-01'), 'keepWeekly'],
    ]);
    expect(deleted(decisions).length).toBe(114);
  });

  it('keepWeekly spans ISO year end', () => {
    // 2026 has 53 ISO weeks: week 53 runs from Monday Dec 28 2026 to Sunday Jan 3 2027.
    const now = new Date('2027-01-06T12:00:00Z');
    const decisions = decide(dailyBackups(30, now), { keepWeekly: 3 }, now);

    expect(kept(decisions)).toEqual([
      [idOf('2027-01-06'), 'newest good'],
      [idOf('2027-01-03'), 'keepWeekly'],
      [idOf('2026-12-27'), 'keepWeekly'],
    ]);
  });

  it('keepMonthly keeps newest per month', () => {
    const decisions = decide(backups, { keepMonthly: 3 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-11-30'), 'keepMonthly'],
      [idOf('2026-10-31'), 'keepMonthly'],
    ]);
    expect(deleted(decisions).length).toBe(117);
  });

  it('keepMonthly stops at oldest month', () => {
    const decisions = decide(backups, { keepMonthly: 12 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-11-30'), 'keepMonthly'],
      [idOf('2026-10-31'), 'keepMonthly'],
      [idOf('2026-09-30'), 'keepMonthly'],
      [idOf('2026-08-31'), 'keepMonthly'],
    ]);
  });

  it('GFS combines daily weekly monthly', () => {
    const decisions = decide(backups, { keepDaily: 7, keepWeekly: 4, keepMonthly: 3 });

    // A backup chosen by several rules is reported with the first: daily, then weekly, then monthly.
    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-12-03'), 'keepDaily'],
      [idOf('2026-12-02'), 'keepDaily'],
      [idOf('2026-12-01'), 'keepDaily'],
      [idOf('2026-11-30'), 'keepDaily'],
      [idOf('2026-11-29'), 'keepDaily'],
      [idOf('2026-11-28'), 'keepDaily'],
      [idOf('2026-11-22'), 'keepWeekly'],
      [idOf('2026-11-15'), 'keepWeekly'],
      [idOf('2026-10-31'), 'keepMonthly'],
    ]);
    expect(deleted(decisions).length).toBe(110);
    expect(deletedRules(decisions)).toEqual(new Set(['not selected']));
  });

  it('no keep-rules keeps all', () => {
    const decisions = decide(backups, {});

    expect(kept(decisions).length).toBe(120);
    expect(new Set(decisions.map((d) => d.rule))).toEqual(new Set(['no keep-rules']));
  });

  it('input order does not matter', () => {
    const newestFirst = decide(backups, { keepLast: 3, keepWeekly: 4 });
    const oldestFirst = decide([...backups].reverse(), { keepLast: 3, keepWeekly: 4 });

    expect(oldestFirst).toEqual(newestFirst);
  });
});

describe('decideRetention bad backups', () => {
  const backups = dailyBackups(120);

  it('bad newest kept, good counted', () => {
    const decisions = decide(withBad(backups, [0, 1]), { keepLast: 3 });

    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'bad, newest'],
      [idOf('2026-12-03'), 'bad, newest'],
      [idOf('2026-12-02'), 'newest good'],
      [idOf('2026-12-01'), 'keepLast'],
      [idOf('2026-11-30'), 'keepLast'],
    ]);
    expect(deleted(decisions).length).toBe(115);
    expect(deletedRules(decisions)).toEqual(new Set(['not selected']));
  });

  it('bad older than good deleted', () => {
    const decisions = decide(withBad(backups, [2]), { keepLast: 3 });

    expect(decisions.find((d) => d.id === idOf('2026-12-02'))).toEqual({ id: idOf('2026-12-02'), database: 'app', delete: true, rule: 'bad, superseded' });
    expect(kept(decisions)).toEqual([
      [idOf('2026-12-04'), 'newest good'],
      [idOf('2026-12-03'), 'keepLast'],
      [idOf('2026-12-01'), 'keepLast'],
    ]);
  });

  it('newest good survives keepDays', () => {
    // No backup in the last 30 days: the newest is from 2026-10-25, 40 days before NOW.
    const decisions = decide(backups.slice(40), { keepDays: 30 });

    expect(kept(decisions)).toEqual([[idOf('2026-10-25'), 'newest good']]);
    expect(deleted(decisions).length).toBe(79);
    expect(deletedRules(decisions)).toEqual(new Set(['not selected']));
  });
});

describe('decideRetention maxAgeDays', () => {
  const backups = dailyBackups(120);

  it('cap wins over keepLast', () => {
    const decisions = decide(backups, { keepLast: 200, maxAgeDays: 90 });

    // The cap is 2026-09-05 12:00 UTC, so the backup of 2026-09-06 is the oldest kept.
    expect(kept(decisions).length).toBe(90);
    expect(kept(decisions).at(-1)).toEqual([idOf('2026-09-06'), 'keepLast']);
    expect(deleted(decisions).map((d) => d.id)).toEqual(backups.slice(90).map((b) => b.id));
    expect(deleted(decisions)[0]!.id).toBe(idOf('2026-09-05'));
    expect(deletedRules(decisions)).toEqual(new Set(['maxAgeDays']));
    expect(decisions.filter((d) => d.warning !== undefined)).toEqual([]);
  });

  it('cap without keep-rules', () => {
    const decisions = decide(backups, { maxAgeDays: 90 });

    expect(kept(decisions).length).toBe(90);
    expect(new Set(kept(decisions).map(([, rule]) => rule))).toEqual(new Set(['no keep-rules']));
    expect(deleted(decisions).length).toBe(30);
    expect(deletedRules(decisions)).toEqual(new Set(['maxAgeDays']));
  });

  it('cap deletes newest good, warns', () => {
    // Every backup is older than 90 days, and the newest is from 2026-08-26.
    const decisions = decide(backups.slice(100), { keepLast: 3, maxAgeDays: 90 });

    expect(kept(decisions)).toEqual([]);
    expect(deleted(decisions).length).toBe(20);
    expect(deletedRules(decisions)).toEqual(new Set(['maxAgeDays']));
    expect(decisions[0]).toEqual({
      id: idOf('2026-08-26'),
      database: 'app',
      delete: true,
      rule: 'maxAgeDays',
      warning: 'the compliance cap of 90 days deletes backup_20260826_020000, the newest good backup of app; no good backup remains',
    });
    expect(decisions.slice(1).filter((d) => d.warning !== undefined)).toEqual([]);
  });

  it('cap deletes bad newest', () => {
    const decisions = decide(withBad(backups.slice(100), [0]), { keepLast: 3, maxAgeDays: 90 });

    expect(decisions[0]).toEqual({ id: idOf('2026-08-26'), database: 'app', delete: true, rule: 'maxAgeDays', warning: undefined });
    expect(decisions[1]!.warning).toBe('the compliance cap of 90 days deletes backup_20260825_020000, the newest good backup of app; no good backup remains');
  });
});
