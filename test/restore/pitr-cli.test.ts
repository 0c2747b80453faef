/**
 * Option checks of `drplan restore --pitr` through the CLI: each mistake is
 * a usage error (exit 2) that names the option, before any repository is read.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { closedPort } from '../helpers/receivers.js';

describe('restore --pitr options', () => {
  it.each([
    [['restore', '--pitr', 'latest', '--target', 'latest', '--data-dir', '/tmp/x'], '--pitr picks the base backup for the target itself, so it takes no backup id (got "latest")'],
    [['restore', '--pitr', '--target', 'latest'], '--pitr needs --data-dir DIR'],
    [['restore', '--pitr', '--target', 'latest', '--data-dir', '/tmp/x', '--in-place'], '--pitr does not take --in-place'],
    [['restore', '--pitr', '--target-time', '2026-12-04 10:00Z', '--table', 'orders'], '--pitr --table needs --target-database NAME'],
    [['restore', '--pitr', '--target', 'latest', '--table', 'orders', '--target-database', 'side', '--start'], '--pitr --table does not take --start'],
    [['restore', 'latest', '--target-database', 'side', '--target-time', '2026-12-04 10:00Z'], '--target-time is valid only with --pitr'],
    [['restore', '--target-database', 'side'], 'restore needs a backup id, or "latest"'],
    [['restore', '--pitr', '--target', 'latest', '--data-dir', '/tmp/x', '--start', '--timeout', 'soon'], 'invalid --timeout "soon"'],
  ])('rejects %j', async (args, message) => {
    const repo = await fileRepository('local');
    const planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }], repositories: [repo] });
    const result = await runCli(['--config', planFile, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`drplan: error: ${message}`);
    expect(result.stderr).toMatch(/\nhint: /);
  });
});

describe('restore --pitr repositories', () => {
  it('names an unreachable repository', async () => {
    const port = await closedPort();
    const dead = { name: 'offsite', url: 's3://wal-bucket/drplan', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true };
    const planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }], repositories: [dead] });
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_MAX_ATTEMPTS: '1' };
    const result = await runCli(['--config', planFile, 'restore', '--pitr', '--target', 'latest', '--data-dir', '/tmp/drplan-never-created'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('drplan: error: cannot find a physical base backup of database app: repository offsite: ');
    expect(result.stderr).not.toContain('repository offsite: repository offsite');
    expect(result.stderr).toContain('hint: Restore access to repository offsite and retry');
  });
});
