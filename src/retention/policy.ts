/**
 * Retention decisions, as a pure function of the backups in one repository,
 * the rules and the current time, so that a dry run and a real run decide
 * exactly the same and tests can fix the clock.
 *
 * - Keep-rules (keepLast, keepDays, keepDaily, keepWeekly, keepMonthly) count
 *   only good backups: committed, not flagged, not failed by their last
 *   verification. A bad backup never pushes a good one out.
 * - The newest good backup of each database is always kept by keep-rules.
 * - Without any keep-rule, every backup is kept (short of the cap).
 * - A bad backup is deleted once a newer good backup exists.
 * - maxAgeDays is a compliance cap and wins over everything, the newest good
 *   backup included; that case is reported as a warning.
 */
import type { RetentionRules } from '../config/schema.js';

export interface RetentionCandidate {
  id: string;
  database: string;
  /** The moment the backup's data reflects. */
  time: Date;
  good: boolean;
}

export type RetentionRule = 'keepLast' | 'keepDays' | 'keepDaily' | 'keepWeekly' | 'keepMonthly' | 'newest good' | 'no keep-rules' | 'maxAgeDays' | 'bad, superseded' | 'bad, newest' | 'not selected';

export interface RetentionDecision {
  id: string;
  database: string;
  delete: boolean;
  /** The rule that decided. */
  rule: RetentionRule;
  /** Set when the compliance cap deletes the newest good backup. */
  warning?: string;
}

const DAY_MS = 86_400_000;

/** Decides, for the backups of one database and one class, which to keep and which to delete. */
export function decideRetention(candidates: RetentionCandidate[], rules: RetentionRules, now: Date): RetentionDecision[] {
  const sorted = [...candidates].sort((a, b) => b.time.getTime() - a.time.getTime());
  const good = sorted.filter((c) => c.good);
  const kept = keepRules(good, rules, now);
  const newestGood = good[0];
  const cap = rules.maxAgeDays === undefined ? undefined : now.getTime() - rules.maxAgeDays * DAY_MS;

  return sorted.map((candidate): RetentionDecision => {
    const base = { id: candidate.id, database: candidate.database };
    if (cap !== undefined && candidate.time.getTime() < cap) {
      const warning =
        candidate === newestGood ? `the compliance cap of ${rules.maxAgeDays} days deletes ${candidate.id}, the newest good backup of ${candidate.database}; no good backup remains` : undefined;
      return { ...base, delete: true, rule: 'maxAgeDays', warning };
    }
    if (!candidate.good) {
      const superseded = newestGood !== undefined && newestGood.time > candidate.time;
      return { ...base, delete: superseded, rule: superseded ? 'bad, superseded' : 'bad, newest' };
    }
    const rule = kept.get(candidate);
    if (rule) return { ...base, delete: false, rule };
    return { ...base, delete: true, rule: 'not selected' };
  });
}

function keepRules(good: RetentionCandidate[], rules: RetentionRules, now: Date): Map<RetentionCandidate, RetentionRule> {
  const kept = new Map<RetentionCandidate, RetentionRule>();
  const keep = (candidate: RetentionCandidate, rule: RetentionRule) => {
    if (!kept.has(candidate)) kept.set(candidate, rule);
  };
  const hasKeepRule = [rules.keepLast, rules.keepDays, rules.keepDaily, rules.keepWeekly, rules.keepMonthly].some((v) => v !== undefined);
  if (!hasKeepRule) {
    for (const candidate of good) keep(candidate, 'no keep-rules');
    return kept;
  }
  if (good[0]) keep(good[0], 'newest good');
  if (rules.keepLast !== undefined) good.slice(0, rules.keepLast).forEach((c) => keep(c, 'keepLast'));
  if (rules.keepDays !== undefined) {
    const since = now.getTime() - rules.keepDays * DAY_MS;
    good.filter((c) => c.time.getTime() >= since).forEach((c) => keep(c, 'keepDays'));
  }
  if (rules.keepDaily !== undefined) newestPerPeriod(good, dayOf, rules.keepDaily).forEach((c) => keep(c, 'keepDaily'));
  if (rules.keepWeekly !== undefined) newestPerPeriod(good, isoWeekOf, rules.keepWeekly).forEach((c) => keep(c, 'keepWeekly'));
  if (rules.keepMonthly !== undefined) newestPerPeriod(good, monthOf, rules.keepMonthly).forEach((c) => keep(c, 'keepMonthly'));
  return kept;
}

/** Picks the newest backup of each of the `count` most recent periods that have one (input newest first). */
function newestPerPeriod(good: RetentionCandidate[], periodOf: (d: Date) => string, count: number): RetentionCandidate[] {
  const chosen: RetentionCandidate[] = [];
  const seen = new Set<string>();
  for (const candidate of good) {
    const period = periodOf(candidate.time);
    if (seen.has(period)) continue;
    seen.add(period);
    chosen.push(candidate);
    if (chosen.length === count) break;
  }
  return chosen;
}

function dayOf(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function monthOf(date: Date): string {
  return date.toISOString().slice(0, 7);
}

/** ISO 8601 week in UTC, for example `2026-W49`. */
function isoWeekOf(date: Date): string {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / DAY_MS + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
