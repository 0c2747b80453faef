/**
 * Writes left behind by a crashed run (temporary files of the local backend)
 * are reported by repo check and removed by prune after the grace period.
 */
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

describe('incomplete writes', () => {
  it('are reported and removed after grace', async () => {
    const repo = await fileRepository('crashed');
    const dir = path.join(repo.dir, 'backups', 'app');
    await mkdir(dir, { recursive: true });
    const old = path.join(dir, '.drplan-tmp-backup_20261201_020000.dump.zst.a1b2c3');
    const fresh = path.join(dir, '.drplan-tmp-backup_20261204_020000.dump.zst.d4e5f6');
    await writeFile(old, Buffer.alloc(4096, 1));
    await writeFile(fresh, Buffer.alloc(4096, 2));
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await utimes(old, twoDaysAgo, twoDaysAgo);
    const plan = await writePlan({ databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }], repositories: [repo] });

    const check = await runCli(['--config', plan, 'repo', 'check', '--json']);
    expect(check.code).toBe(4);
    const problems = JSON.parse(check.stdout) as { kind: string; key: string }[];
    expect(problems.map((p) => [p.kind, p.key]).sort()).toEqual([
      ['incomplete write', 'backups/app/.drplan-tmp-backup_20261201_020000.dump.zst.a1b2c3'],
      ['incomplete write', 'backups/app/.drplan-tmp-backup_20261204_020000.dump.zst.d4e5f6'],
    ]);

    const dryRun = await runCli(['--config', plan, 'prune', '--dry-run']);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stdout).toContain('would remove incomplete write backups/app/.drplan-tmp-backup_20261201_020000.dump.zst.a1b2c3');
    expect(dryRun.stdout).not.toContain('d4e5f6');
    expect((await readdir(dir)).length).toBe(2);

    const prune = await runCli(['--config', plan, 'prune']);
    expect(prune.code, prune.stderr).toBe(0);
    expect(await readdir(dir)).toEqual([path.basename(fresh)]);
  });
});
