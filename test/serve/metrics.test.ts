/**
 * The objective gauges of `drplan serve` across status refreshes: while a
 * repository is unreachable, the last known backup keeps the RPO and
 * last-backup gauges present, and the RPO keeps growing from it.
 */
import { describe, expect, it } from 'vitest';
import { ServeMetrics } from '../../src/serve/metrics.js';
import type { DatabaseStatus, StatusReport } from '../../src/status/status.js';

type NewestBackup = DatabaseStatus['rpo']['newestGoodBackup'];

/** Builds a report of one database `app` on one repository `local`; fields the gauges do not read are left out. */
function report(newest: NewestBackup, reachable: boolean): StatusReport {
  const database = {
    database: 'app',
    rpo: { objective: '24h', objectiveSeconds: 86_400, measuredSeconds: null, state: 'met', newestGoodBackup: newest },
    rto: { objective: null, objectiveSeconds: null, measuredSeconds: null, state: 'no objective', verification: null },
    lastFailure: null,
  } as unknown as DatabaseStatus;
  return { at: new Date().toISOString(), ok: true, databases: [database], repositories: [{ repository: 'local', reachable, backups: newest ? 1 : 0, bytes: 0 }] };
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('serve metrics', () => {
  const hourAgo = new Date(Date.now() - 3_600_000);
  const backup = { id: 'backup_1', time: hourAgo.toISOString(), finishedAt: new Date(hourAgo.getTime() + 60_000).toISOString(), storedBytes: 4096 };

  it('unreachable repository keeps RPO', async () => {
    const metrics = new ServeMetrics();
    metrics.updateFromStatus(report(backup, true));
    const before = await metrics.registry.metrics();
    expect(metricValue(before, 'drplan_repository_up{repository="local"}')).toBe(1);

    // The repository cannot be listed, so the report finds no backup at all.
    metrics.updateFromStatus(report(null, false));
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'drplan_repository_up{repository="local"}')).toBe(0);
    expect(metricValue(text, 'drplan_last_backup_success_timestamp_seconds{database="app"}')).toBe(Date.parse(backup.finishedAt) / 1000);
    expect(metricValue(text, 'drplan_backup_bytes{database="app"}')).toBe(4096);
    const rpo = metricValue(text, 'drplan_rpo_seconds{database="app"}')!;
    expect(Math.abs(rpo - (Date.now() - hourAgo.getTime()) / 1000)).toBeLessThanOrEqual(2);

    // A second failed refresh still reports the same backup.
    metrics.updateFromStatus(report(null, false));
    const again = await metrics.registry.metrics();
    expect(metricValue(again, 'drplan_last_backup_success_timestamp_seconds{database="app"}')).toBe(Date.parse(backup.finishedAt) / 1000);
    expect(metricValue(again, 'drplan_repository_up{repository="local"}')).toBe(0);
  });

  it('reachable report replaces the known backup', async () => {
    const metrics = new ServeMetrics();
    metrics.updateFromStatus(report(backup, true));
    // Read from every repository, a report without the backup (pruned or deleted) is the truth.
    metrics.updateFromStatus(report(null, true));
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'drplan_last_backup_success_timestamp_seconds{database="app"}')).toBeUndefined();
    expect(metricValue(text, 'drplan_rpo_seconds{database="app"}')).toBeUndefined();
    expect(metricValue(text, 'drplan_rpo_objective_seconds{database="app"}')).toBe(86_400);
  });

  it('newer backup wins while unreachable', async () => {
    // With one of several repositories down, a backup newer than the known one still shows.
    const metrics = new ServeMetrics();
    metrics.updateFromStatus(report(backup, true));
    const newer = { ...backup, id: 'backup_2', time: new Date().toISOString(), finishedAt: new Date().toISOString() };
    metrics.updateFromStatus(report(newer, false));
    const text = await metrics.registry.metrics();
    expect(metricValue(text, 'drplan_last_backup_success_timestamp_seconds{database="app"}')).toBe(Date.parse(newer.finishedAt) / 1000);
  });
});
