/**
 * Deep verification of the Chinook backup: a real test restore into a
 * throwaway cluster, row counts against the metadata, the plan's checks, and
 * the record stored beside the backup on every repository.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli, startCli } from '../helpers/cli.js';
import { loadSqlFile, query } from '../helpers/pg.js';
import { waitForChild } from '../helpers/procs.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { startS3Server, type S3TestServer } from '../helpers/s3.js';

const chinookSql = fileURLToPath(new URL('../../testdata/chinook/chinook.sql', import.meta.url));

describe('deep verification', () => {
  let cluster: ThrowawayCluster;
  let s3: S3TestServer;
  let local: TestRepository & { dir: string };
  let offsite: TestRepository;
  let databases: { name: string; url: string }[];
  let env: Record<string, string>;
  let planFile: string;
  let backupId: string;

  beforeAll(async () => {
    [cluster, s3] = await Promise.all([startThrowawayCluster(), startS3Server()]);
    await s3.createBucket('verify-backups');
    await loadSqlFile(cluster, chinookSql);
    local = await fileRepository('local');
    offsite = s3Repository('offsite', s3, 'verify-backups');
    databases = [{ name: 'chinook', url: cluster.url('chinook').replace(cluster.password, '${CHINOOK_PASSWORD}') }];
    env = { ...s3Env(s3), CHINOOK_PASSWORD: cluster.password };
    const checks = [
      { name: 'tracks present', sql: 'SELECT count(*) FROM track', expect: 3503 },
      { name: 'some invoices', sql: 'SELECT invoice_id FROM invoice LIMIT 5', minRows: 5 },
    ];
    planFile = await writePlan({ databases, repositories: [local, offsite], verify: { checks } });
    const backup = await runCli(['--config', planFile, 'backup'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    backupId = backup.stdout.trim();
  });

  afterAll(async () => {
    await Promise.all([cluster?.stop(), s3?.stop()]);
  });

  it('passes and records restore time', async () => {
    const result = await runCli(['--config', planFile, 'verify', '--deep', 'latest', '--json'], { env, timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const record = JSON.parse(result.stdout) as { ok: boolean; kind: string; restoreMs: number; target: string; tables: { ok: boolean }[]; checks: { name: string; ok: boolean }[] };
    expect(record.ok).toBe(true);
    expect(record.kind).toBe('deep');
    expect(record.restoreMs).toBeGreaterThan(0);
    expect(record.target).toBe('throwaway PostgreSQL 15 cluster');
    expect(record.tables).toHaveLength(11);
    expect(record.tables.every((t) => t.ok)).toBe(true);
    expect(record.checks.map((c) => [c.name, c.ok])).toEqual([
      ['tracks present', true],
      ['some invoices', true],
    ]);
  });

  it('stores the record on both repositories', async () => {
    const files = await readdir(path.join(local.dir, 'backups', 'chinook'));
    expect(files.filter((f) => f.startsWith(`${backupId}.verify-`))).toHaveLength(1);
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    const [row] = JSON.parse(list.stdout) as { lastVerification: { kind: string; ok: boolean; restoreMs: number } }[];
    expect(row!.lastVerification.kind).toBe('deep');
    expect(row!.lastVerification.ok).toBe(true);
    expect(row!.lastVerification.restoreMs).toBeGreaterThan(0);
    const s3Only = await writePlan({ databases, repositories: [offsite] });
    const s3List = await runCli(['--config', s3Only, 'list', '--json'], { env });
    const [s3Row] = JSON.parse(s3List.stdout) as { lastVerification: { kind: string; ok: boolean } }[];
    expect(s3Row!.lastVerification).toMatchObject({ kind: 'deep', ok: true });
  });

  it('uses the verify server when named', async () => {
    const serverPlan = await writePlan({ databases, repositories: [local], verify: { url: cluster.url().replace(cluster.password, '${CHINOOK_PASSWORD}') } });
    const result = await runCli(['--config', serverPlan, 'verify', '--deep', backupId, '--json'], { env, timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const record = JSON.parse(result.stdout) as { ok: boolean; target: string };
    expect(record.target).toBe(`verify server 127.0.0.1:${cluster.port}`);
    const leftovers = await query<{ datname: string }>(cluster.url(), "SELECT datname FROM pg_database WHERE datname LIKE 'drplan_verify_%'");
    expect(leftovers).toEqual([]);
  });

  it('interrupted run records nothing', async () => {
    const before = await readdir(path.join(local.dir, 'backups', 'chinook'));
    const started = startCli(['--config', planFile, 'verify', '--deep', backupId], { env, timeoutMs: 120_000 });
    // Interrupt while the scratch cluster is being created, whatever the machine's speed.
    await waitForChild(started.child.pid!, 'initdb', '--auth=scram-sha-256');
    started.child.kill('SIGINT');
    const result = await started.result;
    expect(result.code).toBe(130);
    expect(await readdir(path.join(local.dir, 'backups', 'chinook'))).toEqual(before);
  });

  it('failing plan check fails', async () => {
    const strict = await writePlan({ databases, repositories: [local], verify: { checks: [{ name: 'too many tracks', sql: 'SELECT count(*) FROM track', expect: 4000 }] } });
    const result = await runCli(['--config', strict, 'verify', '--deep', backupId], { env, timeoutMs: 120_000 });
    expect(result.code).toBe(4);
    expect(result.stdout).toContain('FAIL check too many tracks: expected 4000, got "3503"');
    expect(result.stderr).toContain('check "too many tracks" failed: expected 4000, got "3503"');
  });

  it('row count mismatch names the table', async () => {
    const localOnly = await writePlan({ databases, repositories: [local] });
    const metaFile = path.join(local.dir, 'backups', 'chinook', `${backupId}.meta.json`);
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as { tables: { name: string; rows: number }[] };
    meta.tables.find((t) => t.name === 'track')!.rows = 3502;
    await writeFile(metaFile, JSON.stringify(meta));
    const result = await runCli(['--config', localOnly, 'verify', '--deep', backupId], { env, timeoutMs: 120_000 });
    expect(result.code).toBe(4);
    expect(result.stderr).toContain('table public.track: 3503 rows after restore, metadata records 3502');
    const list = await runCli(['--config', localOnly, 'list', '--json'], { env });
    const [row] = JSON.parse(list.stdout) as { lastVerification: { ok: boolean } }[];
    expect(row!.lastVerification.ok).toBe(false);
  });
});
