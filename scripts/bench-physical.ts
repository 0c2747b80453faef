/**
 * Benchmark of drplan's physical backups against pgBackRest, in one run on
 * one throwaway PostgreSQL cluster (127.0.0.1 only, run as `postgres`):
 *
 *   1. generate a database of DRPLAN_BENCH_GB GiB (default 1) with WAL
 *      archiving on,
 *   2. archive every WAL file to both tools at once: the archive_command is
 *      a small script that runs `drplan wal push` and
 *      `pgbackrest archive-push` side by side and succeeds only when both do,
 *      so each tool's backup waits for the same archiver,
 *   3. time `drplan backup --kind physical` and `pgbackrest backup
 *      --type=full`, DRPLAN_BENCH_ROUNDS times each (default 2), alternating
 *      which goes first,
 *   4. time the restore of each into an empty directory, alternating too,
 *      then start one restored copy of each and check its row counts,
 *   5. time WAL pushes of real 16 MiB segments, one program run per segment
 *      as an archive_command does, DRPLAN_BENCH_WAL_SEGMENTS (default 16)
 *      per run and two runs per tool and mode,
 *   6. print every run, the ratios drplan / pgBackRest with their targets,
 *      a summary block and one JSON line.
 *
 * Exit status: 0 when every step ran, whether or not the targets were met;
 * 1 when a step failed; 130 when interrupted. The cluster and all temporary
 * files are removed in every case.
 *
 * Run with `npm run bench:physical`. Needs pgBackRest (a missing one is
 * reported with how to install it), root (the server and both tools run as
 * the `postgres` system user, which must exist), and Linux.
 */
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runProcess } from '../src/util/process.js';
import { calibrateBytesPerUnit, generateDatabase, withClient } from './bench-data.js';
import { formatGib, formatSeconds } from './bench-report.js';
import { log, machineFacts, runBenchMain, startBenchCluster, type Cleanup } from './bench-run.js';
import { listPgBackRestBackups, pgBackRestVersion, runPgBackRest, writePgBackRestConfig } from './bench-pgbackrest.js';
import { detectDrplanFeatures, writeArchiveScript, writePlan, DATABASE, type PhysicalContext } from './bench-physical-setup.js';
import { backupDrplan, backupPgBackRest, restoreDrplan, restorePgBackRest, checkRestoredCluster, type ToolRun } from './bench-physical-steps.js';
import { measureWalPush, type WalPushResult } from './bench-physical-wal.js';
import { formatPhysicalReport, type PhysicalResult } from './bench-physical-report.js';

const GIB = 1024 ** 3;

/**
 * pgBackRest's `check` and `backup` reject an archive_command that does not
 * contain "pgbackrest" (pgBackRest 2.45), so the script that runs
 * `pgbackrest archive-push` (and `drplan wal push`) has it in its name.
 */
const ARCHIVE_SCRIPT = 'archive-wal-drplan-pgbackrest.sh';

/**
 * The logical benchmark's settings plus WAL archiving. archive_command is
 * `true` while the data is generated: that WAL comes before every backup,
 * so no restore needs it, and pushing it would only slow the generation.
 */
const SERVER_SETTINGS: Record<string, string> = {
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  checkpoint_timeout: '30min',
  maintenance_work_mem: '256MB',
  wal_level: 'replica',
  archive_mode: 'on',
  archive_command: 'true',
};

interface PhysicalConfig {
  databaseBytes: number;
  rounds: number;
  walSegments: number;
}

function readConfig(env: NodeJS.ProcessEnv): PhysicalConfig {
  const positive = (name: string, fallback: number, integer: boolean): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  return {
    databaseBytes: positive('DRPLAN_BENCH_GB', 1, false) * GIB,
    rounds: positive('DRPLAN_BENCH_ROUNDS', 2, true),
    walSegments: positive('DRPLAN_BENCH_WAL_SEGMENTS', 16, true),
  };
}

async function main(): Promise<number> {
  return runBenchMain(async (cleanup, signal) => formatPhysicalReport(await runPhysicalBench(readConfig(process.env), cleanup, signal)));
}

async function runPhysicalBench(config: PhysicalConfig, cleanup: Cleanup, signal: AbortSignal): Promise<PhysicalResult> {
  // Checked first, so a missing pgBackRest fails before minutes of data generation.
  const pgBackRest = await pgBackRestVersion(signal);
  const features = await detectDrplanFeatures(signal);
  log(`${pgBackRest}; drplan: physical backup ${features.physicalBackup ? 'yes' : 'no'}, PITR restore ${features.pitrRestore ? 'yes' : 'no'}, wal push ${features.walPush ? 'yes' : 'no'}`);

  const context = await setUp(cleanup, signal, features);
  const machine = { ...(await machineFacts(context.cluster, signal)), pgBackRest };

  const generateOptions = { url: (database: string) => context.cluster.url(database), workers: availableParallelism(), signal, log };
  log('calibrating the generator');
  const bytesPerUnit = await calibrateBytesPerUnit(generateOptions);
  const database = await generateDatabase(DATABASE, config.databaseBytes, bytesPerUnit, generateOptions);
  log(`${DATABASE}: ${formatGib(database.sizeBytes)} in ${formatSeconds(database.durationMs)}`);
  const clusterBytes = await withClient(context.cluster.url(), async (client) =>
    Number((await client.query<{ size: string }>('SELECT sum(pg_database_size(oid))::text AS size FROM pg_database')).rows[0]!.size),
  );

  await startArchiving(context);

  const backups: ToolRun[] = [];
  for (let round = 1; round <= config.rounds; round++) {
    const order = round % 2 === 1 ? (['pgBackRest', 'drplan'] as const) : (['drplan', 'pgBackRest'] as const);
    for (const tool of order) {
      if (tool === 'pgBackRest') backups.push(await backupPgBackRest(context, round));
      else if (features.physicalBackup) backups.push(await backupDrplan(context, round));
    }
  }

  const restores: ToolRun[] = [];
  const restoredDirs: Partial<Record<ToolRun['tool'], string>> = {};
  for (let round = 1; round <= config.rounds; round++) {
    const order = round % 2 === 1 ? (['pgBackRest', 'drplan'] as const) : (['drplan', 'pgBackRest'] as const);
    for (const tool of order) {
      if (tool === 'drplan' && !(features.physicalBackup && features.pitrRestore)) continue;
      const dir = await emptyOwnedDir(context, `restore-${tool}-${round}`);
      restores.push(tool === 'pgBackRest' ? await restorePgBackRest(context, round, dir) : await restoreDrplan(context, round, dir));
      // The last restore of each tool is started and checked below; the others only take disk space.
      if (round === config.rounds) restoredDirs[tool] = dir;
      else await rm(dir, { recursive: true, force: true });
    }
  }
  const checks = [];
  for (const [tool, dir] of Object.entries(restoredDirs)) {
    checks.push(await checkRestoredCluster(context, tool as ToolRun['tool'], dir, database.rows));
    await rm(dir, { recursive: true, force: true });
  }

  const walPush: WalPushResult = await measureWalPush(context, config.walSegments);
  const pgBackRestSizes = await listPgBackRestBackups(context.pgBackRest, signal);
  return { machine, serverSettings: SERVER_SETTINGS, database, clusterBytes, rounds: config.rounds, features, backups, restores, checks, walPush, pgBackRestSizes };
}

/** Starts the cluster, writes both tools' configuration and returns what every step needs. */
async function setUp(cleanup: Cleanup, signal: AbortSignal, features: PhysicalContext['features']): Promise<PhysicalContext> {
  const owner = await postgresOwner(signal);
  const workDir = await mkdtemp(join(tmpdir(), 'drplan-bench-physical-'));
  cleanup.add(`temp directory ${workDir}`, () => rm(workDir, { recursive: true, force: true }));
  await chown(workDir, owner.uid, owner.gid);

  // The server passes its environment to archive_command and restore_command,
  // so drplan run from there reads the plan's ${BENCH_PW} like the CLI does.
  const password = randomBytes(18).toString('base64url');
  process.env.BENCH_PW = password;

  log('starting a throwaway PostgreSQL cluster with WAL archiving');
  const { cluster, postmasterPid, clockTicks } = await startBenchCluster({ settings: SERVER_SETTINGS, password }, cleanup, signal);
  const pgBackRestDir = join(workDir, 'pgbackrest');
  await mkdir(pgBackRestDir);
  await chown(pgBackRestDir, owner.uid, owner.gid);
  const pgBackRest = await writePgBackRestConfig(pgBackRestDir, cluster, owner);
  await chownAll([pgBackRest.configFile, pgBackRest.env.PGPASSFILE!], owner);

  const partial = { cluster, postmasterPid, clockTicks, signal, workDir, owner, features, pgBackRest, planFile: join(workDir, 'drplan.yaml'), archiveScript: join(workDir, ARCHIVE_SCRIPT) };
  await writePlan(partial, partial.planFile);
  await writeArchiveScript(partial);
  await chownAll([partial.planFile, partial.archiveScript], owner);
  return partial;
}

/** Points archive_command at the script that pushes to both tools, then creates pgBackRest's stanza and checks that archiving works. */
async function startArchiving(context: PhysicalContext): Promise<void> {
  await withClient(context.cluster.url(), async (client) => {
    await client.query(`ALTER SYSTEM SET archive_command = '${context.archiveScript} "%p"'`);
    await client.query('SELECT pg_reload_conf()');
  });
  log('creating the pgBackRest stanza');
  await runPgBackRest(context.pgBackRest, 'stanza-create', [], context.signal);
  // `check` switches to a new WAL segment and waits until it is archived, so it
  // also proves that the archive script reaches drplan's repository.
  await runPgBackRest(context.pgBackRest, 'check', [], context.signal).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}\nlast lines of the server log:\n${await serverLogTail(context)}`);
  });
}

/** Returns the last lines of the benchmark server's log, where the archiver reports a failing archive_command. */
async function serverLogTail(context: PhysicalContext): Promise<string> {
  const text = await readFile(join(context.cluster.dataDir, '..', 'server.log'), 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-20).join('\n');
}

async function postgresOwner(signal: AbortSignal): Promise<{ uid: number; gid: number }> {
  const lookup = async (flag: string) => Number((await runProcess('id', [flag, 'postgres'], { operation: 'look up the postgres system user', signal })).trim());
  return { uid: await lookup('-u'), gid: await lookup('-g') };
}

async function chownAll(files: string[], owner: { uid: number; gid: number }): Promise<void> {
  for (const file of files) await chown(file, owner.uid, owner.gid);
}

/** Creates an empty directory that the postgres user owns, as both restores require. */
async function emptyOwnedDir(context: PhysicalContext, name: string): Promise<string> {
  const dir = join(context.workDir, name);
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, context.owner.uid, context.owner.gid);
  return dir;
}

main().then((code) => {
  // Exit explicitly: a pg client whose server was stopped by an interrupt may
  // still hold a handle that would keep the process alive.
  process.exit(code);
});
