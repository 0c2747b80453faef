/** Creates the channel for each `notifications.channels` entry of the plan, by its type. */
import { hostname } from 'node:os';
import type { NotificationChannelConfig, NotificationsConfig, Plan } from '../config/schema.js';
import { parseDuration } from '../util/duration.js';
import { DRPLAN_VERSION } from '../version.js';
import type { Channel, ChannelContext } from './channel.js';
import { createEmailChannel } from './email.js';
import { createPagerdutyChannel } from './pagerduty.js';
import { createSlackChannel } from './slack.js';
import { createWebhookChannel } from './webhook.js';

/** Returns the facts channels put into their messages, and the per-attempt timeout. */
export function channelContext(plan: Plan, notifications: NotificationsConfig): ChannelContext {
  return { service: plan.service, version: DRPLAN_VERSION, hostname: hostname(), timeoutMs: parseDuration(notifications.timeout) };
}

export function createChannel(config: NotificationChannelConfig, context: ChannelContext): Channel {
  switch (config.type) {
    case 'webhook':
      return createWebhookChannel(config, context);
    case 'slack':
      return createSlackChannel(config, context);
    case 'email':
      return createEmailChannel(config, context);
    case 'pagerduty':
      return createPagerdutyChannel(config, context);
  }
}
