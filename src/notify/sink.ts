/**
 * The alert sink of a plan: routes each problem to its channels, suppresses
 * repeats, sends a recovery where its problem went, and hands the alerts to
 * one background queue per channel. emit() only queues, so the caller does
 * not wait for any network.
 */
import type { NotificationRoute, NotificationsConfig, Plan } from '../config/schema.js';
import type { Logger } from '../logging.js';
import { parseDuration } from '../util/duration.js';
import { AlertMemory } from './alert-memory.js';
import { SEVERITY_RANK, type Channel, type OutgoingAlert } from './channel.js';
import { channelContext, createChannel } from './channels.js';
import { DeliveryQueue } from './delivery-queue.js';
import { PROBLEM_EVENTS, RECOVERY_EVENTS, silentSink, type AlertEvent, type AlertSink, type ProblemEvent } from './events.js';

export interface AlertSinkOptions {
  /** The clock for the suppression window, in milliseconds since the epoch; tests pass their own. */
  now?: () => number;
}

/** Creates the sink for `plan.notifications`, or silentSink when the plan has no channels. */
export function createAlertSink(plan: Plan, log: Logger, options: AlertSinkOptions = {}): AlertSink {
  const config = plan.notifications;
  if (config === undefined || config.channels.length === 0) return silentSink;

  const context = channelContext(plan, config);
  const channels = config.channels.map((channel) => createChannel(channel, context));
  return new RoutingSink(config, channels, log.child({ component: 'notify' }), options.now ?? Date.now);
}

class RoutingSink implements AlertSink {
  private readonly queues = new Map<string, DeliveryQueue>();
  private readonly memory: AlertMemory;

  constructor(
    private readonly config: NotificationsConfig,
    channels: Channel[],
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.memory = new AlertMemory(parseDuration(config.suppressFor));
    const retry = { attempts: config.retry.attempts, initialBackoffMs: parseDuration(config.retry.initialBackoff) };
    for (const channel of channels) this.queues.set(channel.name, new DeliveryQueue(channel, config.queueSize, retry, log));
  }

  emit(event: AlertEvent): void {
    try {
      if ((PROBLEM_EVENTS as readonly string[]).includes(event.type)) this.emitProblem(event);
      else if ((RECOVERY_EVENTS as readonly string[]).includes(event.type)) this.emitRecovery(event);
      else this.log.error({ event: event.type, subject: event.subject }, 'unknown alert event type; alert dropped');
    } catch (error) {
      // An error here must not reach the job that reports a failure, so it is logged and the alert dropped.
      this.log.error({ event: event?.type, subject: event?.subject, reason: (error as Error).message }, 'alert could not be queued');
    }
  }

  restore(event: AlertEvent, sentAt: Date): void {
    for (const channel of routeProblem(event, this.config.routes, [...this.queues.keys()])) this.memory.admitProblem(channel, event, sentAt.getTime());
  }

  async flush(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const idle = Promise.all([...this.queues.values()].map((queue) => queue.idle())).then(() => false);
    const expired = await Promise.race([idle, timedOut]);
    clearTimeout(timer);
    if (!expired) return;

    const pending = [...this.queues.entries()].filter(([, queue]) => queue.pending > 0).map(([channel, queue]) => `${channel}: ${queue.pending}`);
    this.log.warn({ timeoutMs, pending: pending.join(', ') }, 'alerts still undelivered when the flush timeout ran out');
  }

  private emitProblem(event: AlertEvent): void {
    const nowMs = this.now();
    const targets = routeProblem(event, this.config.routes, [...this.queues.keys()]);
    const alert = outgoing(event, 'problem');
    for (const channel of targets) {
      if (!this.memory.admitProblem(channel, event, nowMs)) {
        this.log.debug({ channel, event: event.type, subject: event.subject }, 'repeated alert suppressed');
        continue;
      }
      this.queues.get(channel)!.push({ alert, onGiveUp: () => this.memory.forgetProblem(channel, event, nowMs) });
    }
    if (targets.length === 0) this.log.debug({ event: event.type, subject: event.subject, severity: event.severity }, 'no route matches the alert');
  }

  /** Sends a recovery to every channel that was sent its problem, whatever the routes specify, because a recovery usually has a lower severity than its problem. */
  private emitRecovery(event: AlertEvent): void {
    const alert = outgoing(event, 'recovery');
    for (const [channel, queue] of this.queues) {
      if (this.memory.admitRecovery(channel, event)) queue.push({ alert });
    }
  }
}

/** Returns the channels for a problem: those of every matching route, or every channel when the plan has no routes. */
export function routeProblem(event: AlertEvent, routes: NotificationRoute[] | undefined, channels: string[]): string[] {
  if (routes === undefined) return channels;
  const selected = new Set<string>();
  for (const route of routes) {
    const typeMatches = route.events === undefined || route.events.includes(event.type as ProblemEvent);
    const severityMatches = route.minSeverity === undefined || SEVERITY_RANK[event.severity] >= SEVERITY_RANK[route.minSeverity];
    if (typeMatches && severityMatches) for (const channel of route.channels) selected.add(channel);
  }
  return channels.filter((channel) => selected.has(channel));
}

function outgoing(event: AlertEvent, status: OutgoingAlert['status']): OutgoingAlert {
  return { type: event.type, status, severity: event.severity, subject: event.subject, summary: event.summary, at: event.at, details: event.details ?? {} };
}
