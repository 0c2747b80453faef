/**
 * The e-mail channel: one plain-text message per alert over SMTP, sent with
 * nodemailer. Each alert opens its own connection, so a server restart
 * between alerts costs nothing.
 */
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { DeliveryError, redactSecrets, type Channel, type ChannelContext, type OutgoingAlert } from './channel.js';

export interface EmailChannelConfig {
  name: string;
  host: string;
  port: number;
  secure: boolean;
  requireTLS: boolean;
  user?: string;
  password?: string;
  from: string;
  to: string[];
}

/** The parts of an alert e-mail that drplan chooses; nodemailer adds the MIME framing. */
export interface EmailMessage {
  from: string;
  to: string[];
  subject: string;
  text: string;
  headers: Record<string, string>;
}

/** nodemailer error codes after which another attempt fails the same way. */
const PERMANENT_ERRORS = new Set(['EAUTH', 'EENVELOPE', 'EMESSAGE', 'ETLS']);

/** Builds the message for one alert: subject `[drplan SERVICE] SEVERITY TYPE SUBJECT`, plain-text body with the details. */
export function emailMessage(alert: OutgoingAlert, config: Pick<EmailChannelConfig, 'from' | 'to'>, context: ChannelContext): EmailMessage {
  const tag = context.service === undefined ? '[drplan]' : `[drplan ${context.service}]`;
  return {
    from: config.from,
    to: config.to,
    subject: `${tag} ${alert.severity.toUpperCase()} ${alert.type} ${alert.subject}`,
    text: emailText(alert, context),
    headers: { 'X-Drplan-Event': alert.type, 'X-Drplan-Severity': alert.severity, 'X-Drplan-Subject': alert.subject },
  };
}

function emailText(alert: OutgoingAlert, context: ChannelContext): string {
  const lines = [
    alert.summary,
    '',
    `Event:     ${alert.type} (${alert.status})`,
    `Subject:   ${alert.subject}`,
    `Severity:  ${alert.severity}`,
    `Time:      ${alert.at.toISOString()}`,
  ];
  if (context.service !== undefined) lines.push(`Service:   ${context.service}`);

  const details = Object.entries(alert.details);
  if (details.length > 0) {
    lines.push('', 'Details:');
    // Continuation lines of a multi-line value (an error with its stderr) are indented under their key.
    for (const [key, value] of details) lines.push(`  ${key}: ${String(value).replace(/\n/g, '\n    ')}`);
  }

  lines.push('', `Sent by drplan ${context.version} on ${context.hostname}.`, '');
  return lines.join('\n');
}

export function createEmailChannel(config: EmailChannelConfig, context: ChannelContext): Channel {
  const options: SMTPTransport.Options = {
    host: config.host,
    port: config.port,
    secure: config.secure,
    requireTLS: config.requireTLS,
    auth: config.user === undefined ? undefined : { user: config.user, pass: config.password },
    // nodemailer has no overall deadline; these three bound each phase of one attempt.
    connectionTimeout: context.timeoutMs,
    greetingTimeout: context.timeoutMs,
    socketTimeout: context.timeoutMs,
  };
  const transport = nodemailer.createTransport(options);
  const secrets = config.password === undefined ? [] : [config.password];

  return {
    name: config.name,
    type: 'email',
    deliver: async (alert) => {
      let info: SMTPTransport.SentMessageInfo;
      try {
        info = await transport.sendMail(emailMessage(alert, config, context));
      } catch (error) {
        throw smtpFailure(error, config, secrets);
      }
      if (info.rejected.length > 0) {
        // The accepted recipients already have the message, so another attempt would send it to them twice.
        throw new DeliveryError(`${config.host}:${config.port} rejected recipients: ${info.rejected.map(String).join(', ')}`, { channel: config.name, retryable: false });
      }
    },
  };
}

function smtpFailure(error: unknown, config: EmailChannelConfig, secrets: string[]): DeliveryError {
  const { code, responseCode, message } = error as { code?: string; responseCode?: number; message?: string };
  const permanent = (code !== undefined && PERMANENT_ERRORS.has(code)) || (responseCode !== undefined && responseCode >= 500);
  const reason = redactSecrets((message ?? String(error)).replace(/\s+/g, ' ').trim(), secrets);
  return new DeliveryError(`${config.host}:${config.port}: ${reason}`, { channel: config.name, retryable: !permanent, cause: error });
}
