/**
 * Checks of the `notifications` section that the schema cannot express:
 * secrets written into the plan file, duplicate channel names, and routes
 * that name a channel the plan does not define.
 */
import { ConfigError } from '../errors.js';
import type { Plan } from './schema.js';

/** Fields whose value must come from the environment, never from the plan file itself. */
const SECRET_FIELDS = ['password', 'routingKey'] as const;

const VARIABLE_REFERENCE = /(^|[^$])\$\{[A-Za-z_][A-Za-z0-9_]*\}/;

/**
 * Rejects a password or routing key written literally in the plan file. This
 * runs on the parsed YAML before `${VAR}` substitution, because only there is
 * the difference between a literal and a variable still visible. The message
 * never repeats the value.
 */
export function checkNotificationSecrets(raw: unknown, file: string): void {
  const channels = (raw as { notifications?: { channels?: unknown } } | null)?.notifications?.channels;
  if (!Array.isArray(channels)) return;
  channels.forEach((channel: unknown, index) => {
    if (channel === null || typeof channel !== 'object') return;
    for (const field of SECRET_FIELDS) {
      const value = (channel as Record<string, unknown>)[field];
      if (value === undefined || (typeof value === 'string' && VARIABLE_REFERENCE.test(value))) continue;
      const where = `notifications.channels[${index}].${field}`;
      throw new ConfigError(`invalid plan ${file}: ${where} is written in the plan file; secrets must come from the environment`, {
        code: 'config.secret',
        object: where,
        hint: `Write ${field}: \${VARIABLE} (for example \${${field === 'password' ? 'SMTP_PASSWORD' : 'PAGERDUTY_ROUTING_KEY'}}) and set that variable in the environment of drplan.`,
      });
    }
  });
}

/** Checks channel names and the channels named by routes, and that an SMTP login has both parts. */
export function checkNotificationReferences(plan: Plan, file: string): void {
  const notifications = plan.notifications;
  if (notifications === undefined) return;

  const names = new Set<string>();
  notifications.channels.forEach((channel, index) => {
    if (names.has(channel.name)) {
      throw new ConfigError(`invalid plan ${file}: notifications.channels[${index}].name "${channel.name}" is used twice`, {
        code: 'config.duplicate',
        object: `notifications.channels[${index}].name`,
        hint: 'Give every notification channel its own name.',
      });
    }
    names.add(channel.name);
    if (channel.type === 'email' && (channel.user === undefined) !== (channel.password === undefined)) {
      const missing = channel.user === undefined ? 'user' : 'password';
      throw new ConfigError(`invalid plan ${file}: notifications.channels[${index}].${missing}: missing; an SMTP login needs both user and password`, {
        code: 'config.invalid',
        object: `notifications.channels[${index}].${missing}`,
        hint: 'Set both user and password, or neither for a server that accepts mail without a login.',
      });
    }
  });

  notifications.routes?.forEach((route, routeIndex) => {
    route.channels.forEach((channel, channelIndex) => {
      if (names.has(channel)) return;
      const where = `notifications.routes[${routeIndex}].channels[${channelIndex}]`;
      throw new ConfigError(`invalid plan ${file}: ${where}: channel "${channel}" is not defined in notifications.channels`, {
        code: 'config.reference',
        object: where,
        hint: names.size === 0 ? 'Define the channel under notifications.channels.' : `Defined channels: ${[...names].join(', ')}.`,
      });
    });
  });
}
