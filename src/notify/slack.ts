/**
 * The Slack channel: a message in the incoming-webhook format (`text` plus
 * Block Kit `blocks`), which Slack and compatible chat servers accept.
 */
import type { Channel, ChannelContext, OutgoingAlert } from './channel.js';
import { postJson } from './http.js';

export interface SlackChannelConfig {
  name: string;
  url: string;
}

/** Slack rejects a section text longer than 3000 characters. */
const SECTION_TEXT_LIMIT = 3000;

const ICONS: Record<string, string> = {
  critical: ':rotating_light:',
  error: ':red_circle:',
  warning: ':warning:',
  info: ':information_source:',
  recovery: ':white_check_mark:',
  test: ':test_tube:',
};

/** Words before the summary of a recovery or test, so it does not read as a new problem. */
const STATUS_PREFIX: Record<OutgoingAlert['status'], string> = { problem: '', recovery: 'recovered: ', test: 'test: ' };

type TextObject = { type: 'mrkdwn'; text: string };

export type SlackBlock =
  | { type: 'section'; text: TextObject }
  | { type: 'section'; fields: TextObject[] }
  | { type: 'context'; elements: TextObject[] };

export interface SlackBody {
  /** One line with the severity and the summary; also the notification text on phones. */
  text: string;
  blocks: SlackBlock[];
}

/** Builds the incoming-webhook message for one alert. */
export function slackBody(alert: OutgoingAlert, context: ChannelContext): SlackBody {
  const icon = alertIcon(alert);
  const headline = `[${alert.severity.toUpperCase()}] ${STATUS_PREFIX[alert.status]}${alert.summary}`;
  const where = context.service === undefined ? '' : `, service ${context.service}`;
  const text = `${icon} ${headline} (${alert.type} ${alert.subject}${where})`;

  const fields: TextObject[] = [
    mrkdwn(`*Event*\n${escape(alert.type)}`),
    mrkdwn(`*Subject*\n${escape(alert.subject)}`),
    mrkdwn(`*Severity*\n${alert.severity}`),
    mrkdwn(`*Time*\n${alert.at.toISOString()}`),
  ];
  if (context.service !== undefined) fields.push(mrkdwn(`*Service*\n${escape(context.service)}`));

  const blocks: SlackBlock[] = [{ type: 'section', text: mrkdwn(`${icon} *${escape(headline)}*`) }, { type: 'section', fields }];
  const details = Object.entries(alert.details);
  if (details.length > 0) {
    const lines = details.map(([key, value]) => `*${escape(key)}:* ${escape(String(value))}`).join('\n');
    blocks.push({ type: 'section', text: mrkdwn(truncate(lines, SECTION_TEXT_LIMIT)) });
  }
  blocks.push({ type: 'context', elements: [mrkdwn(`drplan ${context.version} on ${escape(context.hostname)}`)] });

  return { text: escape(text), blocks };
}

export function createSlackChannel(config: SlackChannelConfig, context: ChannelContext): Channel {
  return {
    name: config.name,
    type: 'slack',
    deliver: (alert) => postJson(config.url, slackBody(alert, context), { channel: config.name, timeoutMs: context.timeoutMs, secrets: [] }),
  };
}

function alertIcon(alert: OutgoingAlert): string {
  if (alert.status === 'problem') return ICONS[alert.severity]!;
  return ICONS[alert.status]!;
}

function mrkdwn(text: string): TextObject {
  return { type: 'mrkdwn', text };
}

/** Escapes the three characters that Slack's mrkdwn treats as control characters. */
function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
