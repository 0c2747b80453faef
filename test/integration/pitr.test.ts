/**
 * Point-in-time restore against a real cluster that archives its WAL with
 * `drplan wal push`. Rows are written at three distinct moments after a
 * physical base backup. The tests restore to a time between them, to the
 * latest WAL, on a new timeline, and single tables, and check the rejections
 * that must leave the data directory untouched.
 *
 * Restores that run beside the still-running source pass --no-archive, as a
 * user's test restore should: a promoted copy that archives adds a timeline
 * to the source's archive, and once the source archives more WAL, "latest"
 * is refused as ambiguous.
 */
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import type { PitrResult } from '../../src/restore/pitr.js';
import type { TableRecoveryResult } from '../../src/restore/table-recovery.js';
import { runProcess } from '../../src/util/process.js';
import { shareWithServer, startArchivingCluster, stopRestoredServer, switchWalAndWait } from '../helpers/archiving.js';
import { runCli, startCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { listProcesses } from '../helpers/procs.js';
import { fileRepository, writePlan, type TestRepository } from '../helpers/plan.js';

const PLAN_URL = 'postgres://postgres:${PITR_PASSWORD}@127.0.0.1:${PITR_PORT}/app';
const RESTORE_TIMEOUT_MS = 120_000;

describe('point-in-time restore', () => {
  let cluster: ThrowawayCluster;
  let repo: TestRepository & { dir: string };
  let planFile: string;
  let env: Record<string, string>;
  let work: string;
  let scratchRoot: string;
  let backupId: string;
  /** A moment between the second and the third write, from the server's clock. */
  let between: Date;
  /** Segments archived by the WAL switch after each write. */
  const segments: string[] = [];
  const started: string[] = [];

  const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
    runCli(['--config', planFile, ...args], { env: { ...env, ...extraEnv }, timeoutMs: RESTORE_TIMEOUT_MS });
  const restoreArgs = (dataDir: string, ...rest: string[]) => ['restore', '--pitr', '--data-dir', dataDir, ...rest];
  const restoredUrl = (result: PitrResult) => `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${result.port}/app`;

  beforeAll(async () => {
    repo = await fileRepository('local');
    work = await mkdtemp(path.join(tmpdir(), 'drplan-pitr-test-'));
    scratchRoot = path.join(work, 'scratch');
    await mkdir(scratchRoot);
    await chmod(work, 0o755);
    await chmod(scratchRoot, 0o755);
    planFile = await writePlan({ databases: [{ name: 'app', url: PLAN_URL }], repositories: [repo], backup: { tempDir: scratchRoot, archiveTimeout: '30s' } });
    await shareWithServer(planFile, [repo.dir]);
    cluster = await startArchivingCluster(planFile, 'app');
    env = { PITR_PASSWORD: cluster.password, PITR_PORT: String(cluster.port) };
    await query(cluster.url(), 'CREATE DATABASE app');
    const app = cluster.url('app');
    await query(app, 'CREATE TABLE events (id int PRIMARY KEY, note text NOT NULL)');
    await query(app, "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL); INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, 5) g");

    const backup = await cli(['backup', '--kind', 'physical']);
    expect(backup.code, backup.stderr).toBe(0);
    backupId = backup.stdout.trim();

    await query(app, "INSERT INTO events VALUES (1, 'first')");
    segments.push(await switchWalAndWait(cluster.url()));
    await query(app, "INSERT INTO events VALUES (2, 'second')");
    const [clock] = await query<{ now: Date }>(app, 'SELECT clock_timestamp() AS now');
    segments.push(await switchWalAndWait(cluster.url()));
    between = new Date(clock!.now.getTime() + 300);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, between.getTime() + 700 - Date.now())));
    // The third moment: a new event, and the accident that table recovery undoes.
    await query(app, "INSERT INTO events VALUES (3, 'third'); DELETE FROM orders WHERE id > 2");
    segments.push(await switchWalAndWait(cluster.url()));
  });

  afterAll(async () => {
    for (const dataDir of started) await stopRestoredServer(dataDir).catch(() => undefined);
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('rejects bad target values', async () => {
    const dataDir = path.join(work, 'bad-values');
    // Every form is covered by the unit tests of pitr-target; these check the exit code and hint through the CLI.
    const cases: [string[], string][] = [
      [['--target-time', '2026-02-30 10:00'], 'invalid --target-time "2026-02-30 10:00"'],
      [['--target-lsn', '3000028'], 'invalid --target-lsn "3000028"'],
      [['--target-xid', 'abc'], 'invalid --target-xid "abc"'],
    ];
    for (const [args, message] of cases) {
      const result = await cli(restoreArgs(dataDir, ...args));
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr).toMatch(/hint: .*(2026-12-04 14:30:00\+01:00|0\/3000028|for example 748)/);
    }
    await expect(stat(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('rejects a non-empty data directory', async () => {
    const dataDir = path.join(work, 'occupied');
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'PG_VERSION'), '15\n');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--data-dir ${dataDir} is not empty (1 entries, such as PG_VERSION)`);
    expect(await readdir(dataDir)).toEqual(['PG_VERSION']);
  });

  it('rejects a data directory postgres cannot reach', async () => {
    const closed = path.join(work, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    const dataDir = path.join(closed, 'restore');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`the postgres user cannot reach --data-dir ${dataDir}: directory ${closed} (mode 700) is not searchable by it`);
    expect(result.stderr).toContain(`chmod o+x ${closed}`);
    expect(await readdir(closed)).toEqual([]);
  });

  it('writes a free port without --port', async () => {
    const dataDir = path.join(work, 'no-port');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest', '--no-archive'));
    expect(result.code, result.stderr).toBe(0);
    const port = Number(/it listens on 127\.0\.0\.1:(\d+)/.exec(result.stdout)?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(cluster.port);
    expect(await readFile(path.join(dataDir, 'postgresql.auto.conf'), 'utf8')).toContain(`port = '${port}'`);
    expect(result.stdout.match(/recovery target: /g)).toHaveLength(1);
    expect(result.stderr).not.toContain('recovery target: ');
  });

  it('rejects targets outside the window', async () => {
    const dataDir = path.join(work, 'outside');
    const early = await cli(restoreArgs(dataDir, '--target-time', '2000-01-01 00:00:00Z'));
    expect(early.code).toBe(2);
    expect(early.stderr).toContain('cannot recover database app to time 2000-01-01 00:00:00+00:00 (UTC): it is before the oldest base backup finished');
    expect(early.stderr).toMatch(new RegExp(`the recoverable window is from \\S+Z \\(base backup ${backupId} finished, LSN [0-9A-F/]+\\) to \\S+Z \\(newest archived WAL ${segments[2]} stored`));
    expect(early.stderr).toContain('times in UTC');

    const late = await cli(restoreArgs(dataDir, '--target-time', new Date(Date.now() + 3_600_000).toISOString()));
    expect(late.code).toBe(2);
    expect(late.stderr).toContain('it is after the newest archived WAL; the recoverable window is from');

    const farLsn = await cli(restoreArgs(dataDir, '--target-lsn', 'FF/0'));
    expect(farLsn.code).toBe(2);
    expect(farLsn.stderr).toContain('cannot recover database app to LSN FF/0: it is at or past the end of the newest archived WAL segment');
    await expect(stat(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('stops at a missing segment', async () => {
    const copy = await fileRepository('copy');
    await cp(repo.dir, copy.dir, { recursive: true });
    const missing = segments[1]!;
    await rm(path.join(copy.dir, 'wal', 'app', `${missing}.zst`));
    const copyPlan = await writePlan({ databases: [{ name: 'app', url: PLAN_URL }], repositories: [copy] });

    const status = await runCli(['--config', copyPlan, 'wal', 'status', '--database', 'app'], { env });
    expect(status.code).toBe(4);
    expect(status.stdout).toContain(`gap: ${missing}`);

    const dataDir = path.join(work, 'gap');
    const result = await runCli(['--config', copyPlan, ...restoreArgs(dataDir, '--target', 'latest')], { env });
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`database app: WAL segment ${missing} is missing from the archive, so base backup ${backupId} cannot be recovered past it`);
    expect(result.stderr).toMatch(new RegExp(`To recover up to just before the gap instead, use --target-lsn [0-9A-F]+/[0-9A-F]+ \\(the start of segment ${segments[0]}\\)`));
    await expect(stat(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it('aborts recovery at a damaged segment', async () => {
    const copy = await fileRepository('damaged');
    await cp(repo.dir, copy.dir, { recursive: true });
    const damaged = segments[1]!;
    // The checksum object stays, so every fetch of this segment fails its check instead of finding nothing.
    await writeFile(path.join(copy.dir, 'wal', 'app', `${damaged}.zst`), 'not a zstd frame');
    const copyPlan = await writePlan({ databases: [{ name: 'app', url: PLAN_URL }], repositories: [copy] });
    await runProcess('chown', ['-R', 'postgres:postgres', copy.dir], { operation: 'give the copied repository to the server user' });
    await shareWithServer(copyPlan, [copy.dir]);

    const dataDir = path.join(work, 'damaged');
    const result = await runCli(['--config', copyPlan, ...restoreArgs(dataDir, '--target', 'latest', '--start', '--no-archive')], { env, timeoutMs: RESTORE_TIMEOUT_MS });
    started.push(dataDir);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).not.toContain('recovery ended');
    expect(result.stderr).toContain('the restored server stopped before recovery ended');
    expect(result.stderr).toContain(`WAL file ${damaged} of database app is damaged in every repository that has a copy`);
    expect(result.stderr).toContain('recovery is aborted rather than ended at this point');
    expect(result.stderr).toMatch(/FATAL: .*could not restore file .* exit code 200/);
    expect(result.stderr).toContain(`the data directory ${dataDir} was left as it is; stop its server if it still runs, then empty or replace the directory before a retry`);
  });

  it('recovers deleted rows into a side database', async () => {
    const result = await cli(['restore', '--pitr', '--target-time', between.toISOString(), '--table', 'orders', '--target-database', 'app_recovered', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as TableRecoveryResult;
    expect(report.tables).toEqual([{ schema: 'public', name: 'orders', rows: 5 }]);
    expect(report.createdDatabase).toBe(true);
    expect(report.backup).toBe(backupId);

    const recovered = await query<{ id: number; item: string }>(cluster.url('app_recovered'), 'SELECT id, item FROM orders ORDER BY id');
    expect(recovered.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    const live = await query<{ id: number }>(cluster.url('app'), 'SELECT id FROM orders ORDER BY id');
    expect(live.map((r) => r.id)).toEqual([1, 2]);
    // Only the requested table was copied.
    const tables = await query<{ name: string }>(cluster.url('app_recovered'), "SELECT relname AS name FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace");
    expect(tables.map((t) => t.name)).toEqual(['orders']);

    expect(await readdir(scratchRoot)).toEqual([]);
    const leftovers = (await listProcesses()).filter((p) => p.argv.some((arg) => arg.includes(scratchRoot)));
    expect(leftovers).toEqual([]);
  });

  it('table recovery never writes into live data', async () => {
    const live = await cli(['restore', '--pitr', '--target-time', between.toISOString(), '--table', 'orders', '--target-database', 'app']);
    expect(live.code).toBe(2);
    expect(live.stderr).toContain('--target-database app is the live database app of the plan');

    const again = await cli(['restore', '--pitr', '--target-time', between.toISOString(), '--table', 'orders', '--target-database', 'app_recovered']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('database app_recovered already has a table orders');
    expect(await readdir(scratchRoot)).toEqual([]);
  });

  it('removes the scratch cluster on interrupt', async () => {
    const run = startCli(['--config', planFile, 'restore', '--pitr', '--target-time', between.toISOString(), '--table', 'orders', '--target-database', 'app_interrupted'], { env, timeoutMs: RESTORE_TIMEOUT_MS });
    // Interrupt once the scratch server is up and recovering.
    const deadline = Date.now() + 60_000;
    let pidFile: string | undefined;
    while (pidFile === undefined && Date.now() < deadline) {
      const [scratch] = await readdir(scratchRoot);
      const candidate = scratch === undefined ? undefined : path.join(scratchRoot, scratch, 'data', 'postmaster.pid');
      if (candidate !== undefined && (await stat(candidate).catch(() => undefined))) pidFile = candidate;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(pidFile, 'the scratch server never started').toBeDefined();
    const postmaster = Number((await readFile(pidFile!, 'utf8')).split('\n')[0]);
    run.child.kill('SIGINT');
    const result = await run.result;
    expect(result.code, result.stderr).toBe(130);
    expect(await readdir(scratchRoot)).toEqual([]);
    expect(await exited(postmaster)).toBe(true);
    const [side] = await query<{ n: string }>(cluster.url(), "SELECT count(*) AS n FROM pg_database WHERE datname = 'app_interrupted'");
    expect(side!.n).toBe('0');
  });

  it('restores to a local time between writes', async () => {
    // The parent does not exist yet either: drplan creates it so that the server's user can reach the data directory.
    const dataDir = path.join(work, 'new-parent', 'between');
    // Asia/Kolkata is UTC+05:30 all year; the target is typed without offset, as local time there.
    const local = new Date(between.getTime() + 5.5 * 3_600_000).toISOString().replace('T', ' ').replace('Z', '');
    const result = await cli(restoreArgs(dataDir, '--target-time', local, '--start', '--no-archive'), { TZ: 'Asia/Kolkata' });
    started.push(dataDir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`recovery target: time ${isoToPostgres(between)} (UTC, read as local time in Asia/Kolkata)`);
    expect(result.stdout).toContain(`base backup ${backupId} (repository local) extracted into ${dataDir}`);
    const reached = /last replayed transaction at (\S+Z), last replayed LSN [0-9A-F]+\/[0-9A-F]+, now on timeline 2/.exec(result.stdout);
    expect(reached, result.stdout).not.toBeNull();
    expect(Date.parse(reached![1]!)).toBeLessThanOrEqual(between.getTime());
    expect(result.stdout).toContain(`stop it with: runuser -u postgres -- `);

    const port = Number(/running on 127\.0\.0\.1:(\d+)/.exec(result.stdout)![1]);
    const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/app`;
    const rows = await query<{ id: number }>(url, 'SELECT id FROM events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
    const [archive] = await query<{ mode: string }>(url, "SELECT current_setting('archive_mode') AS mode");
    expect(archive!.mode).toBe('off');
  });

  let promotedUrl: string;

  it('reports a target the WAL never reaches', async () => {
    const dataDir = path.join(work, 'unreached');
    // No transaction id this high was ever assigned, so recovery replays everything and stops without reaching it.
    const result = await cli(restoreArgs(dataDir, '--target-xid', '4000000000', '--start', '--no-archive'));
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain('the restored server stopped before recovery ended; last lines of');
    expect(result.stderr).toContain('FATAL:  recovery ended before configured recovery target was reached');
  });

  it('prints the start command for latest', async () => {
    const dataDir = path.join(work, 'latest');
    const port = await freePort();
    const result = await cli(restoreArgs(dataDir, '--target', 'latest', '--port', String(port)));
    expect(result.code, result.stderr).toBe(0);
    const command = /start the server with: (.*)/.exec(result.stdout)?.[1];
    expect(command).toBe(`runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D ${dataDir} -l ${dataDir}/log/drplan-recovery.log start`);
    expect(result.stdout).toContain(`it listens on 127.0.0.1:${port}`);
    expect(await readFile(path.join(dataDir, 'recovery.signal'), 'utf8')).toBe('');

    // The printed command is what a user would paste into a shell.
    await runProcess('sh', ['-c', command!], { operation: 'start the restored server' });
    started.push(dataDir);
    const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/app`;
    await waitForPromotion(url);
    const rows = await query<{ id: number }>(url, 'SELECT id FROM events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
    promotedUrl = url;
  });

  it('restores latest on the new timeline', async () => {
    // The promoted server archives timeline 2 with the same drplan wal push.
    const [timeline] = await query<{ file: string }>(promotedUrl, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS file');
    expect(timeline!.file.startsWith('00000002')).toBe(true);
    await query(promotedUrl, "INSERT INTO events VALUES (4, 'fourth, on timeline 2')");
    const segment = await switchWalAndWait(promotedUrl);
    expect(segment.startsWith('00000002')).toBe(true);
    expect(await readdir(path.join(repo.dir, 'wal', 'app'))).toContain('00000002.history.zst');

    const dataDir = path.join(work, 'timeline-2');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest', '--start', '--no-archive', '--json'));
    started.push(dataDir);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as PitrResult;
    expect(report.target).toEqual({ kind: 'latest', description: 'the end of the archived WAL (latest)' });
    expect(report.reached!.timeline).toBe(3);
    expect(report.walCheckedUntil.startsWith('00000002')).toBe(true);
    const rows = await query<{ id: number }>(restoredUrl(report), 'SELECT id FROM events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4]);
  });

  it('recovers timeline 1 after a fork', async () => {
    // Timeline 2, archived by the promoted test restore, forked after the base backup; the live primary went on with timeline 1.
    await query(cluster.url('app'), "INSERT INTO events VALUES (5, 'fifth, on timeline 1')");
    await switchWalAndWait(cluster.url());

    // Both timelines went on after the fork, so the default "latest" must not pick timeline 2 and leave out row 5.
    const ambiguous = await cli(restoreArgs(path.join(work, 'ambiguous'), '--target', 'latest'));
    expect(ambiguous.code, ambiguous.stdout).toBe(2);
    expect(ambiguous.stderr).toContain('ambiguous --target-timeline latest: timeline 2 branched off timeline 1 at LSN');
    expect(ambiguous.stderr).toContain('--target-timeline 1 or --target-timeline 2');
    expect(await readdir(work)).not.toContain('ambiguous');

    const dataDir = path.join(work, 'timeline-1');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest', '--target-timeline', '1', '--start', '--no-archive', '--json'));
    started.push(dataDir);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as PitrResult;
    expect(report.timeline).toBe(1);
    expect(report.walCheckedUntil.startsWith('00000001')).toBe(true);
    expect(await readFile(path.join(dataDir, 'postgresql.auto.conf'), 'utf8')).toContain("recovery_target_timeline = '1'");
    const rows = await query<{ id: number }>(restoredUrl(report), 'SELECT id FROM events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 5]);

    const unreachable = await cli(restoreArgs(path.join(work, 'timeline-9'), '--target', 'latest', '--target-timeline', '9'));
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toContain(`timeline 9 cannot be reached from base backup ${backupId} on timeline 1: no 00000009.history file is archived`);
  });

  it('latest ignores a timeline forked before the backup', async () => {
    const backup = await cli(['backup', '--kind', 'physical']);
    expect(backup.code, backup.stderr).toBe(0);
    await query(cluster.url('app'), "INSERT INTO events VALUES (6, 'sixth, after the second backup')");
    await switchWalAndWait(cluster.url());

    const dataDir = path.join(work, 'after-fork');
    const result = await cli(restoreArgs(dataDir, '--target', 'latest', '--start', '--no-archive', '--json'));
    started.push(dataDir);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as PitrResult;
    expect(report.backup).toBe(backup.stdout.trim());
    expect(report.timeline).toBe(1);
    const rows = await query<{ id: number }>(restoredUrl(report), 'SELECT id FROM events ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 5, 6]);
  });
});

/** Waits up to 10 s for a process to end; a zombie that init has not reaped yet counts as ended. */
async function exited(pid: number): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

/** Waits until the server at `url` accepts connections and has left recovery. */
async function waitForPromotion(url: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const recovering = await query<{ recovering: boolean }>(url, 'SELECT pg_is_in_recovery() AS recovering').then(
      (rows) => rows[0]!.recovering,
      () => true,
    );
    if (!recovering) return;
    if (Date.now() > deadline) throw new Error(`the server at ${url.replace(/:[^:@]*@/, ':***@')} did not leave recovery within 90 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Formats an instant as the restore reports it: 2026-12-04 13:30:00.250+00:00. */
function isoToPostgres(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}+00:00`;
}
