/**
 * In-place restore: a committed pre_restore backup of the live database comes
 * first, then the chosen backup replaces its contents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

describe('in-place restore', () => {
  let cluster: ThrowawayCluster;
  let planFile: string;
  let env: Record<string, string>;
  let backupId: string;
  let restore: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 50) g");
    const repo = await fileRepository('local');
    planFile = await writePlan({ databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}') }], repositories: [repo] });
    env = { APP_PASSWORD: cluster.password };
    const backup = await runCli(['--config', planFile, 'backup'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    backupId = backup.stdout.trim();
    // The accident: rows deleted and changed after the backup.
    await query(cluster.url('app'), "DELETE FROM orders WHERE id > 40; UPDATE orders SET note = 'changed' WHERE id = 1");
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('dry run changes nothing', async () => {
    const dryRun = await runCli(['--config', planFile, 'restore', backupId, '--in-place', '--dry-run'], { env });
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stdout).toContain(`dry run: would restore backup ${backupId}`);
    const [row] = await query<{ n: string }>(cluster.url('app'), 'SELECT count(*) AS n FROM orders');
    expect(row!.n).toBe('40');
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    expect(JSON.parse(list.stdout)).toHaveLength(1);
  });

  it('restores the backed-up rows', async () => {
    restore = await runCli(['--config', planFile, 'restore', backupId, '--in-place', '--yes'], { env });
    expect(restore.code, restore.stderr).toBe(0);
    const rows = await query<{ n: string; note: string }>(cluster.url('app'), 'SELECT count(*) AS n, min(note) FILTER (WHERE id = 1) AS note FROM orders');
    expect(rows).toEqual([{ n: '50', note: 'order 1' }]);
  });

  it('lists the pre-restore backup', async () => {
    const safety = /safety backup committed: (pre_restore_\d{8}_\d{6})/.exec(restore.stdout)?.[1];
    expect(safety).toBeDefined();
    const list = await runCli(['--config', planFile, 'list', '--json'], { env });
    const rows = JSON.parse(list.stdout) as { id: string; origin: string }[];
    expect(rows.map((r) => [r.id, r.origin])).toEqual([
      [safety, 'pre_restore'],
      [backupId, 'scheduled'],
    ]);
  });

  it('latest skips the pre-restore backup', async () => {
    const dryRun = await runCli(['--config', planFile, 'restore', 'latest', '--target-database', 'x', '--dry-run'], { env });
    expect(dryRun.stdout).toContain(`would restore backup ${backupId} `);
  });

  it('pre-restore backup holds the replaced state', async () => {
    const safety = /safety backup committed: (pre_restore_\d{8}_\d{6})/.exec(restore.stdout)![1]!;
    const restoreSafety = await runCli(['--config', planFile, 'restore', safety, '--target-database', 'app_before'], { env });
    expect(restoreSafety.code, restoreSafety.stderr).toBe(0);
    const rows = await query<{ n: string; note: string }>(cluster.url('app_before'), 'SELECT count(*) AS n, min(note) FILTER (WHERE id = 1) AS note FROM orders');
    expect(rows).toEqual([{ n: '40', note: 'changed' }]);
  });
});
