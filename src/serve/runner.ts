/**
 * Runs jobs for `drplan serve`: at most one job per database at a time, each
 * with its own AbortSignal, recording every finished run in the state file,
 * the metrics and the alerts.
 */
import { randomUUID } from 'node:crypto';
import { jobDatabase } from '../config/jobs.js';
import type { JobConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { exitCodeOf, ExitCode } from '../errors.js';
import type { AlertTracker } from './alerts.js';
import type { JobHandler, JobOutcome, JobType } from './jobs.js';
import type { ServeMetrics } from './metrics.js';
import type { Clock, Trigger } from './scheduler.js';
import type { JobState, LastRun } from './state.js';

export interface RunRecord {
  runId: string;
  job: string;
  trigger: Trigger;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  result?: LastRun['result'];
  /** The outcome's summary line on success, the error message on failure. */
  summary?: string;
  exitCode?: number;
}

/** A finished run and, when it failed, the error it raised. */
export interface RunEnd {
  run: RunRecord;
  error?: unknown;
}

export type StartResult =
  | { started: true; run: RunRecord; done: Promise<RunEnd> }
  | { started: false; reason: 'unknown job' | 'overlap' | 'shutting down'; conflict?: RunRecord };

export interface RunnerOptions {
  context: PlanContext;
  handlers: Record<JobType, JobHandler>;
  state: JobState;
  metrics: ServeMetrics;
  alerts: AlertTracker;
  clock: Clock;
  /** Called after each finished run, for example to refresh the status. */
  onFinished?: (run: RunRecord) => void;
}

interface ActiveRun {
  record: RunRecord;
  group: string;
  controller: AbortController;
  done: Promise<RunEnd>;
}

/** Returns the overlap group of a job: its database, its file set, or `*` for prune, which touches every database. */
export function overlapGroup(context: PlanContext, job: JobConfig): string {
  if (job.type === 'prune') return '*';
  if (job.type === 'files') return `fileset:${job.fileset}`;
  return `database:${jobDatabase(context.plan, job)}`;
}

export class JobRunner {
  private readonly active = new Map<string, ActiveRun>();
  private readonly jobs: Map<string, JobConfig>;
  private accepting = true;

  constructor(private readonly options: RunnerOptions) {
    this.jobs = new Map((options.context.plan.jobs ?? []).map((job) => [job.name, job]));
    for (const job of this.jobs.values()) {
      // A failure from before a restart stays active, so the next success sends job.recovered.
      if (options.state.lastRun(job.name)?.result === 'failed') options.alerts.assume('job.failed', job.name);
    }
  }

  /** Starts a run of `name` now, unless the job is unknown, another job of its database is running, or the runner is stopping. */
  start(name: string, trigger: Trigger): StartResult {
    const job = this.jobs.get(name);
    if (!job) return { started: false, reason: 'unknown job' };
    const log = this.options.context.log.child({ component: 'serve', job: name });
    if (!this.accepting) {
      this.options.metrics.jobSkipped.inc({ job: name, reason: 'shutdown' });
      log.info({ trigger }, 'job run skipped: the daemon is shutting down');
      return { started: false, reason: 'shutting down' };
    }
    const group = overlapGroup(this.options.context, job);
    const conflict = [...this.active.values()].find((run) => run.group === group || run.group === '*' || group === '*');
    if (conflict) {
      this.options.metrics.jobSkipped.inc({ job: name, reason: 'overlap' });
      log.warn({ trigger, runningJob: conflict.record.job, runId: conflict.record.runId }, 'job run skipped: another job of the same database is still running');
      return { started: false, reason: 'overlap', conflict: conflict.record };
    }
    return this.launch(job, trigger, group);
  }

  /** Lists the runs in progress. */
  running(): RunRecord[] {
    return [...this.active.values()].map((run) => ({ ...run.record }));
  }

  /** Returns the run in progress of a job, if any. */
  runningRun(job: string): RunRecord | undefined {
    return this.running().find((run) => run.job === job);
  }

  /**
   * Stops taking new runs, waits up to `timeoutMs` for the running ones, then
   * aborts them through their signals and waits for their cleanup. Returns
   * the number of runs that had to be aborted.
   */
  async shutdown(timeoutMs: number): Promise<number> {
    this.accepting = false;
    const runs = [...this.active.values()];
    if (runs.length === 0) return 0;
    const all = Promise.allSettled(runs.map((run) => run.done));
    let timer: unknown;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = this.options.clock.setTimer(() => resolve('timeout'), timeoutMs);
    });
    const first = await Promise.race([all.then(() => 'done' as const), timedOut]);
    this.options.clock.clearTimer(timer);
    if (first === 'done') return 0;
    return this.abortAll(`shutdown timeout of ${timeoutMs} ms reached`);
  }

  /** Aborts every running job through its signal and waits until each has cleaned up; returns how many were aborted. */
  async abortAll(reason: string): Promise<number> {
    this.accepting = false;
    const remaining = [...this.active.values()];
    for (const run of remaining) {
      this.options.context.log.warn({ job: run.record.job, runId: run.record.runId }, `aborting the running job: ${reason}`);
      run.controller.abort(new Error(`drplan serve is shutting down: ${reason}`));
    }
    await Promise.allSettled(remaining.map((run) => run.done));
    return remaining.length;
  }

  private launch(job: JobConfig, trigger: Trigger, group: string): StartResult {
    const record: RunRecord = { runId: randomUUID(), job: job.name, trigger, startedAt: this.options.clock.now().toISOString() };
    const controller = new AbortController();
    const log = this.options.context.log.child({ component: 'serve', job: job.name, runId: record.runId });
    log.info({ trigger, type: job.type }, 'job started');
    this.options.metrics.jobRunning.set({ job: job.name }, 1);
    const context = { ...this.options.context, log };
    const done = this.options.handlers[job.type](job, { context, alerts: this.options.alerts, signal: controller.signal }).then(
      (outcome) => this.finish(job, record, { outcome }),
      (error: unknown) => this.finish(job, record, { error, aborted: controller.signal.aborted }),
    );
    this.active.set(record.runId, { record, group, controller, done });
    return { started: true, run: { ...record }, done };
  }

  private async finish(job: JobConfig, record: RunRecord, end: { outcome?: JobOutcome; error?: unknown; aborted?: boolean }): Promise<RunEnd> {
    const finished = this.options.clock.now();
    record.finishedAt = finished.toISOString();
    record.durationMs = finished.getTime() - Date.parse(record.startedAt);
    if (end.outcome) {
      record.result = 'succeeded';
      record.summary = end.outcome.summary;
      record.exitCode = ExitCode.ok;
    } else {
      record.result = end.aborted ? 'aborted' : 'failed';
      record.summary = errorMessage(end.error);
      record.exitCode = end.aborted ? ExitCode.interrupted : exitCodeOf(end.error);
    }
    this.report(job, record, end);
    await this.options.state.record(job.name, {
      runId: record.runId,
      trigger: record.trigger,
      startedAt: record.startedAt,
      finishedAt: record.finishedAt,
      durationMs: record.durationMs,
      result: record.result,
      error: end.outcome ? undefined : record.summary,
    });
    this.active.delete(record.runId);
    this.options.onFinished?.({ ...record });
    return { run: { ...record }, error: end.error };
  }

  /** Logs the end of a run, counts it and sends job.failed or job.recovered. */
  private report(job: JobConfig, record: RunRecord, end: { outcome?: JobOutcome; error?: unknown }): void {
    const { metrics, alerts, context } = this.options;
    const log = context.log.child({ component: 'serve', job: job.name, runId: record.runId });
    metrics.jobRuns.inc({ job: job.name, result: record.result! });
    metrics.jobDuration.set({ job: job.name }, record.durationMs! / 1000);
    metrics.jobRunning.set({ job: job.name }, 0);
    const details = { job: job.name, type: job.type, runId: record.runId, durationMs: record.durationMs!, ...end.outcome?.details };
    if (record.result === 'succeeded') {
      log.info({ durationMs: record.durationMs, ...end.outcome?.details }, `job succeeded: ${record.summary}`);
      alerts.clear('job.failed', job.name, `job ${job.name} succeeded again: ${record.summary}`, details);
    } else if (record.result === 'aborted') {
      log.warn({ durationMs: record.durationMs, err: end.error }, 'job aborted');
    } else {
      log.error({ durationMs: record.durationMs, err: end.error, exitCode: record.exitCode }, 'job failed');
      alerts.problem('job.failed', job.name, 'error', `job ${job.name} failed: ${firstLine(record.summary!)}`, { ...details, exitCode: record.exitCode! });
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
