/**
 * Round trip of the Chinook sample database through a local and an S3
 * repository, with every table compared row by row after the restore.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runProcess } from '../../src/util/process.js';
import { runCli } from '../helpers/cli.js';
import { loadSqlFile, tableFingerprints, type TableFingerprint } from '../helpers/pg.js';
import { fileRepository, s3Env, s3Repository, writePlan } from '../helpers/plan.js';
import { startS3Server, type S3TestServer } from '../helpers/s3.js';

const chinookSql = fileURLToPath(new URL('../../testdata/chinook/chinook.sql', import.meta.url));

describe('chinook round trip', () => {
  let cluster: ThrowawayCluster;
  let s3: S3TestServer;
  let local: Awaited<ReturnType<typeof fileRepository>>;
  let planFile: string;
  let s3FirstPlan: string;
  let env: Record<string, string>;
  let source: Record<string, TableFingerprint>;
  let meta: { id: string; sha256: string; storedBytes: number; dump: { key: string }; tables: { schema: string; name: string; rows: number }[]; repositories: string[] };

  beforeAll(async () => {
    [cluster, s3] = await Promise.all([startThrowawayCluster(), startS3Server()]);
    await s3.createBucket('chinook-backups');
    await loadSqlFile(cluster, chinookSql);
    source = await tableFingerprints(cluster.url('chinook'));
    local = await fileRepository('local');
    const databases = [{ name: 'chinook', url: cluster.url('chinook').replace(cluster.password, '${CHINOOK_PASSWORD}') }];
    const offsite = s3Repository('offsite', s3, 'chinook-backups');
    planFile = await writePlan({ databases, repositories: [local, offsite] });
    s3FirstPlan = await writePlan({ databases, repositories: [offsite, local] });
    env = { ...s3Env(s3), CHINOOK_PASSWORD: cluster.password };
    const backup = await runCli(['--config', planFile, 'backup', '--json'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    meta = JSON.parse(backup.stdout);
  });

  afterAll(async () => {
    await Promise.all([cluster?.stop(), s3?.stop()]);
  });

  it('records row counts of every table', () => {
    const counts = Object.fromEntries(meta.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));
    expect(Object.keys(counts)).toHaveLength(11);
    for (const [table, fingerprint] of Object.entries(source)) expect(counts[table], table).toBe(fingerprint.rows);
    expect(counts['public.track']).toBe(3503);
  });

  it('stores the object on both repositories', () => {
    expect(meta.repositories).toEqual(['local', 'offsite']);
    expect(meta.id).toMatch(/^backup_\d{8}_\d{6}$/);
  });

  it('local object matches the recorded sha256', async () => {
    const bytes = await readFile(path.join(local.dir, meta.dump.key));
    expect(bytes.length).toBe(meta.storedBytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(meta.sha256);
  });

  it('leaves no temporary files', async () => {
    const files = await readdir(path.join(local.dir, 'backups', 'chinook'));
    expect(files.sort()).toEqual([`${meta.id}.dump.zst`, `${meta.id}.globals.sql.zst`, `${meta.id}.meta.json`]);
  });

  it('lists the backup on both repositories', async () => {
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as { id: string; repositories: string[] }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).toBe(meta.id);
    expect(rows[0]!.repositories).toEqual(['local', 'offsite']);
  });

  it('verify passes on both copies', async () => {
    const verify = await runCli(['--config', planFile, 'verify', 'latest', '--json'], { env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const result = JSON.parse(verify.stdout) as { ok: boolean; copies: { repository: string; ok: boolean }[] };
    expect(result.ok).toBe(true);
    expect(result.copies.map((c) => [c.repository, c.ok])).toEqual([
      ['local', true],
      ['offsite', true],
    ]);
  });

  it('restores identical tables from local', async () => {
    const restore = await runCli(['--config', planFile, 'restore', meta.id, '--target-database', 'chinook_local', '--jobs', '2'], { env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toContain('from repository local');
    expect(restore.stdout).toContain('recovery point');
    expect(await tableFingerprints(cluster.url('chinook_local'))).toEqual(source);
  });

  it('restores identical tables from s3', async () => {
    const restore = await runCli(['--config', s3FirstPlan, 'restore', 'latest', '--target-database', 'chinook_s3'], { env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stdout).toContain('from repository offsite');
    expect(await tableFingerprints(cluster.url('chinook_s3'))).toEqual(source);
  });

  it('restores by hand with zstd and pg_restore', async () => {
    const plain = path.join(local.dir, 'by-hand.dump');
    await runProcess('zstd', ['-q', '-d', '-o', plain, path.join(local.dir, meta.dump.key)], { operation: 'zstd' });
    const listing = await runProcess(path.join(cluster.binDir, 'pg_restore'), ['--list', plain], { operation: 'pg_restore' });
    expect(listing).toContain('TABLE DATA public track');
  });

  it('restores selected tables only', async () => {
    const restore = await runCli(['--config', planFile, 'restore', 'latest', '--target-database', 'chinook_tables', '--table', 'artist', '--table', 'public.genre'], { env });
    expect(restore.code, restore.stderr).toBe(0);
    const restored = await tableFingerprints(cluster.url('chinook_tables'));
    expect(Object.keys(restored).sort()).toEqual(['public.artist', 'public.genre']);
    expect(restored['public.artist']).toEqual(source['public.artist']);
    expect(restored['public.genre']).toEqual(source['public.genre']);
  });
});
