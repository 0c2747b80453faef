/**
 * The alert sink against local HTTP receivers: routing, suppression of
 * repeats, recoveries, retries with backoff, the bounded queue and flush.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planSchema, type Plan } from '../../src/config/schema.js';
import { silentSink, type AlertEvent, type AlertSink } from '../../src/notify/events.js';
import { createAlertSink } from '../../src/notify/sink.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { closedPort, startHttpReceiver, waitUntil, type HttpReceiver } from '../helpers/receivers.js';

const T0 = Date.parse('2026-12-04T02:00:00.000Z');
const MINUTE = 60_000;

function event(type: AlertEvent['type'], subject: string, severity: AlertEvent['severity'] = 'error'): AlertEvent {
  return { type, severity, subject, summary: `${type} on ${subject}`, at: new Date(T0), details: {} };
}

function planWith(notifications: Record<string, unknown>): Plan {
  return planSchema.parse({
    service: 'shop',
    databases: [{ name: 'shop', url: 'postgres://shop@127.0.0.1:5432/shop' }],
    repositories: [{ name: 'local', url: 'file:///var/backups/shop' }],
    notifications,
  });
}

/** Type and subject of each webhook request a receiver got, such as "job.failed nightly-db", by path. */
function received(receiver: HttpReceiver, path: string): string[] {
  return receiver.requests.filter((request) => request.path === path).map((request) => {
    const body = JSON.parse(request.body) as { type: string; subject: string };
    return `${body.type} ${body.subject}`;
  });
}

let receiver: HttpReceiver;
let captured: CapturedLog;
let clock: number;

beforeEach(async () => {
  receiver = await startHttpReceiver();
  captured = captureLog();
  clock = T0;
});

afterEach(async () => {
  await receiver.close();
});

function sinkFor(notifications: Record<string, unknown>): AlertSink {
  return createAlertSink(planWith(notifications), captured.log, { now: () => clock });
}

function hook(name: string, extra: Record<string, unknown> = {}) {
  return { name, type: 'webhook', url: receiver.url(`/${name}`), ...extra };
}

describe('createAlertSink', () => {
  it('no channels gives silent sink', () => {
    expect(createAlertSink(planWith({}), captured.log)).toBe(silentSink);
    expect(createAlertSink(planSchema.parse({ databases: [{ name: 'a', url: 'postgres://127.0.0.1/a' }], repositories: [{ name: 'r', url: 'file:///r' }] }), captured.log)).toBe(silentSink);
  });
});

describe('routing', () => {
  it('without routes every channel', async () => {
    const sink = sinkFor({ channels: [hook('a'), hook('b')] });

    sink.emit(event('verify.failed', 'shop', 'warning'));
    await sink.flush(5000);

    expect(received(receiver, '/a')).toEqual(['verify.failed shop']);
    expect(received(receiver, '/b')).toEqual(['verify.failed shop']);
  });

  it('routes by type and severity', async () => {
    const sink = sinkFor({
      channels: [hook('a'), hook('b'), hook('c')],
      routes: [
        { events: ['verify.failed'], channels: ['a'] },
        { minSeverity: 'critical', channels: ['b'] },
        { events: ['job.failed', 'objective.breached'], minSeverity: 'error', channels: ['c'] },
      ],
    });

    sink.emit(event('verify.failed', 'v-warning', 'warning'));
    sink.emit(event('repository.unreachable', 'r-critical', 'critical'));
    sink.emit(event('job.failed', 'j-error', 'error'));
    sink.emit(event('job.failed', 'j-warning', 'warning'));
    sink.emit(event('objective.breached', 'o-info', 'info'));
    sink.emit(event('verify.failed', 'v-critical', 'critical'));
    await sink.flush(5000);

    expect(received(receiver, '/a')).toEqual(['verify.failed v-warning', 'verify.failed v-critical']);
    expect(received(receiver, '/b')).toEqual(['repository.unreachable r-critical', 'verify.failed v-critical']);
    expect(received(receiver, '/c')).toEqual(['job.failed j-error']);
    expect(receiver.requests).toHaveLength(5);
  });

  it('recovery only where problem went', async () => {
    const sink = sinkFor({
      channels: [hook('a'), hook('b')],
      routes: [
        { events: ['job.failed'], channels: ['a'] },
        { events: ['verify.failed'], channels: ['b'] },
      ],
    });

    sink.emit(event('job.failed', 'nightly-db'));
    sink.emit(event('job.recovered', 'nightly-db', 'info'));
    await sink.flush(5000);

    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db', 'job.recovered nightly-db']);
    expect(received(receiver, '/b')).toEqual([]);
  });
});

describe('suppression', () => {
  it('repeat suppressed within window', async () => {
    const sink = sinkFor({ channels: [hook('a')], suppressFor: '1h' });

    sink.emit(event('job.failed', 'nightly-db'));
    clock = T0 + 30 * MINUTE;
    sink.emit(event('job.failed', 'nightly-db'));
    clock = T0 + 59 * MINUTE;
    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);
    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db']);

    clock = T0 + 61 * MINUTE;
    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);
    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db', 'job.failed nightly-db']);

    const suppressed = captured.lines.filter((line) => line.msg === 'repeated alert suppressed');
    expect(suppressed).toHaveLength(2);
    expect(suppressed[0]).toMatchObject({ level: 20, component: 'notify', channel: 'a', event: 'job.failed', subject: 'nightly-db' });
  });

  it('other subject or type not a repeat', async () => {
    const sink = sinkFor({ channels: [hook('a')] });

    sink.emit(event('job.failed', 'nightly-db'));
    sink.emit(event('job.failed', 'nightly-files'));
    sink.emit(event('verify.failed', 'nightly-db'));
    await sink.flush(5000);

    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db', 'job.failed nightly-files', 'verify.failed nightly-db']);
  });

  it('escalation is not a repeat', async () => {
    const sink = sinkFor({ channels: [hook('a')] });

    sink.emit(event('objective.breached', 'shop', 'warning'));
    clock = T0 + MINUTE;
    sink.emit(event('objective.breached', 'shop', 'critical'));
    clock = T0 + 2 * MINUTE;
    sink.emit(event('objective.breached', 'shop', 'error'));
    await sink.flush(5000);

    const severities = receiver.json().map((body) => (body as { severity: string }).severity);
    expect(severities).toEqual(['warning', 'critical']);
  });

  it('recovery sent once after problem', async () => {
    const sink = sinkFor({ channels: [hook('a')] });

    sink.emit(event('job.recovered', 'nightly-db', 'info'));
    await sink.flush(5000);
    expect(receiver.requests).toHaveLength(0);

    sink.emit(event('job.failed', 'nightly-db'));
    sink.emit(event('job.recovered', 'nightly-db', 'info'));
    sink.emit(event('job.recovered', 'nightly-db', 'info'));
    // A recovery of another family with the same subject matches no problem.
    sink.emit(event('verify.passed', 'nightly-db', 'info'));
    await sink.flush(5000);
    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db', 'job.recovered nightly-db']);

    // The recovery ended the suppression: a new failure a minute later is sent.
    clock = T0 + MINUTE;
    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);
    expect(received(receiver, '/a')).toEqual(['job.failed nightly-db', 'job.recovered nightly-db', 'job.failed nightly-db']);
  });
});

describe('delivery', () => {
  it('down receiver retried until up', async () => {
    await receiver.close();
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}/hooks/T0001/secret-path-token`;
    const sink = sinkFor({ channels: [{ name: 'ops', type: 'webhook', url, headers: { Authorization: 'Bearer header-secret' } }], retry: { attempts: 8, initialBackoff: '0.1s' } });

    const started = performance.now();
    sink.emit(event('job.failed', 'nightly-db'));
    const emitMs = performance.now() - started;
    expect(emitMs).toBeLessThan(20);

    await waitUntil(() => captured.lines.some((line) => line.msg === 'alert delivery failed; retrying' && line.attempt === 2), 10_000, () => 'the second failed attempt');
    receiver = await startHttpReceiver(port);
    await sink.flush(30_000);

    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]!.path).toBe('/hooks/T0001/secret-path-token');
    const retries = captured.lines.filter((line) => line.msg === 'alert delivery failed; retrying');
    expect(retries.length).toBeGreaterThanOrEqual(2);
    retries.forEach((line, index) => {
      expect(line.level).toBe(40);
      expect(line.channel).toBe('ops');
      expect(line.channelType).toBe('webhook');
      expect(line.attempt).toBe(index + 1);
      expect(line.retryInMs).toBe(100 * 2 ** index);
      expect(line.reason).toBe(`127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
    });
    const delivered = captured.lines.find((line) => line.msg === 'alert delivered')!;
    expect(delivered.attempt).toBe(retries.length + 1);
    expect(delivered.channel).toBe('ops');
    const logText = JSON.stringify(captured.lines);
    expect(logText).not.toContain('secret-path-token');
    expect(logText).not.toContain('header-secret');
  });

  it('500 then 200 retried', async () => {
    receiver.statuses.push(500);
    const sink = sinkFor({ channels: [hook('a')], retry: { attempts: 3, initialBackoff: '0.05s' } });

    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);

    expect(receiver.requests).toHaveLength(2);
    expect(receiver.requests[1]!.body).toBe(receiver.requests[0]!.body);
    const retry = captured.lines.find((line) => line.msg === 'alert delivery failed; retrying')!;
    expect(retry.reason).toBe(`127.0.0.1:${receiver.port} returned HTTP 500 Internal Server Error: failure 500`);
    expect(retry.retryInMs).toBe(50);
    expect(captured.lines.find((line) => line.msg === 'alert delivered')?.attempt).toBe(2);
  });

  it('timeout retried', async () => {
    receiver.delaysMs.push(2000);
    const sink = sinkFor({ channels: [hook('a')], timeout: '0.2s', retry: { attempts: 2, initialBackoff: '0.05s' } });

    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);

    expect(receiver.requests).toHaveLength(2);
    const retry = captured.lines.find((line) => line.msg === 'alert delivery failed; retrying')!;
    expect(retry.reason).toBe(`127.0.0.1:${receiver.port}: no response within 200 ms`);
    expect(captured.lines.find((line) => line.msg === 'alert delivered')?.attempt).toBe(2);
  });

  it('gives up after attempts', async () => {
    receiver.defaultStatus = 503;
    const sink = sinkFor({ channels: [hook('a')], retry: { attempts: 3, initialBackoff: '0.02s' } });

    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);

    expect(receiver.requests).toHaveLength(3);
    const failure = captured.lines.find((line) => line.level === 50)!;
    expect(failure).toMatchObject({ msg: 'alert delivery failed; no attempts left', channel: 'a', attempt: 3, event: 'job.failed', subject: 'nightly-db' });

    // An alert that was never delivered does not suppress its repeat.
    receiver.defaultStatus = 200;
    clock = T0 + MINUTE;
    sink.emit(event('job.failed', 'nightly-db'));
    await sink.flush(5000);
    expect(receiver.requests).toHaveLength(4);
    expect(receiver.requests[3]!.headers['content-type']).toBe('application/json');
  });

  it('full queue drops oldest', async () => {
    receiver.delaysMs.push(300);
    const sink = sinkFor({ channels: [hook('a')], queueSize: 2 });

    sink.emit(event('job.failed', 'one'));
    await receiver.waitForRequests(1);
    for (const subject of ['two', 'three', 'four']) sink.emit(event('job.failed', subject));
    await sink.flush(5000);

    // "one" was in flight, so the queue held two and three; four pushed out two.
    expect(received(receiver, '/a')).toEqual(['job.failed one', 'job.failed three', 'job.failed four']);
    const dropped = captured.lines.filter((line) => line.msg === 'notification queue full; dropped the oldest waiting alert');
    expect(dropped).toHaveLength(1);
    expect(dropped[0]).toMatchObject({ level: 40, channel: 'a', subject: 'two', event: 'job.failed', queueSize: 2 });
  });

  it('flush waits for delivery', async () => {
    receiver.delaysMs.push(300);
    const sink = sinkFor({ channels: [hook('a')] });

    sink.emit(event('job.failed', 'nightly-db'));
    expect(captured.lines.some((line) => line.msg === 'alert delivered')).toBe(false);
    await sink.flush(5000);

    expect(captured.lines.some((line) => line.msg === 'alert delivered')).toBe(true);
  });

  it('flush returns at timeout', async () => {
    receiver.delaysMs.push(3000);
    const sink = sinkFor({ channels: [hook('a'), hook('b')], timeout: '5s', retry: { attempts: 1 } });

    sink.emit(event('job.failed', 'nightly-db'));
    const started = performance.now();
    await sink.flush(200);
    const flushMs = performance.now() - started;

    expect(flushMs).toBeGreaterThanOrEqual(190);
    expect(flushMs).toBeLessThan(1500);
    const warning = captured.lines.find((line) => line.msg === 'alerts still undelivered when the flush timeout ran out')!;
    expect(warning).toMatchObject({ level: 40, timeoutMs: 200 });
    expect(warning.pending === 'a: 1' || warning.pending === 'b: 1').toBe(true);
  });

  it('bad event does not throw', async () => {
    const sink = sinkFor({ channels: [hook('a')], retry: { attempts: 3, initialBackoff: '0.02s' } });

    expect(() => sink.emit({ ...event('job.failed', 'broken-date'), at: new Date(Number.NaN) })).not.toThrow();
    expect(() => sink.emit({ ...event('job.failed', 'x'), type: 'job.exploded' as AlertEvent['type'] })).not.toThrow();
    expect(() => sink.emit(null as unknown as AlertEvent)).not.toThrow();
    sink.emit(event('job.failed', 'good'));
    await sink.flush(5000);

    expect(received(receiver, '/a')).toEqual(['job.failed good']);
    const errors = captured.lines.filter((line) => line.level === 50).map((line) => line.msg);
    expect(errors).toEqual([
      'unknown alert event type; alert dropped',
      'alert could not be queued',
      'alert delivery failed; not retrying because another attempt would fail the same way',
    ]);
  });
});
