/**
 * Runs jobs for `drplan serve`: at most one job per database at a time, each
 * with its own AbortSignal, recording every finished run in the state file,
 * the metrics and the alerts. A run that comes due while another job of its
 * database runs waits in a queue (at most one pending run per job) and
 * starts when that job ends, in the order the runs came due.
 */
import { randomUUID } from 'node:crypto';
import { jobDatabase } from '../config/jobs.js';
import type { JobConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { exitCodeOf, ExitCode } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { AlertTracker } from './alerts.js';
import type { JobHandler, JobOutcome, JobType } from './jobs.js';
import type { ServeMetrics } from './metrics.js';
import { errorMessage, firstLine, overlapGroup, runResult, type PendingRun, type RunEnd, type RunRecord, type RunResult, type SkipReason, type StartResult } from './runs.js';
import type { Clock, Trigger } from './scheduler.js';
import type { JobState } from './state.js';

export { overlapGroup, type PendingRun, type RunEnd, type RunRecord, type RunResult, type SkipReason, type StartResult } from './runs.js';

export interface RunnerOptions {
  context: PlanContext;
  handlers: Record<JobType, JobHandler>;
  state: JobState;
  metrics: ServeMetrics;
  alerts: AlertTracker;
  clock: Clock;
  /** Called when a run starts, directly or from the queue, with the promise of its end. */
  onStarted?: (run: RunRecord, done: Promise<RunEnd>) => void;
  /** Called after each finished run, for example to refresh the status. */
  onFinished?: (run: RunRecord) => void;
}

interface ActiveRun {
  record: RunRecord;
  group: string;
  controller: AbortController;
  done: Promise<RunEnd>;
}

export class JobRunner {
  private readonly active = new Map<string, ActiveRun>();
  /** Queued runs in the order they came due; at most one per job. */
  private pending: PendingRun[] = [];
  private readonly jobs: Map<string, JobConfig>;
  private accepting = true;
  /** Runs aborted through their signals since the runner stopped taking new runs. */
  private abortedRuns = 0;

  constructor(private readonly options: RunnerOptions) {
    this.jobs = new Map((options.context.plan.jobs ?? []).map((job) => [job.name, job]));
    for (const job of this.jobs.values()) {
      // A failure alerted by an earlier process stays active, so its repeats stay suppressed and the next success sends job.recovered.
      const alertedAt = options.state.failureAlertedAt(job.name);
      if (alertedAt !== undefined) options.alerts.assume('job.failed', job.name, 'error', alertedAt);
    }
  }

  /**
   * Starts a run of `name` now, or queues it while another job of its
   * database (or, for prune, any job) runs. A run is skipped when the same
   * job is already running or pending, when the job is unknown, or when the
   * runner is stopping.
   */
  start(name: string, trigger: Trigger): StartResult {
    const job = this.jobs.get(name);
    if (!job) return { started: false, queued: false, reason: 'unknown job' };
    if (!this.accepting) return this.skip(name, trigger, 'shutting down', 'job run skipped: the daemon is shutting down');
    const running = this.runningRun(name);
    if (running) return this.skip(name, trigger, 'already running', 'job run skipped: the previous run of this job is still running', running);
    if (this.pending.some((run) => run.job === name)) return this.skip(name, trigger, 'already pending', 'job run skipped: a run of this job is already waiting to start');

    const group = overlapGroup(this.options.context, job);
    const blocker = this.blockerOf(group, this.pending.length);
    if (blocker === undefined) return this.launch(job, trigger, group);
    const pending: PendingRun = { job: name, trigger, dueAt: this.options.clock.now().toISOString(), waitingFor: blocker };
    this.pending.push(pending);
    this.options.context.log.child({ component: 'serve', job: name }).info({ trigger, waitingFor: blocker }, `job run queued: it starts when job ${blocker} ends`);
    return { started: false, queued: true, pending: { ...pending } };
  }

  /** Lists the runs waiting to start, in the order they came due. */
  queued(): PendingRun[] {
    return this.pending.map((run) => ({ ...run }));
  }

  /** Returns the pending run of a job, if any. */
  pendingRun(job: string): PendingRun | undefined {
    return this.queued().find((run) => run.job === job);
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
   * the number of runs that were aborted, including those that abortAll
   * aborted meanwhile (after a second stop signal).
   */
  async shutdown(timeoutMs: number): Promise<number> {
    this.accepting = false;
    this.dropPending('the daemon is shutting down');
    const runs = [...this.active.values()];
    if (runs.length === 0) return this.abortedRuns;
    const all = Promise.allSettled(runs.map((run) => run.done));
    let timer: unknown;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = this.options.clock.setTimer(() => resolve('timeout'), timeoutMs);
    });
    const first = await Promise.race([all.then(() => 'done' as const), timedOut]);
    this.options.clock.clearTimer(timer);
    if (first === 'timeout') await this.abortAll(`shutdown timeout of ${timeoutMs} ms reached`);
    return this.abortedRuns;
  }

  /** Aborts every running job through its signal and waits until each has cleaned up; returns how many were aborted. */
  async abortAll(reason: string): Promise<number> {
    this.accepting = false;
    this.dropPending(reason);
    const remaining = [...this.active.values()];
    this.abortedRuns += remaining.length;
    for (const run of remaining) {
      this.options.context.log.warn({ job: run.record.job, runId: run.record.runId }, `aborting the running job: ${reason}`);
      run.controller.abort(new Error(`drplan serve is shutting down: ${reason}`));
    }
    await Promise.allSettled(remaining.map((run) => run.done));
    return remaining.length;
  }

  private skip(job: string, trigger: Trigger, reason: SkipReason, message: string, conflict?: RunRecord): StartResult {
    this.options.metrics.jobSkipped.inc({ job, reason });
    this.options.context.log.child({ component: 'serve', job }).warn({ trigger, reason, runId: conflict?.runId }, message);
    return { started: false, queued: false, reason, conflict };
  }

  /**
   * Returns the job that keeps a run of `group` from starting: a running job
   * of the same group, or one of the first `pendingCount` queued runs of the
   * same group, which came due earlier and goes first. Prune (`*`) conflicts
   * with every group.
   */
  private blockerOf(group: string, pendingCount: number): string | undefined {
    const conflicts = (other: string) => other === group || other === '*' || group === '*';
    const running = [...this.active.values()].find((run) => conflicts(run.group));
    if (running) return running.record.job;
    return this.pending.slice(0, pendingCount).find((run) => conflicts(overlapGroup(this.options.context, this.jobs.get(run.job)!)))?.job;
  }

  /** Starts the queued runs that no running job or earlier queued run blocks, in the order they came due. */
  private startPending(): void {
    let index = 0;
    while (this.accepting && index < this.pending.length) {
      const run = this.pending[index]!;
      const job = this.jobs.get(run.job)!;
      const group = overlapGroup(this.options.context, job);
      if (this.blockerOf(group, index) !== undefined) {
        index += 1;
        continue;
      }
      this.pending.splice(index, 1);
      this.options.context.log.child({ component: 'serve', job: run.job }).info({ trigger: run.trigger, dueAt: run.dueAt }, 'queued job run starting');
      this.launch(job, run.trigger, group);
    }
  }

  private dropPending(reason: string): void {
    for (const run of this.pending) {
      this.options.context.log.child({ component: 'serve', job: run.job }).warn({ trigger: run.trigger, dueAt: run.dueAt }, `queued job run dropped: ${reason}`);
    }
    this.pending = [];
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
    this.options.onStarted?.({ ...record }, done);
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
      record.result = runResult(end.error, end.aborted === true);
      record.summary = errorMessage(end.error);
      record.exitCode = end.aborted ? ExitCode.interrupted : exitCodeOf(end.error);
    }

    const failureAlertedAt = this.failureAlertedAt(job.name, record.result, finished);
    this.report(job, record, end);

    // A skipped run leaves the previous result in place, so a failure alerted before it still gets its recovery.
    if (record.result !== 'skipped') {
      await this.options.state.record(job.name, {
        runId: record.runId,
        trigger: record.trigger,
        startedAt: record.startedAt,
        finishedAt: record.finishedAt,
        durationMs: record.durationMs,
        result: record.result,
        error: end.outcome ? undefined : record.summary,
        failureAlertedAt: failureAlertedAt?.toISOString(),
      });
    }

    this.active.delete(record.runId);
    this.startPending();
    this.options.onFinished?.({ ...record });
    return { run: { ...record }, error: end.error };
  }

  /**
   * Returns when job.failed was last sent for the job after a run with
   * `result` finished. A success clears it and an abort leaves it unchanged.
   * After a failure it keeps the earlier time while notifications.suppressFor
   * still suppresses the repeat, and becomes `finished` otherwise.
   */
  private failureAlertedAt(job: string, result: RunResult, finished: Date): Date | undefined {
    const previous = this.options.state.failureAlertedAt(job);
    if (result !== 'failed') return result === 'succeeded' ? undefined : previous;
    const suppressForMs = parseDuration(this.options.context.plan.notifications?.suppressFor ?? '1h');
    // NOTE: an alert that every retry failed to deliver still counts as sent here, so its repeat waits for the window to pass.
    if (previous !== undefined && finished.getTime() - previous.getTime() < suppressForMs) return previous;
    return finished;
  }

  /** Returns the alert details that name what a job works on: its database or file set; nothing for prune. */
  private targetOf(job: JobConfig): { database: string } | { fileset: string } | Record<string, never> {
    if (job.type === 'files') return { fileset: job.fileset! };
    const database = jobDatabase(this.options.context.plan, job);
    return database === undefined ? {} : { database };
  }

  /** Logs the end of a run, counts it and sends job.failed or job.recovered. */
  private report(job: JobConfig, record: RunRecord, end: { outcome?: JobOutcome; error?: unknown }): void {
    const { metrics, alerts, context } = this.options;
    const log = context.log.child({ component: 'serve', job: job.name, runId: record.runId });
    metrics.jobRunning.set({ job: job.name }, 0);
    if (record.result === 'skipped') {
      metrics.jobSkipped.inc({ job: job.name, reason: 'locked' });
      log.warn({ durationMs: record.durationMs, err: end.error, exitCode: record.exitCode }, 'job run skipped: another run has the lock');
      return;
    }
    metrics.jobRuns.inc({ job: job.name, result: record.result! });
    metrics.jobDuration.set({ job: job.name }, record.durationMs! / 1000);
    const details = { job: job.name, type: job.type, ...this.targetOf(job), runId: record.runId, durationMs: record.durationMs!, ...end.outcome?.details };
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
