/**
 * Turns observed states into alert events, keyed by type and subject. A
 * problem is passed to the sink each time it is observed, and the sink
 * suppresses repeats (notifications.suppressFor). Its recovery is sent once,
 * when a problem that was observed clears.
 */
import type { AlertEvent, AlertSink, ProblemEvent, RecoveryEvent, Severity } from '../notify/events.js';

const RECOVERY_OF: Record<ProblemEvent, RecoveryEvent> = {
  'job.failed': 'job.recovered',
  'objective.breached': 'objective.met',
  'verify.failed': 'verify.passed',
  'repository.unreachable': 'repository.reachable',
};

type Details = AlertEvent['details'];

export class AlertTracker {
  private readonly active = new Set<string>();

  constructor(
    private readonly sink: AlertSink,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Marks a problem that an earlier process sent at `sentAt` as present
   * without sending it again, so its repeats stay suppressed and its
   * recovery is sent.
   */
  assume(type: ProblemEvent, subject: string, severity: Severity, sentAt: Date): void {
    this.active.add(`${type}\u0000${subject}`);
    this.sink.restore?.({ type, severity, subject, summary: '', at: sentAt }, sentAt);
  }

  /** Sends the problem and marks it active. */
  problem(type: ProblemEvent, subject: string, severity: Severity, summary: string, details?: Details): void {
    this.active.add(`${type}\u0000${subject}`);
    this.sink.emit({ type, severity, subject, summary, at: this.now(), details });
  }

  /** Sends the recovery of an active problem; does nothing when the problem was not active. */
  clear(type: ProblemEvent, subject: string, summary: string, details?: Details): void {
    const key = `${type}\u0000${subject}`;
    if (!this.active.delete(key)) return;
    this.sink.emit({ type: RECOVERY_OF[type], severity: 'info', subject, summary, at: this.now(), details });
  }
}
