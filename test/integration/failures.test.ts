/**
 * Bad input and failures: each gets its exit code and a message naming the
 * value involved, and none leaves a committed backup or a partial object.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli, startCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { listProcesses, waitForChild } from '../helpers/procs.js';
import { s3Client, startS3Server, type S3TestServer } from '../helpers/s3.js';

describe('failures', () => {
  let cluster: ThrowawayCluster;
  let s3: S3TestServer;
  let local: TestRepository & { dir: string };
  let offsite: TestRepository;
  let env: Record<string, string>;
  let databases: { name: string; url: string }[];
  let planFile: string;

  beforeAll(async () => {
    [cluster, s3] = await Promise.all([startThrowawayCluster(), startS3Server()]);
    await s3.createBucket('app-backups');
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g");
    local = await fileRepository('local');
    offsite = s3Repository('offsite', s3, 'app-backups');
    databases = [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}') }];
    env = { ...s3Env(s3), APP_PASSWORD: cluster.password };
    planFile = await writePlan({ databases, repositories: [local, offsite] });
  });

  afterAll(async () => {
    await Promise.all([cluster?.stop(), s3?.stop()]);
  });

  async function localFiles(): Promise<string[]> {
    return readdir(path.join(local.dir, 'backups', 'app')).catch(() => []);
  }

  async function s3Keys(): Promise<string[]> {
    const client = s3Client(s3.endpoint, s3.region, s3);
    const page = await client.send(new ListObjectsV2Command({ Bucket: 'app-backups' }));
    client.destroy();
    return (page.Contents ?? []).map((o) => o.Key!);
  }

  it('unknown config field exits 2', async () => {
    const file = await writePlan({ databases, repositories: [local], backups: { compression: 'zstd' } });
    const result = await runCli(['--config', file, 'backup'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown field backups');
  });

  it('bad config value names field', async () => {
    const file = await writePlan({ databases, repositories: [{ name: 'x', url: 'ftp://host/backups' }] });
    const result = await runCli(['--config', file, 'list'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('repositories[0].url: "ftp://host/backups" is invalid; expected file:///absolute/path or s3://bucket/prefix');
  });

  it('unreachable database exits 3', async () => {
    const port = await closedPort();
    const file = await writePlan({ databases: [{ name: 'app', url: `postgres://postgres:secret-pw@127.0.0.1:${port}/app` }], repositories: [local] });
    const result = await runCli(['--config', file, 'backup'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`cannot connect to PostgreSQL at 127.0.0.1:${port}`);
    expect(result.stderr).not.toContain('secret-pw');
  });

  it('wrong password exits 3', async () => {
    const file = await writePlan({ databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, 'wrong-password-123') }], repositories: [local] });
    const result = await runCli(['--config', file, 'backup'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('password authentication failed for user "postgres"');
    expect(result.stderr).not.toContain('wrong-password-123');
    expect(await localFiles()).toEqual([]);
  });

  it('missing bucket exits 3', async () => {
    const file = await writePlan({ databases, repositories: [s3Repository('offsite', s3, 'no-such-bucket')] });
    const result = await runCli(['--config', file, 'backup'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`bucket no-such-bucket does not exist at ${s3.endpoint}`);
  });

  it('s3 endpoint down exits 3', async () => {
    const port = await closedPort();
    const down = { ...offsite, endpoint: `http://127.0.0.1:${port}` };
    const file = await writePlan({ databases, repositories: [local, down] });
    const result = await runCli(['--config', file, 'backup'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`cannot reach http://127.0.0.1:${port}`);
    expect(await localFiles()).toEqual([]);
  });

  it('unknown backup id exits 5', async () => {
    const verify = await runCli(['--config', planFile, 'verify', 'backup_19990101_000000'], { env });
    expect(verify.code).toBe(5);
    expect(verify.stderr).toContain('backup backup_19990101_000000 not found for database app in any repository');
    const restore = await runCli(['--config', planFile, 'restore', 'backup_19990101_000000', '--target-database', 'x'], { env });
    expect(restore.code).toBe(5);
  });

  it('tiny backup is flagged', async () => {
    await query(cluster.url(), 'CREATE DATABASE empty_db');
    const file = await writePlan({ databases: [{ name: 'empty', url: cluster.url('empty_db') }], repositories: [await fileRepository('tiny')] });
    const backup = await runCli(['--config', file, 'backup', '--json'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    const meta = JSON.parse(backup.stdout) as { storedBytes: number; flags: { code: string; message: string }[] };
    expect(meta.flags).toEqual([{ code: 'size.tiny', message: `stored size ${meta.storedBytes} bytes is below the minimum of 1024 bytes` }]);
    const verify = await runCli(['--config', file, 'verify', 'latest'], { env });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('WARN sanity: backup ');
    expect(verify.stderr).toContain(`warning: backup `);
    expect(verify.stderr).toContain(`stored size ${meta.storedBytes} bytes is below the minimum of 1024 bytes; run \`drplan verify --deep\` to prove it`);
    const status = await runCli(['--config', file, 'status', '--json'], { env });
    expect(JSON.parse(status.stdout).databases[0].rpo.newestGoodBackup).toBeNull();

    const deep = await runCli(['--config', file, 'verify', '--deep', 'latest'], { env, timeoutMs: 120_000 });
    expect(deep.code, deep.stderr).toBe(0);
    const after = await runCli(['--config', file, 'verify', 'latest'], { env });
    expect(after.stdout).toContain('(accepted: a deep verification passed)');
    const accepted = await runCli(['--config', file, 'status', '--json'], { env });
    expect(JSON.parse(accepted.stdout).databases[0].rpo.newestGoodBackup).not.toBeNull();
  });

  it('list needs no database password', async () => {
    const result = await runCli(['--config', planFile, 'list'], { env: { ...env, APP_PASSWORD: undefined } });
    expect(result.code, result.stderr).toBe(0);
    const backup = await runCli(['--config', planFile, 'backup'], { env: { ...env, APP_PASSWORD: undefined } });
    expect(backup.code).toBe(2);
    expect(backup.stderr).toContain('databases[0].url uses ${APP_PASSWORD}, but the environment variable APP_PASSWORD is not set');
  });

  it('unsafe backup name exits 2', async () => {
    const result = await runCli(['--config', planFile, 'backup', '--name', '../escape'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid backup name "../escape"');
  });

  describe('with a committed backup', () => {
    let id: string;
    let meta: { dump: { key: string; sha256: string } };

    beforeAll(async () => {
      const backup = await runCli(['--config', planFile, 'backup', '--name', 'emergency_backup_20261204_031500', '--json'], { env });
      expect(backup.code, backup.stderr).toBe(0);
      meta = JSON.parse(backup.stdout);
      id = 'emergency_backup_20261204_031500';
    });

    it('colliding name exits 2', async () => {
      const result = await runCli(['--config', planFile, 'backup', '--name', id], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`a backup named ${id} already exists in repository local`);
    });

    it('metadata holds no password', async () => {
      const text = await readFile(path.join(local.dir, 'manual', 'app', `${id}.meta.json`), 'utf8');
      expect(text).not.toContain(cluster.password);
    });

    it('non-empty target needs --clean', async () => {
      await query(cluster.url(), 'CREATE DATABASE other_db');
      await query(cluster.url('other_db'), 'CREATE TABLE keep_me (id int)');
      const result = await runCli(['--config', planFile, 'restore', id, '--target-database', 'other_db'], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('target database other_db already exists and contains');
    });

    it('live database is no side target', async () => {
      const result = await runCli(['--config', planFile, 'restore', id, '--target-database', 'app', '--clean'], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('--target-database app is the live database app of the plan');
    });

    it('in-place rejects a target url', async () => {
      const result = await runCli(['--config', planFile, 'restore', id, '--in-place', '--yes', '--target-url', cluster.url()], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('--in-place restores over the database in the plan and takes no --target-url');
    });

    it('in-place without --yes exits 2', async () => {
      const result = await runCli(['--config', planFile, 'restore', id, '--in-place'], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('not confirmed because stdin is not a terminal');
      const list = await runCli(['--config', planFile, 'list', '--json'], { env });
      expect((JSON.parse(list.stdout) as { id: string }[]).map((b) => b.id)).toEqual([id]);
    });

    it('flipped byte fails verify and falls back', async () => {
      const file = path.join(local.dir, meta.dump.key);
      const bytes = await readFile(file);
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await writeFile(file, bytes);

      const verify = await runCli(['--config', planFile, 'verify', id], { env });
      expect(verify.code, verify.stderr).toBe(4);
      expect(verify.stderr).toContain(`repository local, object ${meta.dump.key}: SHA-256 mismatch: expected ${meta.dump.sha256}, got `);

      const restore = await runCli(['--config', planFile, 'restore', id, '--target-database', 'app_fallback'], { env });
      expect(restore.code, restore.stderr).toBe(0);
      expect(restore.stdout).toContain('from repository offsite');
      expect(restore.stderr).toContain('SHA-256 mismatch');
      const [row] = await query<{ n: string }>(cluster.url('app_fallback'), 'SELECT count(*) AS n FROM items');
      expect(row!.n).toBe('100');

      const localOnly = await writePlan({ databases, repositories: [local] });
      const refused = await runCli(['--config', localOnly, 'restore', id, '--target-database', 'app_refused'], { env });
      expect(refused.code).toBe(4);
      const [exists] = await query<{ n: string }>(cluster.url(), "SELECT count(*) AS n FROM pg_database WHERE datname = 'app_refused'");
      expect(exists!.n).toBe('0');
    });
  });

  describe('interrupted backups', () => {
    let locker: pg.Client;

    beforeAll(async () => {
      // An exclusive lock makes pg_dump wait, so it is still running when the test kills it.
      locker = new pg.Client({ connectionString: cluster.url('app') });
      await locker.connect();
    });

    afterAll(async () => {
      await locker?.end();
    });

    async function startBlockedBackup(name: string) {
      await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      const before = new Set(await s3Keys());
      const started = startCli(['--config', planFile, 'backup', '--name', name], { env });
      const pgDump = await waitForChild(started.child.pid!, 'pg_dump', '--format=custom');
      return { started, pgDump, before };
    }

    it('killed pg_dump commits nothing', async () => {
      const { started, pgDump, before } = await startBlockedBackup('killed_backup');
      expect(pgDump.argv.join(' ')).not.toContain(cluster.password);
      process.kill(pgDump.pid, 'SIGKILL');
      const result = await started.result;
      await locker.query('ROLLBACK');
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('step "dump database" failed: pg_dump failed: ');
      expect(result.stderr).toContain('was killed by SIGKILL');
      expect((await localFiles()).filter((f) => f.startsWith('killed_backup'))).toEqual([]);
      expect((await readdir(path.join(local.dir, 'manual', 'app'))).filter((f) => f.includes('killed_backup'))).toEqual([]);
      expect((await s3Keys()).filter((k) => !before.has(k) && !k.startsWith('drplan/events/'))).toEqual([]);
    });

    it('interrupt exits 130 and cleans up', async () => {
      const { started, pgDump, before } = await startBlockedBackup('interrupted_backup');
      started.child.kill('SIGINT');
      const result = await started.result;
      await locker.query('ROLLBACK');
      expect(result.code).toBe(130);
      expect(result.stderr).toContain('backup interrupted; nothing was committed');
      expect((await readdir(path.join(local.dir, 'manual', 'app'))).filter((f) => f.includes('interrupted_backup'))).toEqual([]);
      expect((await s3Keys()).filter((k) => !before.has(k) && !k.startsWith('drplan/events/'))).toEqual([]);
      expect((await listProcesses()).some((p) => p.pid === pgDump.pid)).toBe(false);
    });
  });
});

/** Returns a loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
