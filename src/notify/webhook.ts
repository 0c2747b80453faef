/**
 * The generic webhook channel: one JSON document per alert, POSTed to the
 * configured URL with the configured headers.
 */
import type { Channel, ChannelContext, OutgoingAlert } from './channel.js';
import { postJson } from './http.js';

export interface WebhookChannelConfig {
  name: string;
  url: string;
  headers?: Record<string, string>;
}

/** The JSON body of a webhook request; its fields are documented for receivers, so changes must stay compatible. */
export interface WebhookBody {
  /** The event type, such as "job.failed", or "notify.test" for `drplan notify test`. */
  type: string;
  status: OutgoingAlert['status'];
  severity: OutgoingAlert['severity'];
  subject: string;
  summary: string;
  /** When the event happened, ISO 8601 in UTC. */
  at: string;
  details: OutgoingAlert['details'];
  /** `service` from the plan, or null. */
  service: string | null;
  host: string;
  drplanVersion: string;
}

/** Builds the webhook body for one alert. */
export function webhookBody(alert: OutgoingAlert, context: ChannelContext): WebhookBody {
  return {
    type: alert.type,
    status: alert.status,
    severity: alert.severity,
    subject: alert.subject,
    summary: alert.summary,
    at: alert.at.toISOString(),
    details: alert.details,
    service: context.service ?? null,
    host: context.hostname,
    drplanVersion: context.version,
  };
}

export function createWebhookChannel(config: WebhookChannelConfig, context: ChannelContext): Channel {
  const headers = { 'user-agent': `drplan/${context.version}`, ...config.headers };
  return {
    name: config.name,
    type: 'webhook',
    deliver: (alert) =>
      postJson(config.url, webhookBody(alert, context), {
        channel: config.name,
        headers,
        timeoutMs: context.timeoutMs,
        secrets: Object.values(config.headers ?? {}),
      }),
  };
}
