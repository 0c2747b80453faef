/**
 * The test alert of `drplan notify test`: one alert per channel, sent once
 * with no retry, routes and suppression, so the result shows at once whether
 * each channel works.
 */
import type { Plan } from '../config/schema.js';
import { NotFoundError, UsageError } from '../errors.js';
import { TEST_EVENT, type OutgoingAlert } from './channel.js';
import { channelContext, createChannel } from './channels.js';

export interface ChannelTestResult {
  channel: string;
  type: string;
  delivered: boolean;
  /** The reason the delivery failed; absent when it succeeded. */
  reason?: string;
  durationMs: number;
}

/** Sends the test alert through every channel, or only through `only`, in parallel. */
export async function sendTestAlerts(plan: Plan, only?: string, now: Date = new Date()): Promise<ChannelTestResult[]> {
  const notifications = plan.notifications;
  const configs = notifications?.channels ?? [];
  if (notifications === undefined || configs.length === 0) {
    throw new UsageError('the plan has no notification channels to test', {
      code: 'notify.no-channels',
      object: 'notifications.channels',
      hint: 'Add a webhook, slack, email or pagerduty channel under notifications.channels in the plan.',
    });
  }

  const selected = only === undefined ? configs : configs.filter((config) => config.name === only);
  if (selected.length === 0) {
    throw new NotFoundError(`notification channel ${JSON.stringify(only)} is not in the plan`, {
      code: 'notify.channel',
      object: only,
      hint: `Defined channels: ${configs.map((config) => config.name).join(', ')}.`,
    });
  }

  const context = channelContext(plan, notifications);
  return Promise.all(
    selected.map(async (config): Promise<ChannelTestResult> => {
      const started = Date.now();
      try {
        await createChannel(config, context).deliver(testAlert(config.name, plan.service, now));
        return { channel: config.name, type: config.type, delivered: true, durationMs: Date.now() - started };
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        return { channel: config.name, type: config.type, delivered: false, reason, durationMs: Date.now() - started };
      }
    }),
  );
}

/** Builds the test alert for one channel. */
export function testAlert(channel: string, service: string | undefined, at: Date): OutgoingAlert {
  const where = service === undefined ? '' : ` of ${service}`;
  return {
    type: TEST_EVENT,
    status: 'test',
    severity: 'info',
    subject: channel,
    summary: `drplan test alert${where} through channel ${channel}; no action needed`,
    at,
    details: { channel },
  };
}
