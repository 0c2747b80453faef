/**
 * Two backups of one database never run at once. The second one fails and
 * names the holder, or waits when backup.lockTimeout allows it. A lock left
 * by a killed process is taken over with a warning.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli, startCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, writePlan, type TestRepository } from '../helpers/plan.js';
import { listProcesses, waitForChild } from '../helpers/procs.js';

describe('database lock', () => {
  let cluster: ThrowawayCluster;
  let local: TestRepository & { dir: string };
  let env: Record<string, string>;
  let databases: { name: string; url: string }[];
  let planFile: string;
  let locker: pg.Client;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    local = await fileRepository('local');
    databases = [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}') }];
    env = { APP_PASSWORD: cluster.password };
    planFile = await writePlan({ databases, repositories: [local] });
    locker = new pg.Client({ connectionString: cluster.url('app') });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.end();
    await cluster?.stop();
  });

  beforeEach(async () => {
    // An exclusive table lock holds the first backup inside pg_dump, so the runs overlap.
    await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
  });

  afterEach(async () => {
    // Release the table even when a test failed half-way, so later tests start clean.
    await locker.query('ROLLBACK');
  });

  /** Counts the dumps of this test's cluster; other test files run their own dumps at the same time. */
  async function countDumps(): Promise<number> {
    const ofThisCluster = (argv: string[]) => argv.some((arg) => arg.startsWith('--dbname=') && arg.includes(`:${cluster.port}/`));
    return (await listProcesses()).filter((p) => p.argv[0]?.endsWith('/pg_dump') && p.argv.includes('--format=custom') && ofThisCluster(p.argv)).length;
  }

  it('second backup refuses naming holder', async () => {
    const first = startCli(['--config', planFile, 'backup', '--name', 'first_run'], { env });
    await waitForChild(first.child.pid!, 'pg_dump', '--format=custom');
    const second = await runCli(['--config', planFile, 'backup', '--name', 'second_run'], { env });
    expect(second.code).toBe(7);
    expect(second.stderr).toContain(`database app is locked by a backup on host `);
    expect(second.stderr).toContain(`(pid ${first.child.pid}) started `);
    expect(await countDumps()).toBe(1);
    await locker.query('ROLLBACK');
    const result = await first.result;
    expect(result.code, result.stderr).toBe(0);
  });

  it('second backup waits with a timeout', async () => {
    const waitingPlan = await writePlan({ databases, repositories: [local], backup: { lockTimeout: '60s' } });
    const first = startCli(['--config', waitingPlan, 'backup', '--name', 'first_wait'], { env });
    await waitForChild(first.child.pid!, 'pg_dump', '--format=custom');
    const second = startCli(['--config', waitingPlan, 'backup', '--name', 'second_wait'], { env });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await countDumps()).toBe(1);
    expect(second.child.exitCode).toBeNull();
    await locker.query('ROLLBACK');
    const [firstResult, secondResult] = await Promise.all([first.result, second.result]);
    expect(firstResult.code, firstResult.stderr).toBe(0);
    expect(secondResult.code, secondResult.stderr).toBe(0);
    expect(secondResult.stderr).toContain('waiting for the database lock');
  });

  it('prune waits for a running backup', async () => {
    // Earlier tests left several committed backups; keepLast 1 makes prune want to delete.
    await locker.query('ROLLBACK');
    const prunePlan = await writePlan({ databases, repositories: [{ ...local, retention: { keepLast: 1 } }] });
    await locker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
    const backup = startCli(['--config', prunePlan, 'backup', '--name', 'during_prune'], { env });
    await waitForChild(backup.child.pid!, 'pg_dump', '--format=custom');
    const before = await runCli(['--config', prunePlan, 'list', '--json'], { env });
    const prune = await runCli(['--config', prunePlan, 'prune'], { env });
    expect(prune.code).toBe(7);
    expect(prune.stderr).toContain(`database app is locked by a backup on host `);
    const after = await runCli(['--config', prunePlan, 'list', '--json'], { env });
    expect(after.stdout).toBe(before.stdout);
    await locker.query('ROLLBACK');
    expect((await backup.result).code).toBe(0);
  });

  it('stale lock is taken over', async () => {
    const crashed = startCli(['--config', planFile, 'backup', '--name', 'crashed_run'], { env });
    await waitForChild(crashed.child.pid!, 'pg_dump', '--format=custom');
    crashed.child.kill('SIGKILL');
    await crashed.result;
    await locker.query('ROLLBACK');
    const lock = JSON.parse(await readFile(path.join(local.dir, 'locks', 'app.json'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(crashed.child.pid);

    const next = await runCli(['--config', planFile, 'backup', '--name', 'after_crash'], { env });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`taking over a stale lock: backup on host `);
    expect(next.stderr).toContain(`(pid ${crashed.child.pid})`);
    await expect(readFile(path.join(local.dir, 'locks', 'app.json'))).rejects.toThrow('ENOENT');
  });
});
