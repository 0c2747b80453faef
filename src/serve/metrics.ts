/**
 * The Prometheus metrics of `drplan serve`, in a registry of their own. The
 * objective gauges are set from the status report, the job series by the
 * job runner.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { DatabaseStatus, StatusReport } from '../status/status.js';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly jobRuns = new Counter({ name: 'drplan_job_runs_total', help: 'Finished job runs by result (succeeded, failed, aborted).', labelNames: ['job', 'result'], registers: [this.registry] });
  readonly jobSkipped = new Counter({ name: 'drplan_job_skipped_total', help: 'Job runs not started, by reason (already running, already pending, shutting down, locked).', labelNames: ['job', 'reason'], registers: [this.registry] });
  readonly jobDuration = new Gauge({ name: 'drplan_job_duration_seconds', help: 'Duration of the last finished run of the job.', labelNames: ['job'], registers: [this.registry] });
  readonly jobRunning = new Gauge({ name: 'drplan_job_running', help: '1 while a run of the job is in progress.', labelNames: ['job'], registers: [this.registry] });
  private readonly lastBackup = new Gauge({ name: 'drplan_last_backup_success_timestamp_seconds', help: 'Unix time at which the newest good backup was committed.', labelNames: ['database'], registers: [this.registry] });
  /** The newest good backup of each database that the gauges report, kept over refreshes that could not read every repository. */
  private readonly newestBackups = new Map<string, NewestBackup>();
  private readonly rpo = new Gauge({
    name: 'drplan_rpo_seconds',
    help: 'Measured recovery point: age of the start of the newest good backup, at scrape time.',
    labelNames: ['database'],
    registers: [this.registry],
    // The age grows between status refreshes, so it is computed on each scrape from the stored start time.
    collect: () => this.collectRpo(),
  });
  private readonly rpoObjective = new Gauge({ name: 'drplan_rpo_objective_seconds', help: 'RPO objective of the plan.', labelNames: ['database'], registers: [this.registry] });
  private readonly rto = new Gauge({ name: 'drplan_last_verify_restore_seconds', help: 'Restore time of the newest passed deep verification (measured RTO).', labelNames: ['database'], registers: [this.registry] });
  private readonly rtoObjective = new Gauge({ name: 'drplan_rto_objective_seconds', help: 'RTO objective of the plan.', labelNames: ['database'], registers: [this.registry] });
  private readonly backupBytes = new Gauge({ name: 'drplan_backup_bytes', help: 'Stored size of the newest good backup.', labelNames: ['database'], registers: [this.registry] });
  private readonly repositoryUp = new Gauge({ name: 'drplan_repository_up', help: '1 when the repository could be listed at the last refresh, else 0.', labelNames: ['repository'], registers: [this.registry] });
  private readonly statusTime = new Gauge({ name: 'drplan_status_refresh_timestamp_seconds', help: 'Unix time of the status the other gauges were read from.', registers: [this.registry] });

  /**
   * Sets the objective and repository gauges from a status report. A value
   * that is not measured is removed rather than set to 0, because 0 would
   * read as a perfect RPO. While a repository is unreachable, the newest
   * backup known from an earlier report is kept, so the RPO keeps growing
   * from it instead of disappearing when storage is down.
   */
  updateFromStatus(report: StatusReport): void {
    for (const gauge of [this.lastBackup, this.rpo, this.rpoObjective, this.rto, this.rtoObjective, this.backupBytes, this.repositoryUp]) gauge.reset();
    const complete = report.repositories.every((r) => r.reachable);
    for (const d of report.databases) {
      const labels = { database: d.database };
      const newest = this.newestBackup(d.database, d.rpo.newestGoodBackup, complete);
      if (newest) {
        this.lastBackup.set(labels, Date.parse(newest.finishedAt) / 1000);
        this.backupBytes.set(labels, newest.storedBytes);
      }
      setIfKnown(this.rpoObjective, labels, d.rpo.objectiveSeconds);
      setIfKnown(this.rto, labels, d.rto.measuredSeconds);
      setIfKnown(this.rtoObjective, labels, d.rto.objectiveSeconds);
    }
    for (const r of report.repositories) this.repositoryUp.set({ repository: r.repository }, r.reachable ? 1 : 0);
    this.statusTime.set(Date.parse(report.at) / 1000);
  }

  /**
   * Returns the newest good backup of a database to report. A report read
   * from every repository is the truth, even when it is older than before
   * (prune removed a backup). A report that missed a repository may lack
   * backups, so it wins only when it has a newer one.
   */
  private newestBackup(database: string, reported: NewestBackup | null, complete: boolean): NewestBackup | undefined {
    const known = this.newestBackups.get(database);
    const keepKnown = !complete && known !== undefined && (reported === null || Date.parse(reported.time) < Date.parse(known.time));
    const newest = keepKnown ? known : (reported ?? undefined);
    if (newest) this.newestBackups.set(database, newest);
    else this.newestBackups.delete(database);
    return newest;
  }

  private collectRpo(): void {
    this.rpo.reset();
    const now = Date.now();
    for (const [database, newest] of this.newestBackups) {
      this.rpo.set({ database }, Math.max(0, Math.round((now - Date.parse(newest.time)) / 1000)));
    }
  }
}

type NewestBackup = NonNullable<DatabaseStatus['rpo']['newestGoodBackup']>;

function setIfKnown(gauge: Gauge, labels: Record<string, string>, value: number | null): void {
  if (value !== null) gauge.set(labels, value);
}
