/**
 * Keeps the status report behind /metrics, /ready and the objective alerts
 * fresh: read from the repositories after each job and on a bounded interval,
 * never on every scrape, because a status read lists every repository.
 */
import type { PlanContext } from '../context.js';
import { buildStatus, type DatabaseStatus, type StatusReport } from '../status/status.js';
import type { AlertTracker } from './alerts.js';
import type { ServeMetrics } from './metrics.js';
import type { Clock } from './scheduler.js';

export class StatusMonitor {
  private latest?: StatusReport;
  private inFlight?: Promise<StatusReport>;
  private timer?: unknown;
  private stopped = false;

  constructor(
    private readonly context: PlanContext,
    private readonly metrics: ServeMetrics,
    private readonly alerts: AlertTracker,
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  /** The newest report, or undefined before the first read finished. */
  get report(): StatusReport | undefined {
    return this.latest;
  }

  /** Reads the status now; concurrent callers share one read. */
  refresh(): Promise<StatusReport> {
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Reads the status at once and then every interval, logging failures instead of raising them. */
  start(): void {
    const tick = () => {
      this.refresh()
        .catch((err: unknown) => this.context.log.error({ component: 'serve', err }, 'status refresh failed; metrics keep the previous values'))
        .finally(() => {
          if (!this.stopped) this.timer = this.clock.setTimer(tick, this.intervalMs);
        });
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
  }

  private async read(): Promise<StatusReport> {
    const report = await buildStatus(this.context, this.clock.now());
    this.latest = report;
    this.metrics.updateFromStatus(report);
    for (const database of report.databases) this.alertObjectives(database);
    for (const repo of report.repositories) {
      if (repo.reachable) this.alerts.clear('repository.unreachable', repo.repository, `repository ${repo.repository} is reachable again`);
      else this.alerts.problem('repository.unreachable', repo.repository, 'critical', `repository ${repo.repository} is unreachable: ${repo.error ?? 'could not list it'}`, { repository: repo.repository });
    }
    return report;
  }

  private alertObjectives(d: DatabaseStatus): void {
    const details = {
      database: d.database,
      rpoObjectiveSeconds: d.rpo.objectiveSeconds,
      rpoSeconds: d.rpo.measuredSeconds,
      rtoObjectiveSeconds: d.rto.objectiveSeconds,
      rtoSeconds: d.rto.measuredSeconds,
    };
    const breached = [d.rpo.state === 'breached' ? `RPO ${measured(d.rpo.measuredSeconds)} over objective ${d.rpo.objective}` : '', d.rto.state === 'breached' ? `RTO ${measured(d.rto.measuredSeconds)} over objective ${d.rto.objective}` : ''].filter(Boolean);
    if (breached.length > 0) this.alerts.problem('objective.breached', d.database, 'critical', `database ${d.database}: ${breached.join(', ')}`, details);
    else this.alerts.clear('objective.breached', d.database, `database ${d.database}: objectives met again`, details);
  }
}

function measured(seconds: number | null): string {
  return seconds === null ? 'not measurable (no good backup)' : `${Math.round(seconds)}s`;
}
