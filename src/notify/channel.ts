/**
 * The interface of every notification channel (webhook, Slack, e-mail,
 * PagerDuty), the alert as channels send it, and the error of a failed
 * delivery.
 */
import { ConnectionError } from '../errors.js';
import type { AlertEventType, Severity } from './events.js';

/** The event type of the alert that `drplan notify test` sends. */
export const TEST_EVENT = 'notify.test';

/** Whether an alert reports a problem, the end of one, or a test of the channel. */
export type AlertStatus = 'problem' | 'recovery' | 'test';

/** One alert as channels send it: an AlertEvent, or the test alert. */
export interface OutgoingAlert {
  type: AlertEventType | typeof TEST_EVENT;
  status: AlertStatus;
  severity: Severity;
  subject: string;
  summary: string;
  at: Date;
  details: Record<string, string | number | boolean | null>;
}

/** Facts every channel puts into its messages, and the limit of one attempt. */
export interface ChannelContext {
  /** `service` from the plan, if set. */
  service: string | undefined;
  /** drplan's version. */
  version: string;
  /** The name of the machine drplan runs on. */
  hostname: string;
  /** Time limit of one delivery attempt, in milliseconds. */
  timeoutMs: number;
}

export type ChannelType = 'webhook' | 'slack' | 'email' | 'pagerduty';

export interface Channel {
  readonly name: string;
  readonly type: ChannelType;
  /**
   * Sends one alert in a single attempt, bounded by the context's timeout.
   * Resolves once the receiver accepted it; rejects with a DeliveryError
   * whose `retryable` flag states whether another attempt may succeed.
   */
  deliver(alert: OutgoingAlert): Promise<void>;
}

/** A delivery that failed. The message is safe to log because it contains no URL path, header value, password or routing key. */
export class DeliveryError extends ConnectionError {
  /** False when another attempt would fail the same way (rejected login, HTTP 400, unknown recipient). */
  readonly retryable: boolean;

  constructor(message: string, options: { channel: string; retryable: boolean; cause?: unknown }) {
    super(message, { code: 'notify.delivery', operation: 'notify', object: options.channel, cause: options.cause });
    this.retryable = options.retryable;
  }
}

/** Orders severities from least to most severe, for routes and for repeats that escalate. */
export const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/** Returns the family of an event type, shared by a problem and its recovery: "job" for job.failed and job.recovered. */
export function eventFamily(type: string): string {
  return type.split('.')[0]!;
}

/** Replaces every secret in `text` with "***", for text that came back from a receiver and may echo what it was sent. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let redacted = text;
  for (const secret of secrets) {
    if (secret.length >= 4) redacted = redacted.split(secret).join('***');
  }
  return redacted;
}
