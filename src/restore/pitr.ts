/**
 * Point-in-time restore into a new data directory: a physical base backup
 * plus the archived WAL replayed up to a target.
 *
 * Everything that can be checked is checked before the first byte is
 * written: the data directory is empty, the target lies inside the
 * recoverable window, and the archived WAL from the base backup on has no
 * gap. Only then is the backup extracted and recovery configured. With
 * `start`, the server is started and followed until it has promoted.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { extractPhysicalBackup } from '../backup/physical-restore.js';
import type { DatabaseConfig } from '../config/schema.js';
import type { PlanContext } from '../context.js';
import { AbortedError, DrplanError, IntegrityError, UsageError, type DrplanErrorOptions } from '../errors.js';
import { findPostgresBinDir, freePort, serverOwner } from '../postgres/cluster.js';
import { connectionTarget, type ConnectionTarget } from '../postgres/connection.js';
import {
  assertPortFree,
  pgCtlCommand,
  prepareLogDir,
  startRecoveryServer,
  stopRecoveryServer,
  waitForRecoveryEnd,
  type RecoveryPoint,
  type RecoveryServer,
} from '../postgres/recovery-server.js';
import { formatCommand } from '../util/shell.js';
import { parseLsn, parseSegmentName, segnoOfLsn } from '../wal/segment.js';
import { segmentOnPath, type TimelineRequest } from '../wal/continuity.js';
import { assertServerCanReach } from './data-dir-access.js';
import { planPitr, type PitrPlan, type RecoveryWindow } from './pitr-plan.js';
import { describeTarget, formatLsn, formatTargetTime, type RecoveryTarget } from './pitr-target.js';
import { restoreCommandFor, writeRecoveryConfig } from './recovery-config.js';

/** Log file of a server that drplan starts, relative to the data directory. */
const LOG_FILE = path.join('log', 'drplan-recovery.log');

export interface PitrRequest {
  database: DatabaseConfig;
  target: RecoveryTarget;
  /** The timeline to recover along; `latest` is the newest one reachable from the base backup. */
  timeline: TimelineRequest;
  dataDir: string;
  /** The plan file, for the restore_command that calls drplan back. */
  planPath: string;
  port?: number;
  start: boolean;
  /** False writes archive_mode = off, so the restored server never archives. */
  archive: boolean;
  /** How long `start` waits for recovery to end. */
  timeoutMs: number;
  signal: AbortSignal;
}

export interface PitrResult {
  backup: string;
  repository: string;
  dataDir: string;
  target: TargetReport;
  window: RecoveryWindow;
  /** The timeline written as recovery_target_timeline. */
  timeline: number;
  /** The archived WAL checked for gaps: from the backup's first segment to this segment. */
  walCheckedUntil: string;
  restoreCommand: string;
  /** The port written into the recovery settings: --port, else a free one. */
  port: number;
  /** The command that starts the server (when drplan did not) and the one that stops it. */
  startCommand?: string;
  stopCommand: string;
  logFile: string;
  /** The point recovery ended at; only when drplan started the server. */
  reached?: RecoveryPoint;
  rejectedCopies: string[];
  durationMs: number;
}

/** The target as reported: its kind, the value written for PostgreSQL, and how a local time was read. */
export interface TargetReport {
  kind: RecoveryTarget['kind'];
  value?: string;
  inclusive?: boolean;
  /** For a time typed without offset: the time zone it was read in. */
  localZone?: string;
  description: string;
}

/**
 * Checks everything that needs no writing: the data directory and, with
 * `start`, the database URL's variables (drplan connects with them to follow
 * recovery). Returns the plan of the restore.
 */
export async function planPointInTimeRestore(context: PlanContext, request: PitrRequest): Promise<PitrPlan> {
  await assertEmptyDataDir(request.dataDir);
  await assertServerCanReach(request.dataDir, await serverOwner(request.signal));
  if (request.start) connectionTarget(request.database.url);
  if (request.port !== undefined && request.start) await assertPortFree(request.port);
  return planPitr(context, request.database, request.target, request.timeline);
}

/** Extracts the base backup, writes the recovery settings and, with `start`, recovers. */
export async function runPointInTimeRestore(context: PlanContext, request: PitrRequest, plan: PitrPlan): Promise<PitrResult> {
  const started = Date.now();
  const dataDir = path.resolve(request.dataDir);
  const log = context.log.child({ component: 'pitr', database: request.database.name, backupId: plan.entry.id });
  log.info({ target: describeTarget(request.target), dataDir }, 'point-in-time restore started');

  const extracted = await extractPhysicalBackup(context, plan.entry, dataDir, request.signal);
  const owner = await serverOwner(request.signal);
  const server: RecoveryServer = { binDir: await findPostgresBinDir(plan.meta.server.major), dataDir, logFile: path.join(dataDir, LOG_FILE), owner };
  // The backup's own port is most likely the live primary's, so a server started there would fail beside it.
  const port = request.port ?? (await freePort());
  const restoreCommand = restoreCommandFor(request.planPath, request.database.name);
  await writeRecoveryConfig(dataDir, { restoreCommand, target: request.target, timeline: plan.timeline, port, socketDir: dataDir, archive: request.archive }, owner);
  await prepareLogDir(server);
  log.info({ dataDir, port }, 'recovery settings written');

  let reached: RecoveryPoint | undefined;
  if (request.start) {
    const startedAt = await startRecoveryServer(server);
    try {
      reached = await waitForRecoveryEnd(server, localConnection(request.database, port), { startedAt, timeoutMs: request.timeoutMs, log, signal: request.signal });
    } catch (error) {
      // An interrupt means the user no longer wants the server. A timeout leaves it recovering, and its message states that.
      if (error instanceof AbortedError) await stopRecoveryServer(server).catch((stopError: unknown) => log.error({ err: stopError }, 'stopping the restored server failed'));
      throw withDataDirNote(error, dataDir);
    }
    log.info({ ...reached, durationMs: Date.now() - started }, 'recovery ended and the server was promoted');
    try {
      assertReachedArchiveEnd(plan, reached, server.logFile);
    } catch (error) {
      throw withDataDirNote(error, dataDir);
    }
  }
  return {
    backup: plan.entry.id,
    repository: extracted.repository,
    dataDir,
    target: reportTarget(request.target),
    window: plan.window,
    timeline: plan.timeline,
    walCheckedUntil: plan.chain.until,
    restoreCommand,
    port,
    startCommand: request.start ? undefined : formatCommand(pgCtlCommand(server, ['-l', server.logFile, 'start'])),
    stopCommand: formatCommand(pgCtlCommand(server, ['-m', 'fast', 'stop'])),
    logFile: server.logFile,
    reached,
    rejectedCopies: extracted.rejected,
    durationMs: Date.now() - started,
  };
}

/**
 * Rejects a recovery to `latest` that ended before the newest archived
 * segment of the timeline path the planner checked. PostgreSQL ends recovery
 * and promotes when restore_command fails in an ordinary way, as if the
 * archive ended there, so a server that stopped early looks like a success.
 */
export function assertReachedArchiveEnd(plan: PitrPlan, reached: RecoveryPoint, logFile: string): void {
  if (plan.target.kind !== 'latest') return;
  const size = plan.meta.wal.walSegmentSize;
  const reachedSegno = segnoOfLsn(parseLsn(reached.lastReplayedLsn), size);
  const newestSegno = parseSegmentName(plan.chain.until, size)!.segno;
  if (reachedSegno >= newestSegno) return;
  const reachedSegment = segmentOnPath(plan.inventory, plan.timeline, reachedSegno);
  throw new IntegrityError(
    `recovery to the latest archived WAL stopped early: the last replayed LSN ${reached.lastReplayedLsn} lies in segment ${reachedSegment}, but the archive holds WAL up to ${plan.chain.until}; the server was promoted without the rest`,
    {
      code: 'pitr.stopped_early',
      object: reachedSegment,
      hint: `The server log ${logFile} names why the next segment could not be restored (restore_command output). Do not use this copy: stop it, empty the data directory and restore again once the archive is readable.`,
    },
  );
}

/**
 * Adds to a failure after the extraction that the data directory was left as
 * it is: a retry needs it empty, and it may hold a running server to stop.
 */
function withDataDirNote(error: unknown, dataDir: string): unknown {
  if (!(error instanceof DrplanError) || error instanceof AbortedError) return error;
  const ErrorClass = error.constructor as new (message: string, options: DrplanErrorOptions) => DrplanError;
  const note = `the data directory ${dataDir} was left as it is; stop its server if it still runs, then empty or replace the directory before a retry`;
  return new ErrorClass(`${error.message}\n${note}`, { code: error.code, operation: error.operation, object: error.object, hint: error.hint, cause: error.cause ?? error });
}

/** Rejects a data directory that exists and is not an empty directory; a missing one is created later. */
export async function assertEmptyDataDir(dir: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (info === undefined) return;
  const hint = 'Choose a new or empty directory; drplan never restores over existing files.';
  if (!info.isDirectory()) throw new UsageError(`--data-dir ${dir} exists and is not a directory`, { code: 'pitr.data_dir', object: dir, hint });
  const entries = await readdir(dir);
  if (entries.length > 0) {
    throw new UsageError(`--data-dir ${dir} is not empty (${entries.length} entries, such as ${entries.sort()[0]})`, { code: 'pitr.data_dir', object: dir, hint });
  }
}

/** Returns the plan database's URL pointed at a server on 127.0.0.1:`port`: same user, password and database name. */
export function localConnection(database: DatabaseConfig, port: number): ConnectionTarget {
  const url = new URL(database.url);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  for (const name of ['host', 'hostaddr', 'port']) url.searchParams.delete(name);
  return connectionTarget(url.toString());
}

export function reportTarget(target: RecoveryTarget): TargetReport {
  const description = describeTarget(target);
  switch (target.kind) {
    case 'time':
      return { kind: 'time', value: formatTargetTime(target.time), inclusive: target.inclusive, localZone: target.time.localZone, description };
    case 'lsn':
      return { kind: 'lsn', value: formatLsn(target.lsn), inclusive: target.inclusive, description };
    case 'xid':
      return { kind: 'xid', value: String(target.xid), inclusive: target.inclusive, description };
    case 'latest':
      return { kind: 'latest', description };
  }
}
