/**
 * The exact messages each channel sends, received by local HTTP and SMTP
 * servers. Plans are written to files and loaded like the CLI does, so the
 * `${VAR}` substitution of secrets is part of each case.
 */
import { hostname } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/config/load.js';
import type { Plan } from '../../src/config/schema.js';
import type { AlertEvent } from '../../src/notify/events.js';
import { createAlertSink } from '../../src/notify/sink.js';
import { DRPLAN_VERSION } from '../../src/version.js';
import { captureLog } from '../helpers/log.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from '../helpers/receivers.js';

const failed: AlertEvent = {
  type: 'job.failed',
  severity: 'error',
  subject: 'nightly-db',
  summary: 'backup of shop failed: pg_dump exited with code 1',
  at: new Date('2026-12-04T02:00:03.000Z'),
  details: { database: 'shop', job: 'nightly-db', exitCode: 1, retried: false },
};

const recovered: AlertEvent = {
  type: 'job.recovered',
  severity: 'info',
  subject: 'nightly-db',
  summary: 'backup of shop succeeded again',
  at: new Date('2026-12-04T03:00:05.000Z'),
  details: { database: 'shop', backupId: 'backup_20261204_030005' },
};

const ENV = { HOOK_TOKEN: 'hook-token-0123456789', PD_ROUTING_KEY: 'R0UT1NGKEY0123456789abcdef012345', SMTP_PASSWORD: 'smtp-pass-0123456789' };

/** Writes a plan with these notification settings and loads it with ENV; a null service leaves `service` out. */
async function planWith(notifications: Record<string, unknown>, service: string | null = 'shop'): Promise<Plan> {
  const repository = await fileRepository('local');
  const file = await writePlan({ service: service ?? undefined, databases: [{ name: 'shop', url: 'postgres://shop@127.0.0.1:5432/shop' }], repositories: [repository], notifications });
  return loadPlan(file, ENV);
}

/** Sends `events` through a sink for `plan` and waits until every delivery settled. */
async function deliver(plan: Plan, ...events: AlertEvent[]): Promise<Record<string, unknown>[]> {
  const { log, lines } = captureLog();
  const sink = createAlertSink(plan, log);
  for (const event of events) sink.emit(event);
  await sink.flush(10_000);
  return lines;
}

describe('webhook channel', () => {
  let receiver: HttpReceiver;

  beforeAll(async () => {
    receiver = await startHttpReceiver();
  });
  afterEach(() => {
    receiver.requests.length = 0;
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('webhook posts documented body', async () => {
    const plan = await planWith({
      channels: [{ name: 'ops-hook', type: 'webhook', url: receiver.url('/hooks/drplan'), headers: { Authorization: 'Bearer ${HOOK_TOKEN}', 'X-Team': 'ops' } }],
    });

    await deliver(plan, failed);

    expect(receiver.requests).toHaveLength(1);
    const request = receiver.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/hooks/drplan');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers.authorization).toBe('Bearer hook-token-0123456789');
    expect(request.headers['x-team']).toBe('ops');
    expect(request.headers['user-agent']).toBe(`drplan/${DRPLAN_VERSION}`);
    expect(JSON.parse(request.body)).toEqual({
      type: 'job.failed',
      status: 'problem',
      severity: 'error',
      subject: 'nightly-db',
      summary: 'backup of shop failed: pg_dump exited with code 1',
      at: '2026-12-04T02:00:03.000Z',
      details: { database: 'shop', job: 'nightly-db', exitCode: 1, retried: false },
      service: 'shop',
      host: hostname(),
      drplanVersion: DRPLAN_VERSION,
    });
  });

  it('webhook recovery without service', async () => {
    const plan = await planWith({ channels: [{ name: 'ops-hook', type: 'webhook', url: receiver.url('/hook') }] }, null);

    await deliver(plan, failed, recovered);

    expect(receiver.requests).toHaveLength(2);
    expect(JSON.parse(receiver.requests[1]!.body)).toEqual({
      type: 'job.recovered',
      status: 'recovery',
      severity: 'info',
      subject: 'nightly-db',
      summary: 'backup of shop succeeded again',
      at: '2026-12-04T03:00:05.000Z',
      details: { database: 'shop', backupId: 'backup_20261204_030005' },
      service: null,
      host: hostname(),
      drplanVersion: DRPLAN_VERSION,
    });
  });
});

describe('slack channel', () => {
  let receiver: HttpReceiver;

  beforeAll(async () => {
    receiver = await startHttpReceiver();
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('slack posts text and blocks', async () => {
    const plan = await planWith({ channels: [{ name: 'chat', type: 'slack', url: receiver.url('/services/T000/B000/XXXX') }] });
    const escaped: AlertEvent = { ...failed, severity: 'critical', summary: 'restore of <shop> & co failed', details: { database: 'shop' } };

    await deliver(plan, escaped, recovered);

    expect(receiver.requests).toHaveLength(2);
    expect(receiver.requests[0]!.path).toBe('/services/T000/B000/XXXX');
    expect(receiver.requests[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(receiver.requests[0]!.body)).toEqual({
      text: ':rotating_light: [CRITICAL] restore of &lt;shop&gt; &amp; co failed (job.failed nightly-db, service shop)',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: ':rotating_light: *[CRITICAL] restore of &lt;shop&gt; &amp; co failed*' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Event*\njob.failed' },
            { type: 'mrkdwn', text: '*Subject*\nnightly-db' },
            { type: 'mrkdwn', text: '*Severity*\ncritical' },
            { type: 'mrkdwn', text: '*Time*\n2026-12-04T02:00:03.000Z' },
            { type: 'mrkdwn', text: '*Service*\nshop' },
          ],
        },
        { type: 'section', text: { type: 'mrkdwn', text: '*database:* shop' } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `drplan ${DRPLAN_VERSION} on ${hostname()}` }] },
      ],
    });
    expect(JSON.parse(receiver.requests[1]!.body)).toEqual({
      text: ':white_check_mark: [INFO] recovered: backup of shop succeeded again (job.recovered nightly-db, service shop)',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: ':white_check_mark: *[INFO] recovered: backup of shop succeeded again*' } },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Event*\njob.recovered' },
            { type: 'mrkdwn', text: '*Subject*\nnightly-db' },
            { type: 'mrkdwn', text: '*Severity*\ninfo' },
            { type: 'mrkdwn', text: '*Time*\n2026-12-04T03:00:05.000Z' },
            { type: 'mrkdwn', text: '*Service*\nshop' },
          ],
        },
        { type: 'section', text: { type: 'mrkdwn', text: '*database:* shop\n*backupId:* backup_20261204_030005' } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `drplan ${DRPLAN_VERSION} on ${hostname()}` }] },
      ],
    });
  });
});

describe('pagerduty channel', () => {
  let receiver: HttpReceiver;

  beforeAll(async () => {
    receiver = await startHttpReceiver();
    receiver.defaultStatus = 202;
  });
  afterAll(async () => {
    await receiver.close();
  });

  it('trigger and resolve share dedup key', async () => {
    const plan = await planWith({
      channels: [{ name: 'pager', type: 'pagerduty', url: receiver.url('/v2/enqueue'), routingKey: '${PD_ROUTING_KEY}' }],
      routes: [{ minSeverity: 'error', channels: ['pager'] }],
    });

    // The recovery has severity info, below the route's minimum: it still follows its problem.
    const lines = await deliver(plan, failed, recovered);

    expect(receiver.requests.map((request) => request.path)).toEqual(['/v2/enqueue', '/v2/enqueue']);
    expect(receiver.json()).toEqual([
      {
        routing_key: 'R0UT1NGKEY0123456789abcdef012345',
        event_action: 'trigger',
        dedup_key: 'drplan:shop:job:nightly-db',
        client: `drplan ${DRPLAN_VERSION}`,
        payload: {
          summary: 'backup of shop failed: pg_dump exited with code 1',
          source: 'shop',
          severity: 'error',
          timestamp: '2026-12-04T02:00:03.000Z',
          component: 'nightly-db',
          group: 'job',
          class: 'job.failed',
          custom_details: { database: 'shop', job: 'nightly-db', exitCode: 1, retried: false },
        },
      },
      { routing_key: 'R0UT1NGKEY0123456789abcdef012345', event_action: 'resolve', dedup_key: 'drplan:shop:job:nightly-db' },
    ]);
    expect(JSON.stringify(lines)).not.toContain(ENV.PD_ROUTING_KEY);
  });

  it('severities map one to one', async () => {
    receiver.requests.length = 0;
    const plan = await planWith({ channels: [{ name: 'pager', type: 'pagerduty', url: receiver.url('/v2/enqueue'), routingKey: '${PD_ROUTING_KEY}' }] });
    const severities = ['critical', 'error', 'warning', 'info'] as const;

    await deliver(plan, ...severities.map((severity) => ({ ...failed, severity, subject: `job-${severity}` })));

    const bodies = receiver.json() as { dedup_key: string; payload: { severity: string } }[];
    expect(bodies.map((body) => body.payload.severity)).toEqual(['critical', 'error', 'warning', 'info']);
    expect(bodies.map((body) => body.dedup_key)).toEqual(['drplan:shop:job:job-critical', 'drplan:shop:job:job-error', 'drplan:shop:job:job-warning', 'drplan:shop:job:job-info']);
  });

  it('rejected routing key not retried', async () => {
    receiver.requests.length = 0;
    // A receiver that echoes the request must not get the key into the log.
    receiver.statuses.push(400);
    receiver.echo = true;
    const plan = await planWith({ channels: [{ name: 'pager', type: 'pagerduty', url: receiver.url('/v2/enqueue'), routingKey: '${PD_ROUTING_KEY}' }], retry: { attempts: 3, initialBackoff: '0.05s' } });

    const lines = await deliver(plan, failed);

    expect(receiver.requests).toHaveLength(1);
    const failure = lines.find((line) => line.level === 50)!;
    expect(failure.msg).toBe('alert delivery failed; not retrying because another attempt would fail the same way');
    expect(failure.channel).toBe('pager');
    expect(failure.channelType).toBe('pagerduty');
    expect(failure.attempt).toBe(1);
    const echoed = receiver.requests[0]!.body.replaceAll(ENV.PD_ROUTING_KEY, '***').slice(0, 200);
    expect(failure.reason).toBe(`127.0.0.1:${receiver.port} returned HTTP 400 Bad Request: ${echoed}`);
    receiver.echo = false;
    expect(JSON.stringify(lines)).not.toContain(ENV.PD_ROUTING_KEY);
  });
});

describe('email channel', () => {
  let smtp: SmtpReceiver;

  beforeAll(async () => {
    smtp = await startSmtpReceiver({ user: 'drplan', password: ENV.SMTP_PASSWORD });
  });
  afterAll(async () => {
    await smtp.close();
  });

  function emailChannel(password = '${SMTP_PASSWORD}') {
    return { name: 'ops-mail', type: 'email', host: '127.0.0.1', port: smtp.port, user: 'drplan', password, from: 'drplan <drplan@shop.test>', to: ['ops@shop.test', 'cto@shop.test'] };
  }

  it('email has subject and details', async () => {
    const plan = await planWith({ channels: [emailChannel()] });
    const multiline: AlertEvent = { ...failed, details: { ...failed.details, error: 'pg_dump: error: connection failed\npg_dump: detail: server closed the connection' } };

    await deliver(plan, multiline);

    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0]!;
    expect(mail.user).toBe('drplan');
    expect(mail.from).toBe('drplan@shop.test');
    expect(mail.to).toEqual(['ops@shop.test', 'cto@shop.test']);
    expect(mail.headers.from).toBe('drplan <drplan@shop.test>');
    expect(mail.headers.to).toBe('ops@shop.test, cto@shop.test');
    expect(mail.headers.subject).toBe('[drplan shop] ERROR job.failed nightly-db');
    expect(mail.headers['x-drplan-event']).toBe('job.failed');
    expect(mail.headers['x-drplan-severity']).toBe('error');
    expect(mail.headers['x-drplan-subject']).toBe('nightly-db');
    expect(mail.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(mail.text).toBe(
      [
        'backup of shop failed: pg_dump exited with code 1',
        '',
        'Event:     job.failed (problem)',
        'Subject:   nightly-db',
        'Severity:  error',
        'Time:      2026-12-04T02:00:03.000Z',
        'Service:   shop',
        '',
        'Details:',
        '  database: shop',
        '  job: nightly-db',
        '  exitCode: 1',
        '  retried: false',
        '  error: pg_dump: error: connection failed',
        '    pg_dump: detail: server closed the connection',
        '',
        `Sent by drplan ${DRPLAN_VERSION} on ${hostname()}.`,
        '',
      ].join('\n'),
    );
  });

  it('email recovery subject', async () => {
    smtp.messages.length = 0;
    const plan = await planWith({ channels: [emailChannel()] });

    await deliver(plan, failed, recovered);

    expect(smtp.messages.map((mail) => mail.headers.subject)).toEqual(['[drplan shop] ERROR job.failed nightly-db', '[drplan shop] INFO job.recovered nightly-db']);
    expect(smtp.messages[1]!.text.split('\n').slice(0, 3)).toEqual(['backup of shop succeeded again', '', 'Event:     job.recovered (recovery)']);
  });

  it('wrong password not retried', async () => {
    smtp.messages.length = 0;
    const plan = await planWith({ channels: [emailChannel('${HOOK_TOKEN}')], retry: { attempts: 3, initialBackoff: '0.05s' } });

    const lines = await deliver(plan, failed);

    expect(smtp.messages).toHaveLength(0);
    const failures = lines.filter((line) => line.level === 50);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.channel).toBe('ops-mail');
    expect(failures[0]!.attempt).toBe(1);
    expect(failures[0]!.reason).toBe(`127.0.0.1:${smtp.port}: Invalid login: 535 invalid user name or password`);
    expect(JSON.stringify(lines)).not.toContain(ENV.HOOK_TOKEN);
  });
});
