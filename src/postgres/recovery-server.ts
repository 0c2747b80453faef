/**
 * Starting a server on a restored data directory and following its recovery.
 * pg_ctl starts it in the background (as `postgres` when drplan runs as
 * root). drplan then polls until recovery has ended and the server is
 * promoted, until the server has stopped, or until the time limit has passed.
 */
import { chown, mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { AbortedError, ToolError, UsageError } from '../errors.js';
import type { Logger } from '../logging.js';
import { runProcess } from '../util/process.js';
import { formatCommand } from '../util/shell.js';
import type { ServerOwner } from './cluster.js';
import { connect, withClient, type ConnectionTarget } from './connection.js';

const POLL_MS = 500;
/** How many polls a failed query waits for the postmaster to exit before it counts as a connection failure. */
const STOP_POLLS = 10;

/** How long a server may take to write postmaster.pid before it counts as failed to start. */
const PID_FILE_GRACE_MS = 15_000;
const LOG_TAIL_LINES = 20;
/** Tolerance when comparing the server's start time with drplan's clock (same machine, so only rounding). */
const CLOCK_SLACK_MS = 2000;
/**
 * Errors of a server that is not ready yet: nothing listening, SQLSTATE 57P03
 * (starting up, or not yet accepting connections) and 57P01 (a shutdown
 * during startup, such as the restart after a crash).
 */
const STARTING_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', '57P03', '57P01']);

/** A data directory and the programs and user that run its server. */
export interface RecoveryServer {
  binDir: string;
  dataDir: string;
  logFile: string;
  owner: ServerOwner;
}

/** The end point of a finished recovery. */
export interface RecoveryPoint {
  /** Commit time of the last replayed transaction, in UTC; null when recovery replayed none. */
  lastTransactionTime: string | null;
  /** The LSN of the last replayed WAL record. */
  lastReplayedLsn: string;
  /** The timeline the promoted server writes on. */
  timeline: number;
  /** The server's own log line about where it stopped, when it logged one. */
  stopMessage?: string;
}

/** Creates the directory of the server log, writable by the server's user. */
export async function prepareLogDir(server: RecoveryServer): Promise<void> {
  const dir = path.dirname(server.logFile);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (server.owner.uid !== undefined && server.owner.gid !== undefined) await chown(dir, server.owner.uid, server.owner.gid);
}

/** Rejects a port that another program listens on, before a server is started there. */
export async function assertPortFree(port: number): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
  if (free) return;
  throw new UsageError(`port ${port} on 127.0.0.1 is already in use`, {
    code: 'pitr.port_taken',
    object: String(port),
    hint: 'Choose a free port with --port, or leave --port out and drplan picks one.',
  });
}

/**
 * Starts the server in the background and returns the start time that
 * `waitForRecoveryEnd` takes. It returns once postmaster.pid exists (or the
 * server has failed, or the grace period is over), so that a caller stopping
 * the server afterwards (after an interrupt, for example) finds it. The abort
 * signal is not passed on for the same reason: a pg_ctl stopped half-way could
 * leave a server running that drplan does not stop.
 */
export async function startRecoveryServer(server: RecoveryServer): Promise<number> {
  const startedAt = Date.now();
  const args = ['-D', server.dataDir, '-l', server.logFile, '-W', 'start'];
  await runProcess(path.join(server.binDir, 'pg_ctl'), args, { operation: 'start the restored server', timeoutMs: 60_000, ...server.owner });
  while (Date.now() - startedAt < PID_FILE_GRACE_MS) {
    if ((await readPostmasterFile(server.dataDir)) !== undefined) break;
    if (/\b(FATAL|PANIC):/.test(await readFile(server.logFile, 'utf8').catch(() => ''))) break;
    await sleep(100);
  }
  return startedAt;
}

/** Stops the server (fast shutdown, else immediate) when it is running. */
export async function stopRecoveryServer(server: RecoveryServer): Promise<void> {
  if ((await readPostmasterFile(server.dataDir)) === undefined) return;
  const stop = (mode: string) =>
    runProcess(path.join(server.binDir, 'pg_ctl'), ['-D', server.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], {
      operation: 'stop the restored server',
      ...server.owner,
    });
  await stop('fast').catch(() => stop('immediate'));
}

/**
 * Follows the server until recovery has ended, then returns the point
 * reached. The status line of postmaster.pid ("starting", "standby",
 * "ready") shows the progress without connecting, so the server log is not
 * filled with refused connections. Once it reads "ready", a connection
 * confirms that this server has left recovery.
 *
 * Rejects with the tail of the server log when the server stops, which a
 * target beyond the archived WAL causes, for example. Rejects on timeout too.
 * In both cases the server is left as it is.
 */
export async function waitForRecoveryEnd(
  server: RecoveryServer,
  connection: ConnectionTarget,
  options: { startedAt: number; timeoutMs: number; log: Logger; signal?: AbortSignal },
): Promise<RecoveryPoint> {
  const started = options.startedAt;
  let seenPid = false;
  let lastStatus: string | undefined;
  for (;;) {
    if (options.signal?.aborted) throw new AbortedError('interrupted while the restored server was recovering', { code: 'pitr.aborted', object: server.dataDir });
    const postmaster = await readPostmasterFile(server.dataDir);
    if (postmaster?.status !== lastStatus) options.log.info({ status: postmaster?.status ?? 'no postmaster.pid' }, 'restored server status');
    lastStatus = postmaster?.status;
    seenPid ||= postmaster !== undefined;

    if (postmaster?.status === 'ready' && isAlive(postmaster.pid)) {
      const recovering = await isRecovering(connection, started).catch((error: unknown) => stoppedMeanwhile(postmaster.pid, error, options.signal));
      if (recovering === false) return readRecoveryPoint(server, connection);
    }
    const stopped = postmaster === undefined ? seenPid || Date.now() - started > PID_FILE_GRACE_MS : !isAlive(postmaster.pid);
    if (stopped) {
      throw new ToolError(`the restored server stopped before recovery ended; last lines of ${server.logFile}:\n${await logTail(server.logFile)}`, {
        code: 'pitr.server_stopped',
        operation: 'point-in-time restore',
        object: server.dataDir,
        hint: 'A target beyond the archived WAL, a missing WAL segment or a failing restore_command stops recovery; the log above names the cause.',
      });
    }
    if (Date.now() - started > options.timeoutMs) {
      throw new ToolError(`recovery did not end within ${Math.round(options.timeoutMs / 1000)} s (server status: ${postmaster?.status ?? 'unknown'}); the server is still running`, {
        code: 'pitr.timeout',
        operation: 'point-in-time restore',
        object: server.dataDir,
        hint: `Follow the progress in ${server.logFile}, or give more time with --timeout. Stop the server with: ${formatCommand(pgCtlCommand(server, ['-m', 'fast', 'stop']))}`,
      });
    }
    await sleep(POLL_MS, options.signal);
  }
}

/**
 * Returns undefined when the postmaster exits within a few polls of a failed
 * query, so that a server stopping at the end of a failed recovery is
 * reported as stopped rather than as a connection failure. Rethrows otherwise.
 */
async function stoppedMeanwhile(pid: number, error: unknown, signal?: AbortSignal): Promise<undefined> {
  for (let poll = 0; poll < STOP_POLLS; poll += 1) {
    if (!isAlive(pid)) return undefined;
    await sleep(POLL_MS, signal);
  }
  if (!isAlive(pid)) return undefined;
  throw error;
}

/** Asks the server whether it is still in recovery; a refused connection counts as still recovering. */
async function isRecovering(connection: ConnectionTarget, startedAt: number): Promise<boolean> {
  let client;
  try {
    client = await connect(connection);
  } catch (error) {
    const code = ((error as Error).cause as { code?: string } | undefined)?.code;
    if (code !== undefined && STARTING_CODES.has(code)) return true;
    throw error;
  }
  try {
    const { rows } = await client.query<{ recovering: boolean; started: Date }>('SELECT pg_is_in_recovery() AS recovering, pg_postmaster_start_time() AS started');
    // A server that was up before this one was started is another server on the same port, so its state is unrelated to this recovery.
    if (rows[0]!.started.getTime() < startedAt - CLOCK_SLACK_MS) {
      throw new ToolError(`another PostgreSQL server, running since ${rows[0]!.started.toISOString()}, listens on ${connection.endpoint}`, {
        code: 'pitr.port_taken',
        object: connection.endpoint,
        hint: 'Choose a free port with --port.',
      });
    }
    return rows[0]!.recovering;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function readRecoveryPoint(server: RecoveryServer, connection: ConnectionTarget): Promise<RecoveryPoint> {
  // After promotion the replay functions keep the values of the finished recovery.
  const row = await withClient(connection, async (client) => {
    const { rows } = await client.query<{ replay_time: Date | null; replay_lsn: string; wal_file: string }>(
      'SELECT pg_last_xact_replay_timestamp() AS replay_time, pg_last_wal_replay_lsn()::text AS replay_lsn, pg_walfile_name(pg_current_wal_lsn()) AS wal_file',
    );
    return rows[0]!;
  });
  return {
    lastTransactionTime: row.replay_time ? row.replay_time.toISOString() : null,
    lastReplayedLsn: row.replay_lsn,
    // A WAL file name starts with its timeline as 8 hex digits.
    timeline: Number.parseInt(row.wal_file.slice(0, 8), 16),
    stopMessage: await stopMessage(server.logFile),
  };
}

/** Returns pg_ctl run as the server's user with `args` after `-D DIR`, as program and arguments. */
export function pgCtlCommand(server: RecoveryServer, args: string[]): string[] {
  const command = [path.join(server.binDir, 'pg_ctl'), '-D', server.dataDir, ...args];
  // runuser (util-linux) switches to the postgres user without a password prompt when run as root.
  return server.owner.uid === undefined ? command : ['runuser', '-u', 'postgres', '--', ...command];
}

/**
 * Reads postmaster.pid: the first line is the postmaster's pid, the eighth
 * its status (PostgreSQL 10 and later), padded with spaces. A file being
 * written may lack the status line yet.
 */
async function readPostmasterFile(dataDir: string): Promise<{ pid: number; status: string } | undefined> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const lines = text?.split('\n') ?? [];
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, status: lines[7]?.trim() || 'starting' };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Returns the server's last "recovery stopping before/after ..." message, without the log line prefix. */
async function stopMessage(logFile: string): Promise<string | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const line = text.split('\n').filter((entry) => /recovery stopping (before|after)/.test(entry)).at(-1);
  return line?.replace(/^.*?LOG:\s+/, '');
}

async function logTail(logFile: string): Promise<string> {
  const size = await stat(logFile).then((info) => info.size, () => 0);
  if (size === 0) return '(empty)';
  const text = await readFile(logFile, 'utf8');
  return text.trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
