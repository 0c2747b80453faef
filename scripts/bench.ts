/**
 * Benchmark of drplan against the usual pg_dump script, in one run on a
 * throwaway PostgreSQL cluster:
 *
 *   1. generate a database `bench` of DRPLAN_BENCH_GB GiB (default 1) and a
 *      smaller `bench_small` of DRPLAN_BENCH_SMALL_GB GiB (default a quarter),
 *   2. time `pg_dump -Fc -f FILE` and `drplan backup` of `bench`, and
 *      `drplan backup` of `bench_small` to see whether memory grows with size,
 *   3. time `pg_restore` (one job) of the pg_dump file and
 *      `drplan restore latest --jobs 2`, each into a new database,
 *   4. print the times, sizes, peak RSS of the drplan process, the targets
 *      with PASS or FAIL, and everything again as one JSON line.
 *
 * With DRPLAN_BENCH_BREAKDOWN=1 it also times the parts of drplan's work one
 * by one (raw pg_dump, zstd, SHA-256, row counting, ...).
 *
 * Exit status: 0 when every step ran, whether or not the targets were met;
 * 1 when a step failed; 130 when interrupted. The cluster and all temporary
 * files are removed in every case.
 *
 * Run with `npm run bench`. Linux only: memory and CPU are read from /proc.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { connectionTarget } from '../src/postgres/connection.js';
import { runProcess } from '../src/util/process.js';
import { calibrateBytesPerUnit, generateDatabase, withClient, type GeneratedDatabase } from './bench-data.js';
import { evaluateTargets, formatGib, formatMib, formatReport, formatSeconds, type BenchResult, type BreakdownEntry, type StepResult } from './bench-report.js';
import { Cleanup, log, machineFacts, runBenchMain, startBenchCluster, timedRun, type RunContext } from './bench-run.js';

const DRPLAN_BIN = fileURLToPath(new URL('../../bin/drplan.js', import.meta.url));
const GIB = 1024 ** 3;
const MAIN_DATABASE = 'bench';
const SMALL_DATABASE = 'bench_small';
const RESTORE_JOBS = 2;

/**
 * Server settings for a bulk-load benchmark: a larger cache, and few enough
 * checkpoints that one rarely starts during a timed step. fsync stays on, so
 * restores pay for durable writes as they would in production.
 */
const SERVER_SETTINGS: Record<string, string> = {
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  checkpoint_timeout: '30min',
  maintenance_work_mem: '256MB',
};

interface BenchConfig {
  mainBytes: number;
  smallBytes: number;
  breakdown: boolean;
}

/** Everything a step needs to reach the cluster and the plan. */
interface BenchContext extends RunContext {
  workDir: string;
  planFile: string;
}

function readConfig(env: NodeJS.ProcessEnv): BenchConfig {
  const gib = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number of GiB, got ${JSON.stringify(raw)}`);
    return value;
  };
  const main = gib('DRPLAN_BENCH_GB', 1);
  const small = gib('DRPLAN_BENCH_SMALL_GB', main / 4);
  return { mainBytes: main * GIB, smallBytes: small * GIB, breakdown: env.DRPLAN_BENCH_BREAKDOWN === '1' };
}

async function main(): Promise<number> {
  return runBenchMain(async (cleanup, signal) => formatReport(await runBench(readConfig(process.env), cleanup, signal)));
}

async function runBench(config: BenchConfig, cleanup: Cleanup, signal: AbortSignal): Promise<BenchResult> {
  const workDir = await mkdtemp(join(tmpdir(), 'drplan-bench-'));
  cleanup.add(`temp directory ${workDir}`, () => rm(workDir, { recursive: true, force: true }));

  log('starting a throwaway PostgreSQL cluster');
  const { cluster, postmasterPid, clockTicks } = await startBenchCluster({ settings: SERVER_SETTINGS }, cleanup, signal);
  const planFile = join(workDir, 'drplan.yaml');
  const context: BenchContext = { cluster, workDir, planFile, postmasterPid, clockTicks, signal };
  const machine = await machineFacts(cluster, signal);

  const generateOptions = { url: (database: string) => cluster.url(database), workers: availableParallelism(), signal, log };
  log('calibrating the generator');
  const bytesPerUnit = await calibrateBytesPerUnit(generateOptions);
  const main = await generateDatabase(MAIN_DATABASE, config.mainBytes, bytesPerUnit, generateOptions);
  log(`${MAIN_DATABASE}: ${formatGib(main.sizeBytes)} in ${formatSeconds(main.durationMs)}`);
  const small = await generateDatabase(SMALL_DATABASE, config.smallBytes, bytesPerUnit, generateOptions);
  log(`${SMALL_DATABASE}: ${formatGib(small.sizeBytes)} in ${formatSeconds(small.durationMs)}`);

  await writePlan(context);

  const dumpFile = join(workDir, `${MAIN_DATABASE}.dump`);
  const pgDump = await timePgDump(context, dumpFile);
  const drplanBackup = await timeDrplanBackup(context, MAIN_DATABASE);
  const drplanBackupSmall = await timeDrplanBackup(context, SMALL_DATABASE);
  const pgRestore = await timePgRestore(context, dumpFile, 'bench_pg_restore');
  const drplanRestore = await timeDrplanRestore(context, 'bench_drplan_restore');
  await checkRestoredRows(context, main, ['bench_pg_restore', 'bench_drplan_restore']);

  const breakdown = config.breakdown ? await runBreakdown(context, dumpFile) : undefined;

  const partial = {
    machine,
    serverSettings: SERVER_SETTINGS,
    databases: { main: { ...main, targetBytes: config.mainBytes }, small: { ...small, targetBytes: config.smallBytes } },
    pgDump,
    drplanBackup,
    drplanBackupSmall,
    pgRestore,
    drplanRestore,
    ratios: {
      backupTime: drplanBackup.durationMs / pgDump.durationMs,
      backupSize: (drplanBackup.outputBytes ?? 0) / (pgDump.outputBytes ?? 1),
      restoreTime: drplanRestore.durationMs / pgRestore.durationMs,
    },
    breakdown,
  };
  return { ...partial, targets: evaluateTargets(partial) };
}

/**
 * Writes a plan with both databases and one file:// repository. The password
 * comes from BENCH_PW, and needs no escaping in the URL because the cluster
 * generates it in base64url.
 */
async function writePlan(context: BenchContext): Promise<void> {
  const { cluster, workDir } = context;
  const url = (database: string) => `postgres://${cluster.superuser}:\${BENCH_PW}@${cluster.host}:${cluster.port}/${database}`;
  const plan = [
    'version: 1',
    'service: bench',
    'databases:',
    `  - name: ${MAIN_DATABASE}`,
    `    url: "${url(MAIN_DATABASE)}"`,
    `  - name: ${SMALL_DATABASE}`,
    `    url: "${url(SMALL_DATABASE)}"`,
    'repositories:',
    '  - name: local',
    `    url: "file://${join(workDir, 'repository')}"`,
    'backup:',
    '  compression: zstd',
    // Restores decompress into this directory, so an interrupted restore's
    // files go away with the benchmark's temp directory.
    `  tempDir: "${join(workDir, 'restore-temp')}"`,
    '',
  ].join('\n');
  await writeFile(context.planFile, plan, { mode: 0o600 });
  await mkdir(join(workDir, 'restore-temp'));
}

/** Returns the environment for drplan: the password for `${BENCH_PW}` and the log level (the logs are JSON because stderr is a pipe). */
function drplanEnv(context: BenchContext): NodeJS.ProcessEnv {
  return { BENCH_PW: context.cluster.password, DRPLAN_LOG_LEVEL: 'info' };
}

async function timePgDump(context: BenchContext, dumpFile: string): Promise<StepResult> {
  const target = connectionTarget(context.cluster.url(MAIN_DATABASE));
  const args = ['-Fc', '--no-password', '-f', dumpFile, `--dbname=${target.uri}`];
  const { stdout: _stdout, ...step } = await timedRun(context, join(context.cluster.binDir, 'pg_dump'), args, { label: 'pg_dump -Fc', env: target.env });
  return { ...step, outputBytes: (await stat(dumpFile)).size };
}

async function timeDrplanBackup(context: BenchContext, database: string): Promise<StepResult & { rawBytes: number; internalDurationMs: number }> {
  const args = [DRPLAN_BIN, '-c', context.planFile, 'backup', '--database', database, '--json'];
  const { stdout, ...step } = await timedRun(context, process.execPath, args, { label: `drplan backup ${database}`, env: drplanEnv(context) });
  const meta = JSON.parse(stdout) as { id: string; rawBytes: number; durationMs: number };
  const listing = await runProcess(process.execPath, [DRPLAN_BIN, '-c', context.planFile, 'list', '--database', database, '--json'], {
    env: drplanEnv(context),
    signal: context.signal,
    operation: 'drplan list',
  });
  const entry = (JSON.parse(listing) as { id: string; storedBytes: number }[]).find((e) => e.id === meta.id);
  if (!entry) throw new Error(`drplan list does not show backup ${meta.id} of ${database} that drplan backup reported as committed`);
  return { ...step, outputBytes: entry.storedBytes, rawBytes: meta.rawBytes, internalDurationMs: meta.durationMs };
}

async function timePgRestore(context: BenchContext, dumpFile: string, database: string): Promise<StepResult> {
  await withClient(context.cluster.url(), (client) => client.query(`CREATE DATABASE ${database} TEMPLATE template0 ENCODING 'UTF8'`));
  const target = connectionTarget(context.cluster.url(database));
  const args = ['--no-password', '--exit-on-error', `--dbname=${target.uri}`, dumpFile];
  const { stdout: _stdout, ...step } = await timedRun(context, join(context.cluster.binDir, 'pg_restore'), args, { label: 'pg_restore (1 job)', env: target.env });
  return step;
}

async function timeDrplanRestore(context: BenchContext, database: string): Promise<StepResult & { internalDurationMs: number }> {
  const args = [DRPLAN_BIN, '-c', context.planFile, 'restore', 'latest', '--database', MAIN_DATABASE, '--target-database', database, '--jobs', String(RESTORE_JOBS), '--json'];
  const { stdout, ...step } = await timedRun(context, process.execPath, args, { label: `drplan restore --jobs ${RESTORE_JOBS}`, env: drplanEnv(context) });
  const result = JSON.parse(stdout) as { durationMs: number };
  return { ...step, internalDurationMs: result.durationMs };
}

/** Fails unless every restored database has the generated row count in every table. */
async function checkRestoredRows(context: BenchContext, source: GeneratedDatabase, databases: string[]): Promise<void> {
  for (const database of databases) {
    await withClient(context.cluster.url(database), async (client) => {
      for (const [table, expected] of Object.entries(source.rows)) {
        const rows = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
        if (rows !== expected) throw new Error(`restored database ${database}: table ${table} has ${rows} rows, the source has ${expected}`);
      }
    });
  }
  log(`row counts of ${databases.join(' and ')} match ${source.name}`);
}

/**
 * Times the parts of drplan's backup and restore pipelines alone, so a
 * missed target can be traced to pg_dump, zstd, hashing, row counting or
 * pg_restore. Each part runs by itself, so their sum exceeds drplan's time
 * where drplan overlaps them.
 */
async function runBreakdown(context: BenchContext, dumpFile: string): Promise<BreakdownEntry[]> {
  const { cluster, workDir, signal } = context;
  const entries: BreakdownEntry[] = [];
  const target = connectionTarget(cluster.url(MAIN_DATABASE));
  const rawFile = join(workDir, 'raw.dump');
  const zstdFile = `${rawFile}.zst`;
  const record = (label: string, step: StepResult, detail?: string) => {
    const cpu = `process ${step.usage.root.cpuSeconds.toFixed(1)} s CPU, `;
    entries.push({ label, durationMs: step.durationMs, detail: `${detail ? `${detail}; ` : ''}${cpu}server ${step.serverCpuSeconds.toFixed(1)} s CPU, rest of machine ${step.otherCpuSeconds.toFixed(1)} s CPU` });
  };

  const raw = await timedRun(context, join(cluster.binDir, 'pg_dump'), ['--format=custom', '--compress=0', '--no-password', '-f', rawFile, `--dbname=${target.uri}`], {
    label: 'pg_dump -Fc --compress=0 to a file',
    env: target.env,
  });
  const rawBytes = (await stat(rawFile)).size;
  record(raw.label, raw, formatMib(rawBytes));

  const compressed = await timedRun(context, 'zstd', ['-q', '-T0', '-3', '-f', rawFile, '-o', zstdFile], { label: 'zstd -T0 -3 of that file' });
  record(compressed.label, compressed, `${formatMib((await stat(zstdFile)).size)}, ${((rawBytes / (compressed.durationMs / 1000)) / 1024 ** 2).toFixed(0)} MiB/s`);

  const hashStarted = performance.now();
  const hash = createHash('sha256');
  await pipeline(createReadStream(zstdFile, { highWaterMark: 1 << 20 }), hash);
  const hashMs = performance.now() - hashStarted;
  entries.push({ label: 'SHA-256 of the .zst in Node.js', durationMs: hashMs, detail: `${((await stat(zstdFile)).size / (hashMs / 1000) / 1024 ** 2).toFixed(0)} MiB/s` });

  const countStarted = performance.now();
  await withClient(cluster.url(MAIN_DATABASE), async (client) => {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const table of ['customers', 'orders', 'documents', 'audit.events']) await client.query(`SELECT count(*) FROM ${table}`);
    await client.query('COMMIT');
  });
  entries.push({ label: 'count(*) of every table (as drplan records row counts)', durationMs: performance.now() - countStarted });

  const globals = await timedRun(context, join(cluster.binDir, 'pg_dumpall'), ['--globals-only', '--no-password', `--dbname=${target.uri}`], { label: 'pg_dumpall --globals-only', env: target.env });
  record(globals.label, globals);

  const startup = await timedRun(context, process.execPath, [DRPLAN_BIN, '--version'], { label: 'node bin/drplan.js --version (startup)' });
  record(startup.label, startup);

  const decompressed = await timedRun(context, 'zstd', ['-q', '-d', '-f', zstdFile, '-o', join(workDir, 'decompressed.dump')], { label: 'zstd -d of the .zst' });
  record(decompressed.label, decompressed);

  for (const jobs of [1, RESTORE_JOBS]) {
    const database = `bench_breakdown_restore_${jobs}`;
    await withClient(cluster.url(), (client) => client.query(`CREATE DATABASE ${database} TEMPLATE template0 ENCODING 'UTF8'`));
    const restoreTarget = connectionTarget(cluster.url(database));
    const args = ['--no-password', '--exit-on-error', `--jobs=${jobs}`, `--dbname=${restoreTarget.uri}`, rawFile];
    const restored = await timedRun(context, join(cluster.binDir, 'pg_restore'), args, { label: `pg_restore --jobs=${jobs} of the uncompressed dump`, env: restoreTarget.env });
    record(restored.label, restored);
  }

  const gzipDump = await timedRun(context, join(cluster.binDir, 'pg_dump'), ['-Fc', '--no-password', '-f', join(workDir, 'again.dump'), `--dbname=${target.uri}`], {
    label: 'pg_dump -Fc again (repeatability)',
    env: target.env,
  });
  record(gzipDump.label, gzipDump);
  if (signal.aborted) throw signal.reason;
  return entries;
}

main().then((code) => {
  // Exit explicitly: a pg client whose server was stopped by an interrupt may
  // still hold a handle that would keep the process alive.
  process.exit(code);
});
