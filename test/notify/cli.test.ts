/**
 * `drplan notify test` end to end: the built CLI sends the test alert to
 * local HTTP and SMTP receivers and reports each channel.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DRPLAN_VERSION } from '../../src/version.js';
import { runCli } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { closedPort, startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from '../helpers/receivers.js';

const ENV = { PD_ROUTING_KEY: 'R0UT1NGKEY0123456789abcdef012345', SMTP_PASSWORD: 'smtp-pass-0123456789' };

describe('drplan notify test', () => {
  let http: HttpReceiver;
  let smtp: SmtpReceiver;
  let deadPort: number;
  let planFile: string;
  let emptyPlanFile: string;

  beforeAll(async () => {
    http = await startHttpReceiver();
    smtp = await startSmtpReceiver({ user: 'drplan', password: ENV.SMTP_PASSWORD });
    deadPort = await closedPort();
    const repository = await fileRepository('local');
    const databases = [{ name: 'shop', url: 'postgres://shop:${SHOP_DB_PASSWORD}@127.0.0.1:5432/shop' }];
    planFile = await writePlan({
      service: 'shop',
      databases,
      repositories: [repository],
      notifications: {
        channels: [
          { name: 'hook', type: 'webhook', url: http.url('/hook') },
          { name: 'chat', type: 'slack', url: http.url('/slack') },
          { name: 'pager', type: 'pagerduty', url: http.url('/pd'), routingKey: '${PD_ROUTING_KEY}' },
          { name: 'mail', type: 'email', host: '127.0.0.1', port: smtp.port, user: 'drplan', password: '${SMTP_PASSWORD}', from: 'drplan@shop.test', to: ['ops@shop.test'] },
          { name: 'dead', type: 'webhook', url: `http://127.0.0.1:${deadPort}/hook` },
        ],
        timeout: '2s',
      },
    });
    emptyPlanFile = await writePlan({ databases, repositories: [repository] });
  });

  beforeEach(() => {
    http.requests.length = 0;
    smtp.messages.length = 0;
  });

  afterAll(async () => {
    await http.close();
    await smtp.close();
  });

  it('reports each channel', async () => {
    // SHOP_DB_PASSWORD stays unset: sending alerts needs no database.
    const result = await runCli(['--config', planFile, 'notify', 'test'], { env: ENV });

    expect(result.code).toBe(3);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^hook \(webhook\): delivered \((\d+ ms|\d+\.\d s)\)$/);
    expect(lines[1]).toMatch(/^chat \(slack\): delivered \((\d+ ms|\d+\.\d s)\)$/);
    expect(lines[2]).toMatch(/^pager \(pagerduty\): delivered \((\d+ ms|\d+\.\d s)\)$/);
    expect(lines[3]).toMatch(/^mail \(email\): delivered \((\d+ ms|\d+\.\d s)\)$/);
    expect(lines[4]).toMatch(new RegExp(`^dead \\(webhook\\): FAILED: 127\\.0\\.0\\.1:${deadPort}: connection refused \\(ECONNREFUSED\\) \\((\\d+ ms|\\d+\\.\\d s)\\)$`));
    expect(result.stderr).toBe(
      'drplan: error: test alert failed on 1 of 5 channels: dead\nhint: Check the URL, host, port and credentials of each failed channel; the reason is shown next to it.\n',
    );

    const hook = http.requests.find((request) => request.path === '/hook')!;
    const body = JSON.parse(hook.body) as Record<string, unknown>;
    expect(Date.parse(body.at as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(body).toEqual({
      type: 'notify.test',
      status: 'test',
      severity: 'info',
      subject: 'hook',
      summary: 'drplan test alert of shop through channel hook; no action needed',
      at: body.at,
      details: { channel: 'hook' },
      service: 'shop',
      host: hostname(),
      drplanVersion: DRPLAN_VERSION,
    });

    const slack = JSON.parse(http.requests.find((request) => request.path === '/slack')!.body) as { text: string };
    expect(slack.text).toBe(':test_tube: [INFO] test: drplan test alert of shop through channel chat; no action needed (notify.test chat, service shop)');

    // The test triggers and at once resolves, so no incident stays open.
    const pager = http.requests.filter((request) => request.path === '/pd').map((request) => JSON.parse(request.body) as { event_action: string; dedup_key: string });
    expect(pager.map((event) => event.event_action)).toEqual(['trigger', 'resolve']);
    expect(pager.map((event) => event.dedup_key)).toEqual(['drplan:shop:notify:pager', 'drplan:shop:notify:pager']);

    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.headers.subject).toBe('[drplan shop] INFO notify.test mail');
    expect(smtp.messages[0]!.to).toEqual(['ops@shop.test']);
  });

  it('one channel by name', async () => {
    const result = await runCli(['--config', planFile, 'notify', 'test', '--channel', 'chat', '--json'], { env: ENV });

    expect(result.code, result.stderr).toBe(0);
    const results = JSON.parse(result.stdout) as { channel: string; type: string; delivered: boolean; durationMs: number }[];
    expect(results).toHaveLength(1);
    expect(results[0]!.channel).toBe('chat');
    expect(results[0]!.type).toBe('slack');
    expect(results[0]!.delivered).toBe(true);
    expect(http.requests.map((request) => request.path)).toEqual(['/slack']);
    expect(smtp.messages).toHaveLength(0);
  });

  it('failed channel in json', async () => {
    const result = await runCli(['--config', planFile, 'notify', 'test', '--channel', 'dead', '--json'], { env: ENV });

    expect(result.code).toBe(3);
    const results = JSON.parse(result.stdout) as { channel: string; delivered: boolean; reason: string }[];
    expect(results).toEqual([{ channel: 'dead', type: 'webhook', delivered: false, reason: `127.0.0.1:${deadPort}: connection refused (ECONNREFUSED)`, durationMs: expect.any(Number) }]);
  });

  it('unknown channel exits 5', async () => {
    const result = await runCli(['--config', planFile, 'notify', 'test', '--channel', 'sms'], { env: ENV });

    expect(result.code).toBe(5);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('drplan: error: notification channel "sms" is not in the plan\nhint: Defined channels: hook, chat, pager, mail, dead.\n');
    expect(http.requests).toHaveLength(0);
  });

  it('plan without channels exits 2', async () => {
    const result = await runCli(['--config', emptyPlanFile, 'notify', 'test']);

    expect(result.code).toBe(2);
    expect(result.stderr).toBe('drplan: error: the plan has no notification channels to test\nhint: Add a webhook, slack, email or pagerduty channel under notifications.channels in the plan.\n');
  });

  it('unset secret exits 2', async () => {
    const result = await runCli(['--config', planFile, 'notify', 'test'], { env: { SMTP_PASSWORD: ENV.SMTP_PASSWORD, PD_ROUTING_KEY: undefined } });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('notifications.channels[2].routingKey uses ${PD_ROUTING_KEY}, but the environment variable PD_ROUTING_KEY is not set');
    expect(http.requests).toHaveLength(0);
  });
});
