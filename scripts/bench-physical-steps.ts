/**
 * The timed steps of the physical benchmark, for each tool: a full backup,
 * a restore into an empty directory, and an untimed check that a restored
 * copy starts, finishes recovery and has the source's row counts.
 */
import { join } from 'node:path';
import { runProcess } from '../src/util/process.js';
import { withClient } from './bench-data.js';
import type { StepResult } from './bench-report.js';
import { log, timedRun } from './bench-run.js';
import { listPgBackRestBackups, pgBackRestArgs } from './bench-pgbackrest.js';
import { DATABASE, drplanArgs, drplanEnv, type PhysicalContext } from './bench-physical-setup.js';

export type Tool = 'drplan' | 'pgBackRest';

/** One timed run of one tool. */
export interface ToolRun {
  tool: Tool;
  round: number;
  step: StepResult;
  /** Bytes the backup takes in the repository (backups only). */
  storedBytes?: number;
  /** The tool's name for the backup, or the backup restored. */
  backup?: string;
}

export interface RestoreCheck {
  tool: Tool;
  /** Seconds from starting the restored server until it left recovery. */
  recoverySeconds: number;
  rows: Record<string, number>;
}

/** Seconds a restored server may take to replay the archived WAL and finish recovery. */
const RECOVERY_TIMEOUT_S = 600;

export async function backupPgBackRest(context: PhysicalContext, round: number): Promise<ToolRun> {
  const setup = context.pgBackRest;
  const args = pgBackRestArgs(setup, 'backup', ['--type=full']);
  const { stdout: _stdout, ...step } = await timedRun(context, 'pgbackrest', args, { label: `pgbackrest backup --type=full (round ${round})`, env: setup.env, uid: setup.uid, gid: setup.gid });
  const latest = (await listPgBackRestBackups(setup, context.signal)).at(-1)!;
  return { tool: 'pgBackRest', round, step, storedBytes: latest.repositoryBytes, backup: latest.label };
}

interface PhysicalMetadataJson {
  id: string;
  storedBytes: number;
  archive?: { bytes: number };
  manifest?: { bytes: number };
}

export async function backupDrplan(context: PhysicalContext, round: number): Promise<ToolRun> {
  const args = drplanArgs(context, ['backup', '--kind', 'physical', '--database', DATABASE, '--json']);
  const { stdout, ...step } = await timedRun(context, process.execPath, args, { label: `drplan backup --kind physical (round ${round})`, env: drplanEnv(context), ...context.owner });
  const meta = JSON.parse(stdout) as PhysicalMetadataJson;
  // The stored size counts the base backup archive and the backup manifest, as pgBackRest's repository size counts its manifest.
  const storedBytes = meta.archive && meta.manifest ? meta.archive.bytes + meta.manifest.bytes : meta.storedBytes;
  return { tool: 'drplan', round, step, storedBytes, backup: meta.id };
}

export async function restorePgBackRest(context: PhysicalContext, round: number, dir: string): Promise<ToolRun> {
  const setup = context.pgBackRest;
  const args = pgBackRestArgs(setup, 'restore', [`--pg1-path=${dir}`, '--process-max=2']);
  const { stdout: _stdout, ...step } = await timedRun(context, 'pgbackrest', args, { label: `pgbackrest restore (round ${round})`, env: setup.env, uid: setup.uid, gid: setup.gid });
  return { tool: 'pgBackRest', round, step, backup: 'latest' };
}

/** Times `drplan restore --pitr --target latest --data-dir DIR`, which extracts the latest physical backup and writes the recovery settings. */
export async function restoreDrplan(context: PhysicalContext, round: number, dir: string): Promise<ToolRun> {
  const args = drplanArgs(context, ['restore', '--pitr', '--target', 'latest', '--database', DATABASE, '--data-dir', dir]);
  const { stdout: _stdout, ...step } = await timedRun(context, process.execPath, args, { label: `drplan restore --pitr --target latest (round ${round})`, env: drplanEnv(context), ...context.owner });
  return { tool: 'drplan', round, step, backup: 'latest' };
}

/**
 * Starts the restored data directory on a new port with archiving off (it
 * would push a new timeline into the repositories), waits until recovery has
 * replayed the archived WAL and ended, compares the row counts and stops it.
 */
export async function checkRestoredCluster(context: PhysicalContext, tool: Tool, dir: string, expected: Record<string, number>): Promise<RestoreCheck> {
  const { cluster, owner, signal } = context;
  const port = cluster.port + 1 + (tool === 'drplan' ? 1 : 0);
  const options = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c archive_mode=off`;
  const pgCtl = join(cluster.binDir, 'pg_ctl');
  log(`starting the cluster restored by ${tool} on port ${port}`);
  const started = performance.now();
  await runProcess(pgCtl, ['-D', dir, '-l', join(dir, 'restored.log'), '-o', options, '-w', '-t', String(RECOVERY_TIMEOUT_S), 'start'], {
    operation: `start the cluster restored by ${tool}`,
    signal,
    ...owner,
  }).catch(async (error: unknown) => {
    const tail = await runProcess('tail', ['-n', '20', join(dir, 'restored.log')], { operation: 'read the restored server log' }).catch(() => '');
    throw new Error(`the cluster restored by ${tool} did not start: ${(error as Error).message}\n${tail}`);
  });
  try {
    const url = cluster.url(DATABASE).replace(`:${cluster.port}/`, `:${port}/`);
    await waitForPromotion(url, tool, signal);
    const recoverySeconds = (performance.now() - started) / 1000;
    const rows = await countRows(url, Object.keys(expected));
    for (const [table, count] of Object.entries(expected)) {
      if (rows[table] !== count) throw new Error(`the cluster restored by ${tool}: table ${table} has ${rows[table]} rows, the source has ${count}`);
    }
    log(`the cluster restored by ${tool} finished recovery in ${recoverySeconds.toFixed(1)} s and has the source's row counts`);
    return { tool, recoverySeconds, rows };
  } finally {
    await runProcess(pgCtl, ['-D', dir, '-m', 'immediate', '-w', 'stop'], { operation: `stop the cluster restored by ${tool}`, ...owner }).catch(() => undefined);
  }
}

async function waitForPromotion(url: string, tool: Tool, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + RECOVERY_TIMEOUT_S * 1000;
  for (;;) {
    const inRecovery = await withClient(url, async (client) => (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r);
    if (!inRecovery) return;
    if (signal.aborted) throw signal.reason;
    if (performance.now() > deadline) throw new Error(`the cluster restored by ${tool} was still in recovery after ${RECOVERY_TIMEOUT_S} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function countRows(url: string, tables: string[]): Promise<Record<string, number>> {
  return withClient(url, async (client) => {
    const rows: Record<string, number> = {};
    for (const table of tables) rows[table] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
    return rows;
  });
}
