/**
 * The queue of one channel: alerts wait in memory and are delivered one at a
 * time in the order they were emitted, each retried with exponential backoff.
 * Order matters because a recovery must not overtake its problem (PagerDuty
 * would resolve before it triggers and leave the incident open).
 */
import type { Logger } from '../logging.js';
import { DeliveryError, type Channel, type OutgoingAlert } from './channel.js';

/** No single wait between attempts is longer, whatever the backoff settings. */
const MAX_BACKOFF_MS = 5 * 60_000;

export interface RetryPolicy {
  /** Attempts per alert, the first included. */
  attempts: number;
  /** Wait before the second attempt, in milliseconds; it doubles before each further attempt. */
  initialBackoffMs: number;
}

export interface QueuedAlert {
  alert: OutgoingAlert;
  /** Called once when the alert was not delivered: every attempt failed, or it was dropped from a full queue. */
  onGiveUp?: () => void;
}

export class DeliveryQueue {
  private readonly waiting: QueuedAlert[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private readonly log: Logger;

  constructor(
    private readonly channel: Channel,
    private readonly size: number,
    private readonly retry: RetryPolicy,
    log: Logger,
  ) {
    this.log = log.child({ channel: channel.name, channelType: channel.type });
  }

  /** Alerts waiting or being delivered. */
  get pending(): number {
    return this.waiting.length + (this.running ? 1 : 0);
  }

  /** Adds an alert and returns at once; when the queue is full, the oldest waiting alert is dropped. */
  push(item: QueuedAlert): void {
    if (this.waiting.length >= this.size) {
      const dropped = this.waiting.shift()!;
      this.log.warn({ event: dropped.alert.type, subject: dropped.alert.subject, queueSize: this.size }, 'notification queue full; dropped the oldest waiting alert');
      dropped.onGiveUp?.();
    }
    this.waiting.push(item);
    if (!this.running) this.start();
  }

  /** Resolves when nothing is waiting or being delivered. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(): void {
    this.running = true;
    // Deliveries begin on a later turn of the event loop, so push() (and emit()) does no channel work at all.
    setImmediate(() => {
      this.drain()
        .catch((error: unknown) => this.log.error({ reason: (error as Error).message }, 'notification queue stopped unexpectedly'))
        .finally(() => this.stopped());
    });
  }

  private stopped(): void {
    this.running = false;
    // An alert pushed while the last delivery settled would otherwise wait for the next push.
    if (this.waiting.length > 0) return this.start();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private async drain(): Promise<void> {
    for (let item = this.waiting.shift(); item !== undefined; item = this.waiting.shift()) {
      const delivered = await this.deliverWithRetry(item.alert);
      if (!delivered) item.onGiveUp?.();
    }
  }

  /** Returns whether the alert was delivered. Every failure is caught and logged here. */
  private async deliverWithRetry(alert: OutgoingAlert): Promise<boolean> {
    const fields = { event: alert.type, subject: alert.subject };
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      try {
        await this.channel.deliver(alert);
        this.log.info({ ...fields, attempt, durationMs: Date.now() - started }, 'alert delivered');
        return true;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        // Channels wrap every network failure in a DeliveryError; anything else is bad alert data that no retry fixes.
        const retryable = error instanceof DeliveryError && error.retryable;
        if (!retryable || attempt >= this.retry.attempts) {
          this.log.error({ ...fields, attempt, reason }, retryable ? 'alert delivery failed; no attempts left' : 'alert delivery failed; not retrying because another attempt would fail the same way');
          return false;
        }
        const retryInMs = Math.min(this.retry.initialBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
        this.log.warn({ ...fields, attempt, retryInMs, reason }, 'alert delivery failed; retrying');
        await sleep(retryInMs);
      }
    }
  }
}

/** Waits without keeping the process alive, because a shutdown waits through flush(), whose own timer keeps it alive. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
