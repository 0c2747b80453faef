/**
 * A clock for scheduler tests: time moves only when the test advances it, and
 * timers fire in order of their due time as it passes.
 */
import type { Clock } from '../../src/serve/scheduler.js';

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  private time: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start: string | Date) {
    this.time = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.time);
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const timer = { id: this.nextId++, at: this.time + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Moves time forward to `target`, firing every timer due on the way at its own due time. */
  advanceTo(target: string | Date): void {
    const end = new Date(target).getTime();
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.callback();
    }
    this.time = end;
  }

  /** Moves time forward without firing timers, as when a suspended machine wakes up; the next advanceTo fires the overdue ones. */
  jumpTo(target: string | Date): void {
    this.time = new Date(target).getTime();
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.timers.length;
  }
}
