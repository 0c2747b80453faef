/**
 * The `notifications` section of drplan.yaml: defaults, and the exact error
 * for each kind of mistake. Nothing here resolves a host name or connects.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadPlan } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const ENV = { PD_KEY: 'pd-routing-key-0123456789', SMTP_PASSWORD: 'smtp-secret-0123456789' };

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drplan-notify-config-'));
  file = join(dir, 'drplan.yaml');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeNotifications(notifications: unknown): Promise<void> {
  const plan = {
    databases: [{ name: 'shop', url: 'postgres://shop@127.0.0.1:5432/shop' }],
    repositories: [{ name: 'local', url: 'file:///var/backups/shop' }],
    notifications,
  };
  await writeFile(file, stringify(plan));
}

async function loadError(notifications: unknown): Promise<ConfigError> {
  await writeNotifications(notifications);
  const error = await loadPlan(file, ENV).then(
    () => {
      throw new Error('expected loadPlan to reject');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).exitCode).toBe(2);
  return error as ConfigError;
}

const hook = { name: 'hook', type: 'webhook', url: 'http://127.0.0.1:9/hook' };

describe('notifications defaults', () => {
  it('defaults are applied', async () => {
    await writeNotifications({
      channels: [
        hook,
        { name: 'pager', type: 'pagerduty', url: 'http://127.0.0.1:8081/v2/enqueue', routingKey: '${PD_KEY}' },
        { name: 'mail', type: 'email', host: '127.0.0.1', port: 25, from: 'drplan@shop.test', to: ['ops@shop.test'] },
      ],
    });

    const plan = await loadPlan(file, ENV);

    expect(plan.notifications).toEqual({
      channels: [
        hook,
        { name: 'pager', type: 'pagerduty', url: 'http://127.0.0.1:8081/v2/enqueue', routingKey: 'pd-routing-key-0123456789' },
        { name: 'mail', type: 'email', host: '127.0.0.1', port: 25, secure: false, requireTLS: false, from: 'drplan@shop.test', to: ['ops@shop.test'] },
      ],
      suppressFor: '1h',
      timeout: '10s',
      retry: { attempts: 5, initialBackoff: '2s' },
      queueSize: 100,
    });
  });

  it('routes and settings kept', async () => {
    const notifications = {
      channels: [hook],
      routes: [{ events: ['job.failed', 'verify.failed'], minSeverity: 'warning', channels: ['hook'] }],
      suppressFor: '30m',
      timeout: '5s',
      retry: { attempts: 3, initialBackoff: '0.5s' },
      queueSize: 10,
    };
    await writeNotifications(notifications);

    const plan = await loadPlan(file, ENV);

    expect(plan.notifications).toEqual(notifications);
  });
});

describe('notifications errors', () => {
  it('bad webhook url', async () => {
    const error = await loadError({ channels: [{ ...hook, url: 'ftp://127.0.0.1/hook' }] });

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0].url: "ftp://127.0.0.1/hook" is invalid; expected an http:// or https:// URL`);
  });

  it('url without scheme', async () => {
    const error = await loadError({ channels: [{ name: 'chat', type: 'slack', url: '127.0.0.1:8080/services/x' }] });

    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0].url: "127.0.0.1:8080/services/x" is invalid; expected an http:// or https:// URL`);
  });

  it('unknown channel in route', async () => {
    const error = await loadError({ channels: [hook], routes: [{ channels: ['hook', 'pager'] }] });

    expect(error.code).toBe('config.reference');
    expect(error.object).toBe('notifications.routes[0].channels[1]');
    expect(error.message).toBe(`invalid plan ${file}: notifications.routes[0].channels[1]: channel "pager" is not defined in notifications.channels`);
    expect(error.hint).toBe('Defined channels: hook.');
  });

  it('missing channel fields', async () => {
    const error = await loadError({
      channels: [
        { name: 'chat', type: 'slack' },
        { name: 'mail', type: 'email', host: '127.0.0.1', port: 25 },
        { name: 'pager', type: 'pagerduty' },
        { type: 'webhook', url: 'http://127.0.0.1:9/' },
      ],
    });

    expect(error.message.split('\n')).toEqual([
      `invalid plan ${file}:`,
      '  notifications.channels[0].url: missing; this field is required',
      '  notifications.channels[1].from: missing; this field is required',
      '  notifications.channels[1].to: missing; this field is required',
      '  notifications.channels[2].url: missing; this field is required',
      '  notifications.channels[2].routingKey: missing; this field is required',
      '  notifications.channels[3].name: missing; this field is required',
    ]);
  });

  it('unknown channel type', async () => {
    const error = await loadError({ channels: [{ name: 'sms', type: 'sms', url: 'http://127.0.0.1:9/' }] });

    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0].type: "sms" is invalid; expected one of "webhook", "slack", "email", "pagerduty"`);
  });

  it('unknown field names type fields', async () => {
    const error = await loadError({ channels: [{ ...hook, header: { 'X-Team': 'ops' } }] });

    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0]: unknown field header; did you mean headers? allowed fields here: name, type, url, headers`);
  });

  it('recovery event in route', async () => {
    const error = await loadError({ channels: [hook], routes: [{ events: ['job.recovered'], channels: ['hook'] }] });

    expect(error.message).toBe(
      `invalid plan ${file}:\n  notifications.routes[0].events[0]: "job.recovered" is invalid; expected one of "job.failed", "objective.breached", "verify.failed", "repository.unreachable"`,
    );
  });

  it('bad severity and durations', async () => {
    const error = await loadError({ channels: [hook], routes: [{ minSeverity: 'high', channels: ['hook'] }], suppressFor: 'an hour', retry: { attempts: 0 } });

    expect(error.message.split('\n')).toEqual([
      `invalid plan ${file}:`,
      '  notifications.routes[0].minSeverity: "high" is invalid; expected one of "critical", "error", "warning", "info"',
      '  notifications.suppressFor: "an hour" is invalid; expected a duration such as "15m", "24h" or "7d"',
      '  notifications.retry.attempts: 0 is invalid; expected a number >= 1',
    ]);
  });

  it('bad recipient address', async () => {
    const error = await loadError({ channels: [{ name: 'mail', type: 'email', host: '127.0.0.1', port: 25, from: 'drplan@shop.test', to: ['ops'] }] });

    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0].to[0]: "ops" is invalid; expected an e-mail address such as ops@example.com or "drplan <drplan@example.com>"`);
  });

  it('duplicate channel names', async () => {
    const error = await loadError({ channels: [hook, { ...hook, type: 'slack' }] });

    expect(error.code).toBe('config.duplicate');
    expect(error.object).toBe('notifications.channels[1].name');
    expect(error.message).toBe(`invalid plan ${file}: notifications.channels[1].name "hook" is used twice`);
  });

  it('literal routing key rejected', async () => {
    const error = await loadError({ channels: [{ name: 'pager', type: 'pagerduty', url: 'http://127.0.0.1:9/', routingKey: 'literal-key-0123456789' }] });

    expect(error.code).toBe('config.secret');
    expect(error.object).toBe('notifications.channels[0].routingKey');
    expect(error.message).toBe(`invalid plan ${file}: notifications.channels[0].routingKey is written in the plan file; secrets must come from the environment`);
    expect(error.message).not.toContain('literal-key');
    expect(error.hint).toBe('Write routingKey: ${VARIABLE} (for example ${PAGERDUTY_ROUTING_KEY}) and set that variable in the environment of drplan.');
  });

  it('literal smtp password rejected', async () => {
    const error = await loadError({ channels: [{ name: 'mail', type: 'email', host: '127.0.0.1', port: 25, user: 'drplan', password: 12345678, from: 'd@shop.test', to: ['o@shop.test'] }] });

    expect(error.code).toBe('config.secret');
    expect(error.message).toBe(`invalid plan ${file}: notifications.channels[0].password is written in the plan file; secrets must come from the environment`);
    expect(error.message).not.toContain('12345678');
  });

  it('escaped variable is literal', async () => {
    const error = await loadError({ channels: [{ name: 'pager', type: 'pagerduty', url: 'http://127.0.0.1:8081/v2/enqueue', routingKey: '$${PD_KEY}' }] });

    expect(error.code).toBe('config.secret');
  });

  it('user without password', async () => {
    const error = await loadError({ channels: [{ name: 'mail', type: 'email', host: '127.0.0.1', port: 25, user: 'drplan', from: 'd@shop.test', to: ['o@shop.test'] }] });

    expect(error.code).toBe('config.invalid');
    expect(error.message).toBe(`invalid plan ${file}: notifications.channels[0].password: missing; an SMTP login needs both user and password`);
  });

  it('header value never shown', async () => {
    const error = await loadError({ channels: [{ ...hook, headers: { 'Bad Header': 'Bearer token-0123456789' } }] });

    expect(error.message).toBe(`invalid plan ${file}:\n  notifications.channels[0].headers.Bad Header: invalid; expected an HTTP header name`);
    expect(error.message).not.toContain('token-0123456789');
  });

  it('unset secret variable named', async () => {
    await writeNotifications({ channels: [{ name: 'pager', type: 'pagerduty', url: 'http://127.0.0.1:8081/v2/enqueue', routingKey: '${PAGERDUTY_KEY}' }] });

    const error = await loadPlan(file, {}).catch((err: unknown) => err as ConfigError);

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`${file}: notifications.channels[0].routingKey uses \${PAGERDUTY_KEY}, but the environment variable PAGERDUTY_KEY is not set`);
  });
});
