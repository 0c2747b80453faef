/**
 * The scheduler of `drplan serve`: computes each job's next run from its cron
 * expression (croner, in UTC unless the job names a time zone) and calls
 * `onDue` when it comes. The clock and timers are injected, so tests drive
 * it without waiting for real time.
 */
import { Cron } from 'croner';
import type { Logger } from '../logging.js';

/** Time and timers; `systemClock` uses Date and setTimeout. */
export interface Clock {
  now(): Date;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface ScheduledJob {
  name: string;
  cron: string;
  /** IANA time zone; UTC when unset. */
  timezone?: string;
  /** Run once at start when a scheduled run was missed since `lastRunAt`. */
  catchUp: boolean;
  /** Start of the job's last run, from the state file; unset on a first start. */
  lastRunAt?: Date;
}

export type Trigger = 'schedule' | 'catch-up' | 'api' | 'once';

export interface SchedulerOptions {
  clock: Clock;
  log: Logger;
  /** Called when a job is due; the caller decides whether it can run now. */
  onDue: (job: string, trigger: Trigger) => void;
}

/**
 * Maximum delay of one timer. Waking up at least this often keeps timers far
 * below setTimeout's limit of about 24.8 days and notices wall-clock jumps.
 */
const MAX_TIMER_MS = 60 * 60 * 1000;

interface Entry {
  job: ScheduledJob;
  cron: Cron;
  next: Date | null;
  timer?: unknown;
}

export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private stopped = false;

  constructor(
    jobs: ScheduledJob[],
    private readonly options: SchedulerOptions,
  ) {
    for (const job of jobs) {
      const cron = new Cron(job.cron, { paused: true, timezone: job.timezone ?? 'UTC' });
      this.entries.set(job.name, { job, cron, next: null });
    }
  }

  /** Starts the catch-up runs, then arms a timer per job. */
  start(): void {
    const now = this.options.clock.now();
    for (const entry of this.entries.values()) {
      if (this.missedRun(entry, now)) {
        this.options.log.info({ job: entry.job.name, lastRunAt: entry.job.lastRunAt?.toISOString() }, 'scheduled run missed while stopped; running it once now');
        this.options.onDue(entry.job.name, 'catch-up');
      }
      entry.next = entry.cron.nextRun(now);
      this.arm(entry);
    }
  }

  /** Cancels every timer; no job becomes due afterwards. */
  stop(): void {
    this.stopped = true;
    for (const entry of this.entries.values()) {
      if (entry.timer !== undefined) this.options.clock.clearTimer(entry.timer);
      entry.timer = undefined;
    }
  }

  /** Returns the next scheduled run of a job, or null when its expression has no further run. */
  nextRun(job: string): Date | null {
    return this.entries.get(job)?.next ?? null;
  }

  /**
   * Checks whether a scheduled run fell between the last run and now. Only
   * one run is made up for however many were missed, because the purpose is
   * a fresh backup, not a replay.
   */
  private missedRun(entry: Entry, now: Date): boolean {
    if (!entry.job.catchUp || entry.job.lastRunAt === undefined) return false;
    const slot = entry.cron.nextRun(entry.job.lastRunAt);
    return slot !== null && slot.getTime() <= now.getTime();
  }

  private arm(entry: Entry): void {
    if (this.stopped || entry.next === null) return;
    const delay = Math.min(Math.max(entry.next.getTime() - this.options.clock.now().getTime(), 0), MAX_TIMER_MS);
    entry.timer = this.options.clock.setTimer(() => this.wake(entry), delay);
  }

  private wake(entry: Entry): void {
    entry.timer = undefined;
    if (this.stopped || entry.next === null) return;
    const now = this.options.clock.now();
    if (now.getTime() >= entry.next.getTime()) {
      // The next slot counts from now, so a process that was suspended over
      // several slots runs the job once, not once per slot.
      entry.next = entry.cron.nextRun(now);
      this.options.onDue(entry.job.name, 'schedule');
    }
    this.arm(entry);
  }
}
