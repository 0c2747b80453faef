/**
 * Physical base backups against a throwaway cluster that archives its WAL
 * into the repositories: commit and metadata, checksum and deep
 * verification, extraction and a server started from the extracted copy,
 * and the refusals and failures that must commit nothing.
 *
 * The cluster archives with `drplan wal push` and the restored copy
 * recovers with `drplan wal fetch`, both with the same plan.
 */
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBackup, readCatalog } from '../../src/backup/catalog.js';
import type { PhysicalMetadata } from '../../src/backup/metadata.js';
import { extractPhysicalBackup } from '../../src/backup/physical-restore.js';
import { loadPlan } from '../../src/config/load.js';
import { createContext, type PlanContext } from '../../src/context.js';
import { UsageError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';
import { serverOwner, startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runProcess } from '../../src/util/process.js';
import { repoRoot, runCli, startCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { waitForChild } from '../helpers/procs.js';
import { startS3Server, type S3TestServer } from '../helpers/s3.js';

const DRPLAN = path.join(repoRoot, 'bin', 'drplan.js');

describe('physical backup', () => {
  let cluster: ThrowawayCluster;
  let plain: ThrowawayCluster;
  let s3: S3TestServer;
  let local: TestRepository & { dir: string };
  let offsite: TestRepository;
  let env: Record<string, string>;
  let planFile: string;
  let work: string;
  /** While this file exists, the cluster's archive_command fails. */
  let blockFile: string;
  let meta: PhysicalMetadata;

  beforeAll(async () => {
    s3 = await startS3Server();
    await s3.createBucket('physical');
    local = await fileRepository('local');
    offsite = s3Repository('offsite', s3, 'physical');
    env = s3Env(s3);
    // The server runs as the postgres system user, which runs archive_command: it reads the plan and writes the file repository.
    work = await mkdtemp(path.join(tmpdir(), 'drplan-physical-'));
    await chmod(work, 0o755);
    await chmod(local.dir, 0o777);
    blockFile = path.join(work, 'block-archiving');
    planFile = path.join(work, 'drplan.yaml');
    [cluster, plain] = await Promise.all([
      startThrowawayCluster({ settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `test ! -e ${blockFile} && ${walCommand('push --database app %p')}` } }),
      startThrowawayCluster(),
    ]);
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), 'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 20000) g');
    const written = await writePlan({ databases: [{ name: 'app', url: cluster.url('app') }], repositories: [local, offsite], backup: { archiveTimeout: '20s' } });
    await writeFile(planFile, await readFile(written));
    await chmod(planFile, 0o644);
  });

  afterAll(async () => {
    await Promise.all([cluster?.stop(), plain?.stop(), s3?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('commits with WAL position', async () => {
    const result = await runCli(['--config', planFile, 'backup', '--kind', 'physical', '--json'], { env });
    expect(result.code, result.stderr).toBe(0);
    meta = JSON.parse(result.stdout) as PhysicalMetadata;
    expect(meta.kind).toBe('physical');
    expect(meta.format).toBe('tar');
    expect(meta.tool.program).toBe('pg_basebackup');
    expect(meta.archive.key).toBe(`backups/app/${meta.id}.base.tar.zst`);
    expect(meta.manifest.key).toBe(`backups/app/${meta.id}.manifest.zst`);

    const [control] = await query<{ id: string }>(cluster.url(), 'SELECT system_identifier::text AS id FROM pg_control_system()');
    expect(meta.wal.systemIdentifier).toBe(control!.id);
    expect(meta.wal.timeline).toBe(1);
    expect(meta.wal.walSegmentSize).toBe(16 * 1024 * 1024);
    // pg_walfile_name names the segment holding the byte before an LSN, as PostgreSQL does for a backup's stop point.
    const [names] = await query<{ first: string; last: string }>(cluster.url(), 'SELECT pg_walfile_name($1) AS first, pg_walfile_name($2) AS last', [meta.wal.startLsn, meta.wal.stopLsn]);
    expect(meta.wal.firstSegment).toBe(names!.first);
    expect(meta.wal.lastSegment).toBe(names!.last);
    const [order] = await query<{ ok: boolean }>(cluster.url(), 'SELECT $1::pg_lsn < $2::pg_lsn AS ok', [meta.wal.startLsn, meta.wal.stopLsn]);
    expect(order!.ok).toBe(true);
    expect(await readdir(path.join(local.dir, 'wal', 'app'))).toContain(`${meta.wal.lastSegment}.zst`);
  });

  it('stores archive and manifest on both repositories', async () => {
    const files = await readdir(path.join(local.dir, 'backups', 'app'));
    expect(files.sort()).toEqual([`${meta.id}.base.tar.zst`, `${meta.id}.manifest.zst`, `${meta.id}.meta.json`]);
    const manifest = await runProcess('zstd', ['-q', '-d', '-c', path.join(local.dir, meta.manifest.key)], { operation: 'read manifest' });
    expect(JSON.parse(manifest)['PostgreSQL-Backup-Manifest-Version']).toBe(1);

    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const rows = JSON.parse(list.stdout) as { id: string; kind: string; repositories: string[] }[];
    expect(rows).toEqual([expect.objectContaining({ id: meta.id, kind: 'physical', repositories: ['local', 'offsite'] })]);
  });

  it('counts for measured RPO', async () => {
    const status = await runCli(['--config', planFile, 'status', '--json'], { env });
    const report = JSON.parse(status.stdout) as { databases: { rpo: { newestGoodBackup: { id: string } | null } }[] };
    expect(report.databases[0]!.rpo.newestGoodBackup?.id).toBe(meta.id);
  });

  it('passes checksum verification', async () => {
    const result = await runCli(['--config', planFile, 'verify', meta.id], { env });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/ok {3}manifest: repository local, object .*manifest\.zst: SHA-256 matches/);
    expect(result.stdout).toMatch(/the tar reader read the archive \(\d+ entries\)/);
  });

  it('passes deep verification', async () => {
    const result = await runCli(['--config', planFile, 'verify', '--deep', meta.id, '--json'], { env, timeoutMs: 120_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const record = JSON.parse(result.stdout) as { ok: boolean; kind: string; checks: { name: string; ok: boolean; detail: string }[] };
    expect(record.ok).toBe(true);
    expect(record.kind).toBe('deep');
    expect(record.checks).toEqual([{ name: 'pg_verifybackup', ok: true, detail: 'backup successfully verified' }]);
    const stored = (await readdir(path.join(local.dir, 'backups', 'app'))).filter((f) => f.includes('.verify-'));
    expect(stored.length).toBe(2);
    expect((await readdir(tmpdir())).filter((f) => f.startsWith('drplan-verify-'))).toEqual([]);
  });

  it('restores data through extraction', async () => {
    await query(cluster.url('app'), "INSERT INTO items VALUES (-1, 'after the backup')");
    await query(cluster.url(), 'SELECT pg_switch_wal()');
    const context = await openContext();
    const entry = findBackup(await readCatalog(context, 'app'), meta.id, 'app');
    const owner = await serverOwner();
    const root = await mkdtemp(path.join(tmpdir(), 'drplan-extract-'));
    if (owner.uid !== undefined) await chown(root, owner.uid, owner.gid!);
    const dataDir = path.join(root, 'data');
    try {
      const extracted = await extractPhysicalBackup(context, entry, dataDir, new AbortController().signal);
      expect(extracted.repository).toBe('local');
      expect(JSON.parse(await readFile(extracted.manifestPath, 'utf8'))['PostgreSQL-Backup-Manifest-Version']).toBe(1);
      await waitForArchived(`${await currentSegmentBefore()}.zst`);
      const port = await startRestoredServer(root, dataDir, owner);
      const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/app`;
      const [counts] = await query<{ n: string; late: string }>(url, "SELECT count(*) AS n, count(*) FILTER (WHERE note = 'after the backup') AS late FROM items");
      expect(Number(counts!.n)).toBe(20001);
      expect(Number(counts!.late)).toBe(1);
      await runProcess(path.join(cluster.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], { operation: 'stop restored server', ...owner });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('rejects non-empty directory', async () => {
    const context = await openContext();
    const entry = findBackup(await readCatalog(context, 'app'), meta.id, 'app');
    const dir = await mkdtemp(path.join(tmpdir(), 'drplan-occupied-'));
    await writeFile(path.join(dir, 'PG_VERSION'), '15\n');
    try {
      const error = await extractPhysicalBackup(context, entry, dir, new AbortController().signal).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).exitCode).toBe(2);
      expect((error as UsageError).message).toBe(`data directory ${dir} is not empty (1 entries, such as PG_VERSION)`);
      expect(await readdir(dir)).toEqual(['PG_VERSION']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects server without archiving', async () => {
    const plan = await writePlan({ databases: [{ name: 'plain', url: plain.url() }], repositories: [local] });
    const result = await runCli(['--config', plan, 'backup', '--kind', 'physical'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('does not archive its WAL: archive_mode is off (must be on), archive_command is empty; a physical backup without archived WAL cannot be restored');
    expect(result.stderr).toContain("hint: Set wal_level = replica, archive_mode = on and archive_command = 'drplan wal push --database NAME %p'");
    expect(await readdir(path.join(local.dir, 'backups'))).toEqual(['app']);
  });

  it('rejects unknown kind', async () => {
    const result = await runCli(['--config', planFile, 'backup', '--kind', 'incremental'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('drplan: error: invalid --kind "incremental"');
    expect(result.stderr).toContain('hint: Use --kind logical or --kind physical.');
  });

  it('fails verify after flipped byte', async () => {
    const copy = path.join(local.dir, meta.archive.key);
    const original = await readFile(copy);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x40;
    await writeFile(copy, flipped);
    try {
      const result = await runCli(['--config', planFile, 'verify', meta.id], { env });
      expect(result.code).toBe(4);
      expect(result.stdout).toMatch(/FAIL sha256: repository local, object .*base\.tar\.zst: SHA-256 mismatch/);
      expect(result.stdout).toMatch(/ok {3}offsite/);
    } finally {
      await writeFile(copy, original);
    }
  });

  it('fails when a repository lacks the WAL', async () => {
    // The server archives into local and offsite only, so the stop segment never reaches the third repository.
    const other = await fileRepository('other');
    const plan = await writePlan({ databases: [{ name: 'app', url: cluster.url('app') }], repositories: [local, other], backup: { archiveTimeout: '10s' } });
    // With the archiver caught up, the server archives the backup's end well within the timeout.
    await query(cluster.url(), 'SELECT pg_switch_wal()');
    await waitForArchived(`${await currentSegmentBefore()}.zst`);
    const result = await runCli(['--config', plan, 'backup', '--kind', 'physical', '--name', 'unarchived'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/WAL segment [0-9A-F]{24}, which contains the backup's stop LSN [0-9A-F]+\/[0-9A-F]+, is still missing from repository other after 10s/);
    expect(result.stderr).toContain('drplan wal push --database NAME %p');
    await expectOnlyFirstBackup();
    expect(await readdir(path.join(other.dir, 'manual', 'app')).catch(() => [])).toEqual([]);
  });

  it('commits nothing when pg_basebackup is killed', async () => {
    await writeFile(blockFile, '');
    try {
      const started = startCli(['--config', planFile, 'backup', '--kind', 'physical', '--name', 'killed'], { env });
      const child = await waitForChild(started.child.pid!, 'pg_basebackup', '--format=tar');
      await waitForBlockedArchiver();
      process.kill(child.pid, 'SIGKILL');
      const result = await started.result;
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('pg_basebackup was killed by SIGKILL');
      await expectOnlyFirstBackup();
    } finally {
      await rm(blockFile, { force: true });
    }
  });

  it('commits nothing when interrupted', async () => {
    await writeFile(blockFile, '');
    try {
      const started = startCli(['--config', planFile, 'backup', '--kind', 'physical', '--name', 'interrupted'], { env });
      await waitForChild(started.child.pid!, 'pg_basebackup', '--format=tar');
      await waitForBlockedArchiver();
      started.child.kill('SIGINT');
      const result = await started.result;
      expect(result.code).toBe(130);
      expect(result.stderr).toContain('nothing was committed');
      await expectOnlyFirstBackup();
    } finally {
      await rm(blockFile, { force: true });
    }
  });

  it('times out when WAL is not archived', async () => {
    await writeFile(blockFile, '');
    const plan = await writePlan({ databases: [{ name: 'app', url: cluster.url('app') }], repositories: [local, offsite], backup: { archiveTimeout: '3s' } });
    try {
      const result = await runCli(['--config', plan, 'backup', '--kind', 'physical', '--name', 'stalled'], { env });
      expect(result.code).toBe(3);
      expect(result.stderr).toMatch(/timed out after 3s waiting for PostgreSQL to archive the WAL segment that ends the backup; the archiver last failed on [0-9A-F]{24}/);
      expect(result.stderr).toContain('Check archive_command');
      await expectOnlyFirstBackup();
    } finally {
      await rm(blockFile, { force: true });
    }
  });

  /**
   * Returns a shell command that runs drplan's `wal` subcommand with the plan.
   * The server's environment lacks the S3 settings, so they are set here;
   * s3rver accepts only its fixed test key, which is no secret.
   */
  function walCommand(subcommand: string): string {
    const variables = Object.entries(env).map(([name, value]) => `${name}=${value}`).join(' ');
    return `${variables} ${process.execPath} ${DRPLAN} --config ${planFile} wal ${subcommand}`;
  }

  async function openContext(): Promise<PlanContext> {
    Object.assign(process.env, env);
    return createContext(await loadPlan(planFile, { ...process.env, ...env }), silentLogger);
  }

  /** Returns the segment that pg_switch_wal just closed. */
  async function currentSegmentBefore(): Promise<string> {
    const [row] = await query<{ name: string }>(cluster.url(), 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
    const name = row!.name;
    // After a switch the current LSN starts a new segment, so the closed one is the one before it.
    const low = parseInt(name.slice(16), 16);
    return `${name.slice(0, 16)}${(low - 1).toString(16).toUpperCase().padStart(8, '0')}`;
  }

  async function waitForArchived(file: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!(await readdir(path.join(local.dir, 'wal', 'app')).catch(() => [] as string[])).includes(file)) {
      if (Date.now() > deadline) throw new Error(`${file} was not archived within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits until the archiver has failed at least once, so pg_basebackup waits for it. */
  async function waitForBlockedArchiver(): Promise<void> {
    const [before] = await query<{ n: string }>(cluster.url(), 'SELECT failed_count AS n FROM pg_stat_archiver');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [now] = await query<{ n: string }>(cluster.url(), 'SELECT failed_count AS n FROM pg_stat_archiver');
      if (Number(now!.n) > Number(before!.n)) return;
      if (Date.now() > deadline) throw new Error('the archiver did not fail within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function expectOnlyFirstBackup(): Promise<void> {
    const files = (await readdir(path.join(local.dir, 'backups', 'app'))).filter((f) => !f.includes('.verify-'));
    expect(files.sort()).toEqual([`${meta.id}.base.tar.zst`, `${meta.id}.manifest.zst`, `${meta.id}.meta.json`]);
    expect(await readdir(path.join(local.dir, 'manual', 'app')).catch(() => [])).toEqual([]);
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    expect((JSON.parse(list.stdout) as { id: string }[]).map((r) => r.id)).toEqual([meta.id]);
  }

  /** Starts PostgreSQL on the extracted copy, recovering from the archived WAL, and returns its port. */
  async function startRestoredServer(root: string, dataDir: string, owner: { uid?: number; gid?: number }): Promise<number> {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const settings = [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      "archive_mode = 'off'",
      `restore_command = '${walCommand('fetch --database app %f %p')}'`,
    ];
    await writeFile(path.join(dataDir, 'postgresql.auto.conf'), `${settings.join('\n')}\n`);
    await writeFile(path.join(dataDir, 'recovery.signal'), '');
    await mkdir(path.join(dataDir, 'pg_wal'), { recursive: true });
    if (owner.uid !== undefined) await runProcess('chown', ['-R', `${owner.uid}:${owner.gid}`, dataDir], { operation: 'chown' });
    const args = ['-D', dataDir, '-l', path.join(root, 'server.log'), '-w', '-t', '60', 'start'];
    await runProcess(path.join(cluster.binDir, 'pg_ctl'), args, { operation: 'start restored server', ...owner });
    // Recovery replays the archive to its end, then the server promotes and accepts writes.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/postgres`;
      const [row] = await query<{ recovering: boolean }>(url, 'SELECT pg_is_in_recovery() AS recovering');
      if (!row!.recovering) return port;
      if (Date.now() > deadline) throw new Error('the restored server did not finish recovery within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
});
