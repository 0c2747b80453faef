/**
 * The PagerDuty channel, through the Events API v2: a problem triggers an
 * alert and its recovery resolves it, matched by the same dedup_key.
 */
import { eventFamily, type Channel, type ChannelContext, type OutgoingAlert } from './channel.js';
import { postJson } from './http.js';

export interface PagerdutyChannelConfig {
  name: string;
  url: string;
  routingKey: string;
}

/** PagerDuty truncates longer summaries; drplan cuts them itself so the end is marked. */
const SUMMARY_LIMIT = 1024;

export interface PagerdutyTrigger {
  routing_key: string;
  event_action: 'trigger';
  dedup_key: string;
  client: string;
  payload: {
    summary: string;
    source: string;
    severity: OutgoingAlert['severity'];
    timestamp: string;
    component: string;
    group: string;
    class: string;
    custom_details: OutgoingAlert['details'];
  };
}

export interface PagerdutyResolve {
  routing_key: string;
  event_action: 'resolve';
  dedup_key: string;
}

/**
 * Returns the key shared by a problem and its recovery: the service, the
 * event family ("job" for job.failed and job.recovered) and the subject.
 */
export function dedupKey(alert: OutgoingAlert, context: ChannelContext): string {
  const service = context.service === undefined ? '' : `${context.service}:`;
  return `drplan:${service}${eventFamily(alert.type)}:${alert.subject}`;
}

/** Builds the trigger event for a problem (or a test). drplan's severities are PagerDuty's four, so they map one to one. */
export function pagerdutyTrigger(alert: OutgoingAlert, routingKey: string, context: ChannelContext): PagerdutyTrigger {
  const summary = alert.summary.length <= SUMMARY_LIMIT ? alert.summary : `${alert.summary.slice(0, SUMMARY_LIMIT - 1)}…`;
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey(alert, context),
    client: `drplan ${context.version}`,
    payload: {
      summary,
      source: context.service ?? context.hostname,
      severity: alert.severity,
      timestamp: alert.at.toISOString(),
      component: alert.subject,
      group: eventFamily(alert.type),
      class: alert.type,
      custom_details: alert.details,
    },
  };
}

/** Builds the resolve event for a recovery. */
export function pagerdutyResolve(alert: OutgoingAlert, routingKey: string, context: ChannelContext): PagerdutyResolve {
  return { routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKey(alert, context) };
}

export function createPagerdutyChannel(config: PagerdutyChannelConfig, context: ChannelContext): Channel {
  const post = (body: PagerdutyTrigger | PagerdutyResolve) =>
    postJson(config.url, body, { channel: config.name, timeoutMs: context.timeoutMs, secrets: [config.routingKey] });

  return {
    name: config.name,
    type: 'pagerduty',
    deliver: async (alert) => {
      if (alert.status === 'recovery') return post(pagerdutyResolve(alert, config.routingKey, context));
      await post(pagerdutyTrigger(alert, config.routingKey, context));
      // A test must not leave an open incident that someone then has to close by hand.
      if (alert.status === 'test') await post(pagerdutyResolve(alert, config.routingKey, context));
    },
  };
}
