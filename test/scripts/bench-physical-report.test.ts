import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ThrowawayCluster } from '../../src/postgres/cluster.js';
import { pgBackRestArgs, writePgBackRestConfig } from '../../scripts/bench-pgbackrest.js';
import { physicalRatios, type PhysicalResult } from '../../scripts/bench-physical-report.js';
import type { Tool, ToolRun } from '../../scripts/bench-physical-steps.js';

function run(tool: Tool, round: number, durationMs: number, storedBytes?: number): ToolRun {
  const usage = { root: { peakRssBytes: 0, maxSampledRssBytes: 0, cpuSeconds: 0 }, descendants: [], samples: 1 };
  return { tool, round, storedBytes, step: { label: `${tool} ${round}`, durationMs, usage, serverCpuSeconds: 0, otherCpuSeconds: 0, logEvents: [] } };
}

function result(backups: ToolRun[], restores: ToolRun[]): PhysicalResult {
  return { rounds: 2, backups, restores } as unknown as PhysicalResult;
}

describe('physical benchmark ratios', () => {
  it('divides the sums and each round', () => {
    const backups = [run('pgBackRest', 1, 40_000, 400), run('drplan', 1, 20_000, 396), run('drplan', 2, 30_000, 396), run('pgBackRest', 2, 20_000, 400)];
    const restores = [run('pgBackRest', 1, 10_000), run('drplan', 1, 12_000), run('drplan', 2, 9_000), run('pgBackRest', 2, 10_000)];
    const [backupTime, restoreTime, storedSize] = physicalRatios(result(backups, restores));

    expect(backupTime!.overall).toBeCloseTo(50 / 60, 10);
    expect(backupTime!.perRound).toEqual([0.5, 1.5]);
    expect(backupTime!.limit).toBe(1.0);
    expect(restoreTime!.overall).toBeCloseTo(21 / 20, 10);
    expect(restoreTime!.limit).toBe(1.2);
    expect(storedSize!.overall).toBeCloseTo(0.99, 10);
    expect(storedSize!.limit).toBeUndefined();
  });

  it('leaves a ratio without drplan runs undefined', () => {
    const backups = [run('pgBackRest', 1, 40_000, 400), run('pgBackRest', 2, 20_000, 400)];
    const [backupTime] = physicalRatios(result(backups, []));

    expect(backupTime!.overall).toBeUndefined();
    expect(backupTime!.perRound).toEqual([undefined, undefined]);
  });
});

describe('pgBackRest benchmark configuration', () => {
  it('writes the stanza and a password file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drplan-pgbackrest-conf-'));
    try {
      const cluster = { dataDir: '/tmp/cluster/data', port: 54321, superuser: 'postgres', password: 'secret-pw' } as ThrowawayCluster;
      const setup = await writePgBackRestConfig(dir, cluster, {});
      const config = await readFile(setup.configFile, 'utf8');

      expect(config).toContain('[global]\nrepo1-path=');
      expect(config).toContain('compress-type=zst\n');
      expect(config).toContain('process-max=2\n');
      expect(config).toContain('archive-check=y\n');
      expect(config).toContain('[bench]\npg1-path=/tmp/cluster/data\npg1-port=54321\npg1-socket-path=/tmp/cluster\npg1-user=postgres\n');
      expect(config).not.toContain('secret-pw');
      expect(await readFile(setup.env.PGPASSFILE!, 'utf8')).toBe('*:*:*:postgres:secret-pw\n');
      expect(pgBackRestArgs(setup, 'backup', ['--type=full'])).toEqual([`--config=${setup.configFile}`, '--stanza=bench', '--type=full', 'backup']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
