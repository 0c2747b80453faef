/**
 * drplan status: measured RPO and RTO against the objectives, exit 6 on a breach.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { runCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, writePlan, type TestRepository } from '../helpers/plan.js';

interface StatusJson {
  ok: boolean;
  databases: {
    database: string;
    rpo: { objective: string; state: string; measuredSeconds: number | null; newestGoodBackup: { id: string } | null };
    rto: { objective: string; state: string; measuredSeconds: number | null };
    lastFailure: { kind: string; message: string } | null;
  }[];
  repositories: { repository: string; reachable: boolean; backups: number; bytes: number }[];
}

describe('status', () => {
  let cluster: ThrowawayCluster;
  let planFile: string;
  let repo: TestRepository;
  let env: Record<string, string>;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 2000) g");
    repo = await fileRepository('local');
    planFile = await writePlan({
      objectives: { rpo: { database: '8s' }, rto: { database: '10m' } },
      databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, '${APP_PASSWORD}') }],
      repositories: [repo],
    });
    env = { APP_PASSWORD: cluster.password };
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function status(): Promise<{ code: number; report: StatusJson; stderr: string }> {
    const result = await runCli(['--config', planFile, 'status', '--json'], { env });
    return { code: result.code, report: JSON.parse(result.stdout) as StatusJson, stderr: result.stderr };
  }

  it('no backup breaches the RPO', async () => {
    const { code, report } = await status();
    expect(code).toBe(6);
    expect(report.ok).toBe(false);
    expect(report.databases[0]!.rpo.state).toBe('breached');
    expect(report.databases[0]!.rpo.newestGoodBackup).toBeNull();
  });

  it('fresh backup meets the RPO', async () => {
    const backup = await runCli(['--config', planFile, 'backup'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    const { code, report } = await status();
    expect(code).toBe(0);
    const db = report.databases[0]!;
    expect(db.rpo.state).toBe('met');
    expect(db.rpo.objective).toBe('8s');
    expect(db.rpo.newestGoodBackup!.id).toBe(backup.stdout.trim());
    expect(db.rto.state).toBe('unmeasured');
    expect(report.repositories[0]).toMatchObject({ repository: 'local', reachable: true, backups: 1 });
    expect(report.repositories[0]!.bytes).toBeGreaterThan(1024);
  });

  it('old backup breaches the RPO', async () => {
    await new Promise((resolve) => setTimeout(resolve, 8500));
    const { code, report, stderr } = await status();
    expect(code).toBe(6);
    expect(report.databases[0]!.rpo.state).toBe('breached');
    expect(report.databases[0]!.rpo.measuredSeconds).toBeGreaterThan(8);
    expect(stderr).toContain('objective breached: app RPO');
  });

  it('deep verify measures the RTO', async () => {
    const backup = await runCli(['--config', planFile, 'backup'], { env });
    expect(backup.code, backup.stderr).toBe(0);
    const verify = await runCli(['--config', planFile, 'verify', '--deep', 'latest'], { env, timeoutMs: 120_000 });
    expect(verify.code, verify.stderr).toBe(0);
    const text = await runCli(['--config', planFile, 'status'], { env });
    expect(text.stdout).toMatch(/RTO {2}measured [\d.]+s, objective 10m: met \(test restore of backup_\d{8}_\d{6} at /);
  });

  it('shows the last failure', async () => {
    const broken = await writePlan({
      databases: [{ name: 'app', url: cluster.url('app').replace(cluster.password, 'wrong-password') }],
      repositories: [repo],
    });
    const failed = await runCli(['--config', broken, 'backup'], { env });
    expect(failed.code).toBe(3);
    const { report } = await status();
    expect(report.databases[0]!.lastFailure!.kind).toBe('backup');
    expect(report.databases[0]!.lastFailure!.message).toContain('password authentication failed');
  });
});
