/**
 * The records of job runs in `drplan serve`: a run in progress or finished,
 * a queued run, and the result of a run request. Also the rules that classify
 * a run's end and group jobs that must not run at the same time.
 */
import { jobDatabase } from '../config/jobs.js';
import type { JobConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { LockedError } from '../errors.js';
import type { Trigger } from './scheduler.js';
import type { LastRun } from './state.js';

export interface RunRecord {
  runId: string;
  job: string;
  trigger: Trigger;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  result?: RunResult;
  /** The outcome's summary line on success, the error message on failure. */
  summary?: string;
  exitCode?: number;
}

/** The result of a finished run; a skipped run (see runResult) is not recorded in the state file. */
export type RunResult = LastRun['result'] | 'skipped';

/** A finished run and, when it failed, the error it raised. */
export interface RunEnd {
  run: RunRecord;
  error?: unknown;
}

/** A run that came due while another job of its database was running, waiting for it to end. */
export interface PendingRun {
  job: string;
  trigger: Trigger;
  dueAt: string;
  /** The job whose run it waits for when it was queued. */
  waitingFor: string;
}

/** The reason a run was neither started nor queued. */
export type SkipReason = 'unknown job' | 'already running' | 'already pending' | 'shutting down';

export type StartResult =
  | { started: true; run: RunRecord; done: Promise<RunEnd> }
  | { started: false; queued: true; pending: PendingRun }
  | { started: false; queued: false; reason: SkipReason; conflict?: RunRecord };

/** Returns the overlap group of a job: its database, its file set, or `*` for prune, which touches every database. */
export function overlapGroup(context: PlanContext, job: JobConfig): string {
  if (job.type === 'prune') return '*';
  if (job.type === 'files') return `fileset:${job.fileset}`;
  return `database:${jobDatabase(context.plan, job)}`;
}

/**
 * Classifies a run that raised `error`. A run refused at its start because
 * another run (another drplan process, or a backup started by hand) holds
 * the lock of its database or file set is skipped, not failed, because that
 * run is doing the work. A lock lost in the middle of a run is a failure.
 */
export function runResult(error: unknown, aborted: boolean): 'aborted' | 'failed' | 'skipped' {
  if (aborted) return 'aborted';
  return error instanceof LockedError && error.code === 'lock.busy' ? 'skipped' : 'failed';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
