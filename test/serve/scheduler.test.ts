/**
 * The scheduler driven by a manual clock with real croner expressions: UTC
 * evaluation, time zones across DST changes, catch-up after downtime, and
 * the job runner's queue of runs that wait for another job of their database.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobConfig, Plan } from '../../src/config/schema.js';
import { planSchema } from '../../src/config/schema.js';
import type { PlanContext } from '../../src/context.js';
import { silentLogger, type Logger } from '../../src/logging.js';
import type { AlertEvent } from '../../src/notify/events.js';
import { AlertTracker } from '../../src/serve/alerts.js';
import { jobHandlers, type JobHandler } from '../../src/serve/jobs.js';
import { ServeMetrics } from '../../src/serve/metrics.js';
import { JobRunner } from '../../src/serve/runner.js';
import { Scheduler, type ScheduledJob, type Trigger } from '../../src/serve/scheduler.js';
import { JobState } from '../../src/serve/state.js';
import { ManualClock } from '../helpers/clock.js';
import { captureLog } from '../helpers/log.js';

function schedule(jobs: ScheduledJob[], clock: ManualClock) {
  const fired: { job: string; trigger: Trigger; at: string }[] = [];
  const scheduler = new Scheduler(jobs, { clock, log: silentLogger, onDue: (job, trigger) => fired.push({ job, trigger, at: clock.now().toISOString() }) });
  return { scheduler, fired };
}

describe('scheduler', () => {
  it('fires at the UTC instant', () => {
    // A host time zone must not move UTC schedules; the test runs with whatever TZ the machine has.
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'nightly', cron: '0 2 * * *', catchUp: true }, { name: 'hourly', cron: '15 * * * *', catchUp: true }], clock);
    scheduler.start();
    expect(scheduler.nextRun('nightly')?.toISOString()).toBe('2026-12-04T02:00:00.000Z');
    clock.advanceTo('2026-12-05T02:30:00Z');
    expect(fired.filter((f) => f.job === 'nightly').map((f) => f.at)).toEqual(['2026-12-04T02:00:00.000Z', '2026-12-05T02:00:00.000Z']);
    expect(fired.filter((f) => f.job === 'hourly')).toHaveLength(27);
    expect(fired.filter((f) => f.job === 'hourly')[0]!.at).toBe('2026-12-04T00:15:00.000Z');
    expect(fired.every((f) => f.trigger === 'schedule')).toBe(true);
    expect(scheduler.nextRun('nightly')?.toISOString()).toBe('2026-12-06T02:00:00.000Z');
  });

  it('spring forward fires once', () => {
    // 2026-03-29 in Europe/Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    const clock = new ManualClock('2026-03-27T12:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'berlin', cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: true }], clock);
    scheduler.start();
    clock.advanceTo('2026-03-31T12:00:00Z');
    expect(fired.map((f) => f.at)).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
  });

  it('fall back fires once', () => {
    // 2026-10-25 in Europe/Berlin: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice; the job runs at the first.
    const clock = new ManualClock('2026-10-23T12:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'berlin', cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: true }], clock);
    scheduler.start();
    clock.advanceTo('2026-10-27T12:00:00Z');
    expect(fired.map((f) => f.at)).toEqual(['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z', '2026-10-27T01:30:00.000Z']);
  });

  it('missed runs catch up once', () => {
    // Down from Dec 1 03:00 to Dec 4 12:00: three nightly slots missed, one catch-up run.
    const clock = new ManualClock('2026-12-04T12:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'nightly', cron: '0 2 * * *', catchUp: true, lastRunAt: new Date('2026-12-01T02:00:00Z') }], clock);
    scheduler.start();
    expect(fired).toEqual([{ job: 'nightly', trigger: 'catch-up', at: '2026-12-04T12:00:00.000Z' }]);
    clock.advanceTo('2026-12-05T01:59:59Z');
    expect(fired).toHaveLength(1);
    clock.advanceTo('2026-12-05T02:00:00Z');
    expect(fired.map((f) => f.trigger)).toEqual(['catch-up', 'schedule']);
  });

  it('no catch-up without a missed slot', () => {
    const clock = new ManualClock('2026-12-04T12:00:00Z');
    const { scheduler, fired } = schedule(
      [
        { name: 'ran', cron: '0 2 * * *', catchUp: true, lastRunAt: new Date('2026-12-04T02:00:00Z') },
        { name: 'disabled', cron: '0 2 * * *', catchUp: false, lastRunAt: new Date('2026-12-01T02:00:00Z') },
        { name: 'first-start', cron: '0 2 * * *', catchUp: true },
      ],
      clock,
    );
    scheduler.start();
    expect(fired).toEqual([]);
  });

  it('suspended process fires once', () => {
    // A timer that fires long after several slots (a suspended VM) runs the job once, then follows the schedule.
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'hourly', cron: '0 * * * *', catchUp: true }], clock);
    scheduler.start();
    clock.advanceTo('2026-12-04T00:30:00Z');
    clock.jumpTo('2026-12-04T05:10:00Z');
    clock.advanceTo('2026-12-04T05:10:00Z');
    expect(fired.map((f) => f.at)).toEqual(['2026-12-04T05:10:00.000Z']);
    expect(scheduler.nextRun('hourly')?.toISOString()).toBe('2026-12-04T06:00:00.000Z');
  });

  it('stop cancels timers', () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { scheduler, fired } = schedule([{ name: 'hourly', cron: '0 * * * *', catchUp: true }], clock);
    scheduler.start();
    scheduler.stop();
    clock.advanceTo('2026-12-05T00:00:00Z');
    expect(fired).toEqual([]);
    expect(clock.pending).toBe(0);
  });
});

describe('job runner', () => {
  function plan(jobs: Partial<JobConfig>[]): Plan {
    return planSchema.parse({
      databases: [
        { name: 'app', url: 'postgres://app@127.0.0.1:1/app' },
        { name: 'billing', url: 'postgres://billing@127.0.0.1:1/billing' },
      ],
      repositories: [{ name: 'local', url: 'file:///nonexistent' }],
      jobs,
    });
  }

  /**
   * Job handlers are stand-ins here, because these tests are about the
   * runner's bookkeeping; the real handlers run in the serve integration test.
   */
  async function setup(jobs: Partial<JobConfig>[], clock: ManualClock, log: Logger = silentLogger) {
    const context: PlanContext = { plan: plan(jobs), storages: [], log };
    const releases: (() => void)[] = [];
    const releaseByJob = new Map<string, () => void>();
    const failures = new Set<string>();
    // Each run waits for the test to release it, or for its abort signal.
    const blocking: JobHandler = (job, env) =>
      new Promise((resolve, reject) => {
        const release = () => (failures.has(job.name) ? reject(new Error(`${job.name} broke`)) : resolve({ summary: 'done' }));
        releases.push(release);
        releaseByJob.set(job.name, release);
        env.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
    /** Lets the run in progress of `job` finish, and returns its end. */
    const finish = async (job: string) => {
      const run = runner.runningRun(job);
      if (!run) throw new Error(`${job} is not running`);
      releaseByJob.get(job)!();
      return ends.get(run.runId)!;
    };
    const handlers = { ...jobHandlers, backup: blocking, verify: blocking, prune: blocking };
    const state = new JobState(await mkdtemp(path.join(tmpdir(), 'drplan-state-')), silentLogger);
    const metrics = new ServeMetrics();
    const events: AlertEvent[] = [];
    const alerts = new AlertTracker({ emit: (e) => events.push(e), flush: async () => undefined }, () => clock.now());
    const ends = new Map<string, Promise<unknown>>();
    const runner = new JobRunner({ context, handlers, state, metrics, alerts, clock, onStarted: (run, done) => ends.set(run.runId, done) });
    return { runner, releases, failures, metrics, events, state, finish };
  }

  it('same-instant runs queue', async () => {
    // A backup and a verify of one database both due at 02:00: both run, the second after the first.
    const clock = new ManualClock('2026-12-04T01:59:00Z');
    const { runner, finish, metrics, state } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'app-verify', type: 'verify', database: 'app', cron: '0 2 * * *' },
      ],
      clock,
    );
    const scheduler = new Scheduler(
      [
        { name: 'app-backup', cron: '0 2 * * *', catchUp: true },
        { name: 'app-verify', cron: '0 2 * * *', catchUp: true },
      ],
      { clock, log: silentLogger, onDue: (job, trigger) => void runner.start(job, trigger) },
    );
    scheduler.start();

    clock.advanceTo('2026-12-04T02:00:00Z');
    expect(runner.running().map((r) => r.job)).toEqual(['app-backup']);
    expect(runner.queued()).toEqual([{ job: 'app-verify', trigger: 'schedule', dueAt: '2026-12-04T02:00:00.000Z', waitingFor: 'app-backup' }]);

    clock.advanceTo('2026-12-04T02:07:00Z');
    await finish('app-backup');
    expect(runner.running().map((r) => [r.job, r.trigger, r.startedAt])).toEqual([['app-verify', 'schedule', '2026-12-04T02:07:00.000Z']]);
    expect(runner.queued()).toEqual([]);
    await finish('app-verify');
    expect(state.lastRun('app-backup')?.result).toBe('succeeded');
    expect(state.lastRun('app-verify')?.result).toBe('succeeded');
    expect(await metrics.registry.getSingleMetricAsString('drplan_job_skipped_total')).not.toContain('job=');
    scheduler.stop();
  });

  it('long run skips its next slot', async () => {
    const clock = new ManualClock('2026-12-03T23:59:00Z');
    const { runner, finish, metrics } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '*/10 * * * *' },
        { name: 'billing-backup', type: 'backup', database: 'billing', cron: '*/10 * * * *' },
      ],
      clock,
    );
    const scheduler = new Scheduler(
      [
        { name: 'app-backup', cron: '*/10 * * * *', catchUp: true },
        { name: 'billing-backup', cron: '*/10 * * * *', catchUp: true },
      ],
      { clock, log: silentLogger, onDue: (job, trigger) => void runner.start(job, trigger) },
    );
    scheduler.start();

    // The app backup of 00:00 still runs at 00:10, so that slot is skipped; the billing backup of another database is unaffected.
    clock.advanceTo('2026-12-04T00:00:00Z');
    expect(runner.running().map((r) => r.job)).toEqual(['app-backup', 'billing-backup']);
    await finish('billing-backup');
    clock.advanceTo('2026-12-04T00:10:00Z');
    expect(runner.running().map((r) => [r.job, r.startedAt])).toEqual([
      ['app-backup', '2026-12-04T00:00:00.000Z'],
      ['billing-backup', '2026-12-04T00:10:00.000Z'],
    ]);
    expect(runner.queued()).toEqual([]);
    const skipped = await metrics.registry.getSingleMetricAsString('drplan_job_skipped_total');
    expect(skipped).toContain('drplan_job_skipped_total{job="app-backup",reason="already running"} 1');
    expect(skipped).not.toContain('job="billing-backup"');

    // Once it ends, the app backup runs again at its next slot.
    await finish('app-backup');
    await finish('billing-backup');
    clock.advanceTo('2026-12-04T00:20:00Z');
    expect(runner.running().map((r) => [r.job, r.startedAt])).toEqual([
      ['app-backup', '2026-12-04T00:20:00.000Z'],
      ['billing-backup', '2026-12-04T00:20:00.000Z'],
    ]);
    scheduler.stop();
  });

  it('one pending run per job', async () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { runner, metrics } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'app-verify', type: 'verify', database: 'app', cron: '0 5 * * *' },
      ],
      clock,
    );
    expect(runner.start('app-backup', 'api').started).toBe(true);
    expect(runner.start('app-verify', 'schedule')).toMatchObject({ started: false, queued: true });
    expect(runner.start('app-verify', 'api')).toEqual({ started: false, queued: false, reason: 'already pending', conflict: undefined });
    expect(runner.start('app-backup', 'schedule')).toMatchObject({ started: false, queued: false, reason: 'already running', conflict: { job: 'app-backup' } });
    const skipped = await metrics.registry.getSingleMetricAsString('drplan_job_skipped_total');
    expect(skipped).toContain('drplan_job_skipped_total{job="app-verify",reason="already pending"} 1');
    expect(skipped).toContain('drplan_job_skipped_total{job="app-backup",reason="already running"} 1');
    expect(runner.queued().map((r) => r.job)).toEqual(['app-verify']);
  });

  it('prune queues in due order', async () => {
    // Prune waits for the app backup; the billing backup, due after prune, waits for prune although its database is free.
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { runner, finish } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'billing-backup', type: 'backup', database: 'billing', cron: '0 2 * * *' },
        { name: 'prune', type: 'prune', cron: '0 4 * * *' },
      ],
      clock,
    );
    expect(runner.start('app-backup', 'api').started).toBe(true);
    expect(runner.start('prune', 'schedule')).toMatchObject({ started: false, queued: true, pending: { waitingFor: 'app-backup' } });
    expect(runner.start('billing-backup', 'schedule')).toMatchObject({ started: false, queued: true, pending: { waitingFor: 'prune' } });
    expect(runner.start('missing', 'api')).toEqual({ started: false, queued: false, reason: 'unknown job' });

    await finish('app-backup');
    expect(runner.running().map((r) => r.job)).toEqual(['prune']);
    expect(runner.queued().map((r) => r.job)).toEqual(['billing-backup']);
    await finish('prune');
    expect(runner.running().map((r) => r.job)).toEqual(['billing-backup']);
  });

  it('second signal counts aborted runs', async () => {
    // A second stop signal aborts the run before the timeout; shutdown still reports it as aborted.
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { runner } = await setup([{ name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' }], clock);
    const run = runner.start('app-backup', 'api');
    if (!run.started) throw new Error('the run must start');
    const stopping = runner.shutdown(60_000);
    expect(await runner.abortAll('a second stop signal was received')).toBe(1);
    expect(await stopping).toBe(1);
    expect((await run.done).run.result).toBe('aborted');
  });

  it('shutdown drops pending runs', async () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const captured = captureLog('info');
    const { runner, finish } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'app-verify', type: 'verify', database: 'app', cron: '0 5 * * *' },
      ],
      clock,
      captured.log,
    );
    expect(runner.start('app-backup', 'api').started).toBe(true);
    expect(runner.start('app-verify', 'schedule')).toMatchObject({ queued: true });
    const stopping = runner.shutdown(60_000);
    expect(runner.queued()).toEqual([]);
    expect(captured.lines.filter((l) => l.job === 'app-verify').map((l) => l.msg)).toEqual([
      'job run queued: it starts when job app-backup ends',
      'queued job run dropped: the daemon is shutting down',
    ]);
    await finish('app-backup');
    expect(await stopping).toBe(0);
    expect(runner.running()).toEqual([]);
  });

  it('failures then recovery alert', async () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { runner, releases, failures, events, state, metrics } = await setup([{ name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' }], clock);
    failures.add('app-backup');
    for (let i = 0; i < 2; i++) {
      const run = runner.start('app-backup', 'api');
      releases.shift()!();
      if (run.started) expect((await run.done).run.result).toBe('failed');
    }
    failures.clear();
    const ok = runner.start('app-backup', 'api');
    releases.shift()!();
    if (ok.started) expect((await ok.done).run.exitCode).toBe(0);
    expect(events.map((e) => [e.type, e.subject])).toEqual([
      ['job.failed', 'app-backup'],
      ['job.failed', 'app-backup'],
      ['job.recovered', 'app-backup'],
    ]);
    expect(events[0]!.summary).toBe('job app-backup failed: app-backup broke');
    expect(events[0]!.details).toEqual({ job: 'app-backup', type: 'backup', database: 'app', runId: expect.any(String), durationMs: 0, exitCode: 1 });
    expect(state.lastRun('app-backup')?.result).toBe('succeeded');
    const runs = await metrics.registry.getSingleMetricAsString('drplan_job_runs_total');
    expect(runs).toContain('drplan_job_runs_total{job="app-backup",result="failed"} 2');
    expect(runs).toContain('drplan_job_runs_total{job="app-backup",result="succeeded"} 1');
  });

  it('shutdown waits, then aborts', async () => {
    const clock = new ManualClock('2026-12-04T00:00:00Z');
    const { runner, releases } = await setup(
      [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'billing-backup', type: 'backup', database: 'billing', cron: '0 2 * * *' },
      ],
      clock,
    );
    const quick = runner.start('billing-backup', 'api');
    const slow = runner.start('app-backup', 'api');
    if (!quick.started || !slow.started) throw new Error('both runs must start');
    const stopping = runner.shutdown(60_000);
    expect(runner.start('billing-backup', 'api')).toMatchObject({ started: false, queued: false, reason: 'shutting down' });

    // The first run finishes within the timeout; the second ignores everything but its abort signal.
    releases[0]!();
    expect((await quick.done).run.result).toBe('succeeded');
    expect(runner.running().map((r) => r.job)).toEqual(['app-backup']);
    clock.advanceTo('2026-12-04T00:01:00Z');
    expect(await stopping).toBe(1);
    const slowEnd = await slow.done;
    expect(slowEnd.run.result).toBe('aborted');
    expect(slowEnd.run.exitCode).toBe(130);
  });
});
