/**
 * `drplan serve` put together: the job state, runner, status monitor,
 * scheduler and HTTP API, started in that order and stopped in reverse.
 */
import type { FastifyInstance } from 'fastify';
import type { PlanContext } from '../context.js';
import { NotFoundError, UsageError } from '../errors.js';
import type { AlertSink } from '../notify/events.js';
import { createAlertSink } from '../notify/sink.js';
import { checkRepositories } from '../repository/check.js';
import { cleanAbandoned } from '../retention/prune.js';
import { parseDuration } from '../util/duration.js';
import { AlertTracker } from './alerts.js';
import { buildApi } from './http.js';
import { jobHandlers, type JobHandler, type JobType } from './jobs.js';
import { ServeMetrics } from './metrics.js';
import { StatusMonitor } from './monitor.js';
import { JobRunner, type RunEnd } from './runner.js';
import { Scheduler, systemClock, type Clock } from './scheduler.js';
import { JobState, stateDirectory } from './state.js';

export interface ServiceOptions {
  clock?: Clock;
  sink?: AlertSink;
  handlers?: Record<JobType, JobHandler>;
}

interface Services {
  clock: Clock;
  sink: AlertSink;
  state: JobState;
  metrics: ServeMetrics;
  alerts: AlertTracker;
  runner: JobRunner;
  monitor: StatusMonitor;
}

async function createServices(context: PlanContext, options: ServiceOptions, refreshAfterJobs: boolean): Promise<Services> {
  const clock = options.clock ?? systemClock;
  const sink = options.sink ?? createAlertSink(context.plan, context.log);
  const server = context.plan.server;
  const state = new JobState(stateDirectory(server), context.log.child({ component: 'serve' }));
  await state.load();
  const metrics = new ServeMetrics();
  const alerts = new AlertTracker(sink, () => clock.now());
  const monitor = new StatusMonitor(context, metrics, alerts, clock, parseDuration(server.refreshInterval));
  const runner = new JobRunner({
    context,
    handlers: options.handlers ?? jobHandlers,
    state,
    metrics,
    alerts,
    clock,
    onFinished: () => refreshAfterJobs && void monitor.refresh().catch((err: unknown) => context.log.error({ component: 'serve', err }, 'status refresh after a job failed')),
  });
  return { clock, sink, state, metrics, alerts, runner, monitor };
}

/** Splits HOST:PORT (with [v6] brackets) into its parts. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new UsageError(`invalid listen address ${JSON.stringify(value)}; expected HOST:PORT`, { code: 'usage.listen', hint: 'For example --listen 127.0.0.1:9187 or --listen [::1]:9187.' });
  }
  return { host: match[1] ?? match[2]!, port };
}

export interface Daemon {
  app: FastifyInstance;
  /** Stops taking new work, waits up to server.shutdownTimeout for running jobs, aborts the rest, and closes the API. */
  stop(): Promise<void>;
  /** Aborts running jobs at once, for a second signal. */
  abortNow(): Promise<void>;
}

/** Starts the daemon and returns once the API listens. */
export async function startDaemon(context: PlanContext, listen: string, options: ServiceOptions = {}): Promise<Daemon> {
  const address = parseListen(listen);
  const services = await createServices(context, options, true);
  const { runner, monitor, state, clock, sink } = services;
  const log = context.log.child({ component: 'serve' });

  const scheduler = new Scheduler(
    (context.plan.jobs ?? []).map((job) => {
      const last = state.lastRun(job.name);
      return { name: job.name, cron: job.cron, timezone: job.timezone, catchUp: job.catchUp ?? context.plan.server.catchUp, lastRunAt: last ? new Date(last.startedAt) : undefined };
    }),
    { clock, log, onDue: (job, trigger) => void runner.start(job, trigger) },
  );
  // Leftovers go before the API and the first job, so no run meets the cleanup's lock.
  await cleanLeftovers(context);
  const app = buildApi({ context, runner, scheduler, monitor, metrics: services.metrics, state, token: context.plan.server.token });
  await app.listen({ host: address.host, port: address.port });
  log.info({ listen: `${address.host}:${(app.server.address() as { port: number }).port}`, jobs: context.plan.jobs?.length ?? 0 }, 'drplan serve started');

  monitor.start();
  void reportProblems(context);
  scheduler.start();

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    const timeoutMs = parseDuration(context.plan.server.shutdownTimeout);
    log.info({ running: runner.running().length, queued: runner.queued().length, timeoutMs }, 'shutting down: no new jobs; waiting for running jobs');
    scheduler.stop();
    const aborted = await runner.shutdown(timeoutMs);
    monitor.stop();
    await app.close();
    await sink.flush(5000);
    log.info({ aborted }, 'drplan serve stopped');
  };
  return {
    app,
    stop: () => (stopping ??= stop()),
    abortNow: async () => {
      await runner.abortAll('a second stop signal was received');
    },
  };
}

/**
 * Removes what interrupted runs left in the repositories, for every database
 * and file set that no live run holds. A daemon killed without cleanup
 * (SIGKILL, power loss) leaves partial objects; its lock is stale by now, so
 * nothing can still commit them. Leftovers under a live lock are left for
 * prune and its grace period.
 */
async function cleanLeftovers(context: PlanContext): Promise<void> {
  const log = context.log.child({ component: 'serve' });
  try {
    for (const result of await cleanAbandoned(context)) {
      for (const key of result.removed) log.warn({ repository: result.repository, key }, `removed at start, left by an interrupted run: ${key}`);
      if (result.busy.length > 0) log.warn({ repository: result.repository, busy: result.busy }, 'leftovers kept at start: a running backup has their lock; prune removes them after retention.partialGrace');
    }
  } catch (err) {
    log.error({ err }, 'cleanup of interrupted runs at start failed');
  }
}

/** Logs every problem `drplan repo check` would report, in the background of the start. */
async function reportProblems(context: PlanContext): Promise<void> {
  const log = context.log.child({ component: 'serve' });
  try {
    for (const problem of await checkRepositories(context)) {
      log.warn({ repository: problem.repository, key: problem.key, kind: problem.kind }, `repository check at start: ${problem.kind}: ${problem.detail}`);
    }
  } catch (err) {
    log.error({ err }, 'repository check at start failed');
  }
}

/** Runs one job in the foreground (`drplan serve --once`), recording it in the state file like a scheduled run. */
export async function runOnce(context: PlanContext, jobName: string, signal: AbortSignal, options: ServiceOptions = {}): Promise<RunEnd> {
  const services = await createServices(context, options, false);
  const start = services.runner.start(jobName, 'once');
  if (!start.started) {
    const known = (context.plan.jobs ?? []).map((j) => j.name);
    throw new NotFoundError(`job ${JSON.stringify(jobName)} is not in the plan`, {
      code: 'plan.job',
      object: jobName,
      hint: known.length > 0 ? `Known jobs: ${known.join(', ')}.` : 'The plan defines no jobs; add them under jobs:.',
    });
  }
  const onAbort = () => void services.runner.abortAll('interrupted');
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await start.done;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await services.sink.flush(5000);
  }
}
