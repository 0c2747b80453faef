/**
 * `drplan serve` as a real process against a throwaway cluster, a local
 * repository and s3rver: jobs over HTTP, metrics against the committed
 * backup, the bearer token, stopping with SIGTERM or SIGKILL during a
 * backup, and `serve --once` exit codes.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli, startCli, type StartedCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { waitForChild } from '../helpers/procs.js';
import { startHttpReceiver } from '../helpers/receivers.js';
import { s3Client, startS3Server, type S3TestServer } from '../helpers/s3.js';

const TOKEN = 'serve-test-token-0123456789';

interface Daemon {
  started: StartedCli;
  base: string;
  /** Everything the daemon has written to stderr so far. */
  stderr: () => string;
}

describe('drplan serve', () => {
  let cluster: ThrowawayCluster;
  let s3: S3TestServer;
  let local: TestRepository & { dir: string };
  let offsite: TestRepository;
  let env: Record<string, string>;
  let planFile: string;
  let stateDir: string;
  let locker: pg.Client;
  const daemons: StartedCli[] = [];

  beforeAll(async () => {
    [cluster, s3] = await Promise.all([startThrowawayCluster(), startS3Server()]);
    await s3.createBucket('serve-backups');
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), "CREATE TABLE items (id int PRIMARY KEY, name text, doc jsonb); INSERT INTO items SELECT g, md5(g::text), jsonb_build_object('n', g) FROM generate_series(1, 2000) g");
    local = await fileRepository('local');
    offsite = s3Repository('offsite', s3, 'serve-backups');
    stateDir = await mkdtemp(path.join(tmpdir(), 'drplan-serve-state-'));
    env = { ...s3Env(s3), APP_PASSWORD: cluster.password, DRPLAN_TOKEN: TOKEN };
    planFile = await writePlan({
      databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}'), objectives: { rpo: '24h', rto: '2h' } }],
      repositories: [local, offsite],
      jobs: [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *' },
        { name: 'app-verify', type: 'verify', database: 'app', cron: '0 5 * * *' },
      ],
      server: { token: '${DRPLAN_TOKEN}', stateDir, shutdownTimeout: '2s', catchUp: false },
    });
    // An exclusive lock makes pg_dump wait, so a backup is still running when a test needs it to be.
    locker = new pg.Client({ connectionString: cluster.url('app') });
    await locker.connect();
  });

  afterAll(async () => {
    for (const daemon of daemons) daemon.child.kill('SIGKILL');
    await locker?.end();
    await Promise.all([cluster?.stop(), s3?.stop()]);
  });

  /** Starts the daemon on a free port and waits until it logs its address. */
  async function startDaemon(): Promise<Daemon> {
    const started = startCli(['--config', planFile, 'serve', '--listen', '127.0.0.1:0'], { env, timeoutMs: 90_000 });
    daemons.push(started);
    let stderr = '';
    started.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const match = /"listen":"127\.0\.0\.1:(\d+)".*"msg":"drplan serve started"/.exec(stderr);
      if (match) return { started, base: `http://127.0.0.1:${match[1]}`, stderr: () => stderr };
      if (started.child.exitCode !== null) break;
      await sleep(50);
    }
    throw new Error(`drplan serve did not start:\n${stderr}`);
  }

  function api(daemon: Daemon, route: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> {
    const token = init.token === undefined ? TOKEN : init.token;
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    return fetch(`${daemon.base}${route}`, { ...init, headers });
  }

  async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const value = await probe();
      if (value !== undefined) return value;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  /** Returns the last run of a job: the run `runId` when given, else any. */
  async function lastRun(daemon: Daemon, job: string, runId?: string) {
    const jobs = (await (await api(daemon, '/api/jobs')).json()) as { name: string; lastRun: { runId: string; result: string; startedAt: string; finishedAt: string } | null }[];
    const run = jobs.find((j) => j.name === job)?.lastRun ?? undefined;
    return runId === undefined || run?.runId === runId ? run : undefined;
  }

  async function repositoryObjects(): Promise<string[]> {
    const client = s3Client(s3.endpoint, s3.region, s3);
    const page = await client.send(new ListObjectsV2Command({ Bucket: 'serve-backups' }));
    client.destroy();
    const remote = (page.Contents ?? []).map((o) => `offsite:${o.Key!.replace(/^drplan\//, '')}`);
    const files = await readdir(local.dir, { recursive: true, withFileTypes: true });
    const localKeys = files.filter((f) => f.isFile()).map((f) => `local:${path.relative(local.dir, path.join(f.parentPath, f.name))}`);
    // Failure events and locks come and go with every run; the tests look at backup objects.
    return [...remote, ...localKeys].filter((k) => !/:(events|locks)\//.test(k)).sort();
  }

  async function committedBackups(): Promise<{ id: string; finishedAt: string; storedBytes: number }[]> {
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    return JSON.parse(list.stdout) as { id: string; finishedAt: string; storedBytes: number }[];
  }

  it('backup over HTTP and metrics', async () => {
    const daemon = await startDaemon();

    expect((await api(daemon, '/health', { token: null })).status).toBe(200);
    expect((await api(daemon, '/api/jobs', { token: null })).status).toBe(401);
    expect((await api(daemon, '/api/jobs', { token: 'serve-test-token-0123456780' })).status).toBe(401);
    expect((await api(daemon, '/metrics', { token: null })).status).toBe(401);
    const jobs = await api(daemon, '/api/jobs');
    expect(jobs.status).toBe(200);
    const listed = (await jobs.json()) as { name: string; nextRun: string; timezone: string }[];
    expect(listed.map((j) => [j.name, j.timezone])).toEqual([
      ['app-backup', 'UTC'],
      ['app-verify', 'UTC'],
    ]);
    expect(listed[0]!.nextRun).toMatch(/T02:00:00\.000Z$/);

    const refused = await api(daemon, '/api/jobs/app-backup/run', { method: 'POST', token: null });
    expect(refused.status).toBe(401);
    await sleep(300);
    const afterRefused = (await (await api(daemon, '/api/jobs')).json()) as { name: string; running: unknown; lastRun: unknown }[];
    expect(afterRefused.map((j) => [j.name, j.running, j.lastRun])).toEqual([
      ['app-backup', null, null],
      ['app-verify', null, null],
    ]);

    await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
    const run = await api(daemon, '/api/jobs/app-backup/run', { method: 'POST' });
    expect(run.status).toBe(202);
    const { runId } = (await run.json()) as { runId: string };
    await waitForChild(daemon.started.child.pid!, 'pg_dump', '--format=custom');
    const queued = await api(daemon, '/api/jobs/app-verify/run', { method: 'POST' });
    expect(queued.status).toBe(202);
    expect(await queued.json()).toMatchObject({ state: 'queued', job: 'app-verify', waitingFor: 'app-backup' });
    const again = await api(daemon, '/api/jobs/app-verify/run', { method: 'POST' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe('job app-verify is already queued');
    const whileQueued = (await (await api(daemon, '/api/jobs')).json()) as { name: string; running: unknown; pending: unknown }[];
    expect(whileQueued[0]!.running).toMatchObject({ runId, job: 'app-backup', trigger: 'api' });
    expect(whileQueued[1]!.pending).toMatchObject({ job: 'app-verify', trigger: 'api', waitingFor: 'app-backup' });
    expect((await api(daemon, '/api/jobs/nightly/run', { method: 'POST' })).status).toBe(404);
    await locker.query('ROLLBACK');

    const finished = await waitFor('the backup run', () => lastRun(daemon, 'app-backup', runId));
    expect(finished.result).toBe('succeeded');
    // The queued verification starts once the backup has ended, so it checks the new backup.
    const verified = await waitFor('the queued verify run', () => lastRun(daemon, 'app-verify'));
    expect(verified.result).toBe('succeeded');
    expect(Date.parse(verified.startedAt)).toBeGreaterThanOrEqual(Date.parse(finished.finishedAt));
    const [backup] = await committedBackups();
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    const meta = (JSON.parse(list.stdout) as { id: string }[])[0]!;
    expect(meta.id).toBe(backup!.id);

    const metrics = await waitFor('metrics of the new backup', async () => {
      const text = await (await api(daemon, '/metrics')).text();
      return text.includes('drplan_last_backup_success_timestamp_seconds{database="app"}') ? text : undefined;
    });
    const scrapedAt = Date.now();
    expect(metricValue(metrics, 'drplan_last_backup_success_timestamp_seconds{database="app"}')).toBe(Date.parse(backup!.finishedAt) / 1000);
    const status = (await (await api(daemon, '/api/status')).json()) as { databases: { rpo: { newestGoodBackup: { id: string; time: string } } }[] };
    expect(status.databases[0]!.rpo.newestGoodBackup.id).toBe(backup!.id);
    const expectedRpo = (scrapedAt - Date.parse(status.databases[0]!.rpo.newestGoodBackup.time)) / 1000;
    expect(Math.abs(metricValue(metrics, 'drplan_rpo_seconds{database="app"}') - expectedRpo)).toBeLessThanOrEqual(2);
    expect(metricValue(metrics, 'drplan_rpo_objective_seconds{database="app"}')).toBe(86_400);
    expect(metricValue(metrics, 'drplan_rto_objective_seconds{database="app"}')).toBe(7200);
    expect(metricValue(metrics, 'drplan_backup_bytes{database="app"}')).toBe(backup!.storedBytes);
    expect(metricValue(metrics, 'drplan_repository_up{repository="local"}')).toBe(1);
    expect(metricValue(metrics, 'drplan_repository_up{repository="offsite"}')).toBe(1);
    expect(metricValue(metrics, 'drplan_job_runs_total{job="app-backup",result="succeeded"}')).toBe(1);
    expect(metricValue(metrics, 'drplan_job_skipped_total{job="app-verify",reason="already pending"}')).toBe(1);
    expect(metricValue(metrics, 'drplan_job_runs_total{job="app-verify",result="succeeded"}')).toBe(1);
    expect(metrics).not.toContain('drplan_last_verify_restore_seconds{database="app"}');

    const cliStatus = await runCli(['--config', planFile, 'status', '--json'], { env });
    expect(cliStatus.code, cliStatus.stderr).toBe(0);
    expect(withoutTimes(status)).toEqual(withoutTimes(JSON.parse(cliStatus.stdout)));
    const backups = (await (await api(daemon, '/api/backups')).json()) as { id: string }[];
    expect(backups.map((b) => b.id)).toEqual([backup!.id]);
    expect((await api(daemon, '/ready', { token: null })).status).toBe(200);

    daemon.started.child.kill('SIGTERM');
    const result = await daemon.started.result;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('"msg":"drplan serve stopped"');
  });

  it('SIGTERM during backup commits nothing', async () => {
    const before = await committedBackups();
    const objectsBefore = await repositoryObjects();
    const daemon = await startDaemon();
    await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
    const run = await api(daemon, '/api/jobs/app-backup/run', { method: 'POST' });
    expect(run.status).toBe(202);
    const { runId } = (await run.json()) as { runId: string };
    await waitForChild(daemon.started.child.pid!, 'pg_dump', '--format=custom');

    daemon.started.child.kill('SIGTERM');
    const result = await daemon.started.result;
    await locker.query('ROLLBACK');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('aborting the running job: shutdown timeout of 2000 ms reached');
    expect(result.stderr).toContain('"msg":"job aborted"');
    expect(await committedBackups()).toEqual(before);
    expect(await repositoryObjects()).toEqual(objectsBefore);
    const state = JSON.parse(await readFile(path.join(stateDir, 'jobs.json'), 'utf8')) as { jobs: Record<string, { runId: string; result: string }> };
    expect(state.jobs['app-backup']).toMatchObject({ runId, result: 'aborted' });

    const check = await runCli(['--config', planFile, 'repo', 'check', '--json'], { env });
    expect(check.code, check.stdout).toBe(0);
  });

  it('SIGKILL leaves a partial that the next start removes', async () => {
    const before = await committedBackups();
    const daemon = await startDaemon();
    await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
    expect((await api(daemon, '/api/jobs/app-backup/run', { method: 'POST' })).status).toBe(202);
    await waitForChild(daemon.started.child.pid!, 'pg_dump', '--format=custom');
    daemon.started.child.kill('SIGKILL');
    await daemon.started.result;
    await locker.query('ROLLBACK');

    const check = await runCli(['--config', planFile, 'repo', 'check', '--json'], { env });
    expect(check.code).toBe(4);
    const problems = JSON.parse(check.stdout) as { repository: string; kind: string; key: string }[];
    const partials = problems.filter((p) => p.kind === 'object without metadata' || p.kind === 'incomplete write');
    const shapes = partials.map((p) => `${p.repository} ${p.kind} ${p.key.replace(/\d{8}_\d{6}/, 'STAMP').replace(/\.[0-9a-f]{6,}$/, '.RANDOM')}`);
    expect(shapes.sort(), JSON.stringify(problems)).toEqual([
      'local incomplete write backups/app/.drplan-tmp-backup_STAMP.dump.zst.RANDOM',
      'local object without metadata backups/app/backup_STAMP.globals.sql.zst',
      'offsite object without metadata backups/app/backup_STAMP.globals.sql.zst',
    ]);

    // The next start reports and removes what the killed run left behind:
    // the killed daemon's lock is stale, so nothing can still commit them.
    const restarted = await startDaemon();
    const removedLines = () => partials.filter((p) => restarted.stderr().includes(`removed at start, left by an interrupted run: ${p.key}`));
    await waitFor('the start-up cleanup', async () => (removedLines().length === partials.length ? true : undefined));
    // The cleanup runs before the daemon takes signals; stop it only once it has started.
    await waitFor('the daemon start', async () => (restarted.stderr().includes('drplan serve started') ? true : undefined));
    restarted.started.child.kill('SIGTERM');
    const stopped = await restarted.started.result;
    expect(stopped.code, stopped.stderr).toBe(0);

    const after = await runCli(['--config', planFile, 'repo', 'check', '--json'], { env });
    expect(after.code, after.stdout).toBe(0);
    expect(await committedBackups()).toEqual(before);
  });

  it('once exits with the job code', async () => {
    const ok = await runCli(['--config', planFile, 'serve', '--once', 'app-verify'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/job app-verify succeeded: checksum verification of backup_\d{8}_\d{6} passed/);

    const unknown = await runCli(['--config', planFile, 'serve', '--once', 'nightly'], { env });
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toContain('drplan: error: job "nightly" is not in the plan');
    expect(unknown.stderr).toContain('hint: Known jobs: app-backup, app-verify.');

    const receiver = await startHttpReceiver();
    const uploads = await mkdtemp(path.join(tmpdir(), 'drplan-serve-uploads-'));
    await writeFile(path.join(uploads, 'invoice-1.json'), JSON.stringify({ id: 1, total: 12.5 }));
    const downPlan = await writePlan({
      databases: [{ name: 'down', url: 'postgres://app:pw@127.0.0.1:1/app' }],
      repositories: [local],
      files: [{ name: 'uploads', paths: [uploads] }],
      jobs: [
        { name: 'down-backup', type: 'backup', cron: '0 2 * * *' },
        { name: 'down-base', type: 'backup', kind: 'physical', cron: '0 1 * * *' },
        { name: 'upload-files', type: 'files', fileset: 'uploads', cron: '0 3 * * *' },
      ],
      server: { stateDir },
      notifications: { channels: [{ name: 'hook', type: 'webhook', url: receiver.url('/alerts') }] },
    });
    try {
      const unreachable = await runCli(['--config', downPlan, 'serve', '--once', 'down-backup'], { env });
      expect(unreachable.code).toBe(3);
      expect(unreachable.stderr).toContain('drplan: error: step "connect to database" failed: cannot connect to PostgreSQL at 127.0.0.1:1');
      // The failure is sent before the process exits, because --once flushes the alert sink.
      const alerts = receiver.json() as { type: string; subject: string; summary: string }[];
      expect(alerts.map((a) => [a.type, a.subject])).toEqual([['job.failed', 'down-backup']]);
      expect(alerts[0]!.summary).toContain('job down-backup failed: step "connect to database" failed: cannot connect to PostgreSQL at 127.0.0.1:1');
    } finally {
      await receiver.close();
    }
    // A physical backup job reaches pg_basebackup's connection step, so it fails like the logical one.
    const base = await runCli(['--config', downPlan, 'serve', '--once', 'down-base'], { env });
    expect(base.code).toBe(3);
    expect(base.stderr).toContain('cannot connect to PostgreSQL at 127.0.0.1:1');
    const files = await runCli(['--config', downPlan, 'serve', '--once', 'upload-files'], { env });
    expect(files.code, files.stderr).toBe(0);
    expect(files.stderr).toMatch(/job upload-files succeeded: committed files_\d{8}_\d{6} of file set uploads/);
  });

  it('missed run caught up at start', async () => {
    const catchUpState = await mkdtemp(path.join(tmpdir(), 'drplan-serve-state-'));
    const lastRun = { runId: 'earlier', trigger: 'schedule', startedAt: '2026-01-01T05:00:00.000Z', finishedAt: '2026-01-01T05:00:01.000Z', durationMs: 1000, result: 'succeeded' };
    await writeFile(path.join(catchUpState, 'jobs.json'), JSON.stringify({ formatVersion: 1, jobs: { 'app-verify': lastRun } }));
    const original = planFile;
    planFile = await writePlan({
      databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}') }],
      repositories: [local, offsite],
      jobs: [
        { name: 'app-backup', type: 'backup', database: 'app', cron: '0 2 * * *', catchUp: false },
        { name: 'app-verify', type: 'verify', database: 'app', cron: '0 5 * * *' },
      ],
      server: { token: '${DRPLAN_TOKEN}', stateDir: catchUpState },
    });
    try {
      const daemon = await startDaemon();
      const caughtUp = await waitFor('the catch-up run', async () => {
        const jobs = (await (await api(daemon, '/api/jobs')).json()) as { name: string; lastRun: { trigger: string; result: string } | null }[];
        const run = jobs.find((j) => j.name === 'app-verify')?.lastRun;
        return run?.trigger === 'catch-up' ? run : undefined;
      });
      expect(caughtUp.result).toBe('succeeded');
      daemon.started.child.kill('SIGTERM');
      const result = await daemon.started.result;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr.match(/running it once now/g)).toHaveLength(1);
      const state = JSON.parse(await readFile(path.join(catchUpState, 'jobs.json'), 'utf8')) as { jobs: Record<string, unknown> };
      expect(Object.keys(state.jobs)).toEqual(['app-verify']);
    } finally {
      planFile = original;
    }
  });

  it('wal-check job needs archived WAL', async () => {
    const walRepository = await fileRepository('wal');
    const walPlan = await writePlan({
      databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }],
      repositories: [walRepository],
      jobs: [{ name: 'wal', type: 'wal-check', cron: '*/5 * * * *' }],
      server: { stateDir },
    });
    const empty = await runCli(['--config', walPlan, 'serve', '--once', 'wal'], { env });
    expect(empty.code).toBe(4);
    expect(empty.stderr).toContain('drplan: error: database app: no archived WAL found in any repository');

    // wal push stores any file with a segment's name, so a zero-filled one replaces a real segment here.
    const segment = path.join(walRepository.dir, '..', `segment-${path.basename(walRepository.dir)}`);
    await mkdir(segment);
    await writeFile(path.join(segment, '000000010000000000000001'), Buffer.alloc(16 * 1024 * 1024));
    const push = await runCli(['--config', walPlan, 'wal', 'push', '--database', 'app', path.join(segment, '000000010000000000000001')], { env });
    expect(push.code, push.stderr).toBe(0);
    const archived = await runCli(['--config', walPlan, 'serve', '--once', 'wal'], { env });
    expect(archived.code, archived.stderr).toBe(0);
    expect(archived.stderr).toContain('job wal succeeded: 1 archived WAL files, 0 base backup chains continuous, newest 000000010000000000000001');
    await rm(segment, { recursive: true, force: true });
  });

  it('invalid job config exits 2', async () => {
    const bad = await writePlan({
      databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }],
      repositories: [local],
      jobs: [{ name: 'nightly', type: 'backup', cron: '0 25 * * *' }],
    });
    const result = await runCli(['--config', bad, 'serve', '--once', 'nightly'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('jobs[0] (nightly).cron "0 25 * * *" is invalid');
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Returns the value of one series in Prometheus text format. */
function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`series ${series} not found in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

/** Drops the fields that change between two reads of the status (the time and the ages measured against it). */
function withoutTimes(report: unknown): unknown {
  return JSON.parse(JSON.stringify(report), (key, value: unknown) => (key === 'at' || key === 'measuredSeconds' ? undefined : value));
}
