/**
 * The events drplan alerts on. Each problem has a matching recovery, sent once
 * when the problem clears, keyed by the same subject.
 */
export const PROBLEM_EVENTS = ['job.failed', 'objective.breached', 'verify.failed', 'repository.unreachable'] as const;
export const RECOVERY_EVENTS = ['job.recovered', 'objective.met', 'verify.passed', 'repository.reachable'] as const;

export type ProblemEvent = (typeof PROBLEM_EVENTS)[number];
export type RecoveryEvent = (typeof RECOVERY_EVENTS)[number];
export type AlertEventType = ProblemEvent | RecoveryEvent;

export type Severity = 'critical' | 'error' | 'warning' | 'info';

export interface AlertEvent {
  type: AlertEventType;
  severity: Severity;
  /** The name the alert is about, stable across repeats: a job, database or repository name, such as "main" or "backup-main". */
  subject: string;
  /** One line for people. */
  summary: string;
  at: Date;
  /** Structured details (database, job, objective, measured value...), with no secrets. */
  details?: Record<string, string | number | boolean | null>;
}

/** A destination for alerts. Implementations must not throw, and must queue deliveries so a slow channel does not block the caller. */
export interface AlertSink {
  emit(event: AlertEvent): void;
  /** Waits for deliveries in flight, up to `timeoutMs`; used on shutdown. */
  flush(timeoutMs: number): Promise<void>;
  /**
   * Records a problem that an earlier process sent at `sentAt`, without
   * sending it, so that its repeats within notifications.suppressFor are
   * suppressed and its recovery is sent.
   */
  restore?(event: AlertEvent, sentAt: Date): void;
}

/** A sink that drops everything, for plans without notification channels. */
export const silentSink: AlertSink = {
  emit: () => undefined,
  flush: async () => undefined,
};
