/**
 * The record of what each channel was sent, to suppress repeats of a problem
 * and to send a recovery only where its problem was sent. Keys are the
 * channel, the event family and the subject. Subjects are names from the plan
 * (jobs, databases, repositories), so the maps stay small.
 */
import { eventFamily, SEVERITY_RANK } from './channel.js';
import type { AlertEvent, Severity } from './events.js';

interface SentProblem {
  atMs: number;
  severity: Severity;
}

export class AlertMemory {
  /** The last problem sent per channel, event family and subject, by event type. */
  private readonly sent = new Map<string, Map<string, SentProblem>>();
  /** Problems sent per channel, event family and subject that no recovery has closed yet. */
  private readonly open = new Set<string>();

  constructor(private readonly suppressForMs: number) {}

  /**
   * Records a problem for `channel` and returns true when it must be sent:
   * it was not sent within the suppression window, or it is more severe than
   * the copy that was. Returns false for a repeat.
   */
  admitProblem(channel: string, event: AlertEvent, nowMs: number): boolean {
    const family = familyKey(channel, event);
    const byType = this.sent.get(family) ?? new Map<string, SentProblem>();
    const previous = byType.get(event.type);
    const repeat = previous !== undefined && nowMs - previous.atMs < this.suppressForMs && SEVERITY_RANK[event.severity] <= SEVERITY_RANK[previous.severity];
    if (repeat) return false;

    byType.set(event.type, { atMs: nowMs, severity: event.severity });
    this.sent.set(family, byType);
    this.open.add(family);
    return true;
  }

  /**
   * Forgets a problem admitted at `admittedAtMs` that was never delivered, so
   * its next repeat is sent. A later recovery is still sent, because an
   * earlier copy may have arrived, and a recovery without its problem does
   * less harm than a problem left open.
   */
  forgetProblem(channel: string, event: AlertEvent, admittedAtMs: number): void {
    const byType = this.sent.get(familyKey(channel, event));
    if (byType?.get(event.type)?.atMs === admittedAtMs) byType.delete(event.type);
  }

  /**
   * Returns true, once, when `channel` was sent a problem of the recovery's
   * family and subject. It then deletes the record of that problem, so the
   * next one is sent at once rather than suppressed.
   */
  admitRecovery(channel: string, event: AlertEvent): boolean {
    const family = familyKey(channel, event);
    if (!this.open.delete(family)) return false;
    this.sent.delete(family);
    return true;
  }
}

/** Keys a problem and its recovery alike: job.failed and job.recovered of one subject share "job". */
function familyKey(channel: string, event: AlertEvent): string {
  return JSON.stringify([channel, eventFamily(event.type), event.subject]);
}
