/**
 * Text for running drplan from the system's service manager: a systemd unit
 * for `drplan serve`, or crontab lines that run each job with
 * `drplan serve --once`.
 */
import { CRON_NICKNAMES } from '../config/jobs.js';
import type { Plan } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

export interface InstallPaths {
  /** Absolute path of the node binary. */
  node: string;
  /** Absolute path of bin/drplan.js. */
  drplan: string;
  /** Absolute path of the plan file. */
  config: string;
}

/** Seconds systemd waits beyond server.shutdownTimeout, so drplan aborts and cleans up before systemd sends SIGKILL. */
const STOP_MARGIN_SECONDS = 60;

/** Returns a systemd service unit for `drplan serve`; `user` runs it as that account instead of root. */
export function systemdUnit(plan: Plan, paths: InstallPaths, user?: string): string {
  const stopSeconds = Math.ceil(parseDuration(plan.server.shutdownTimeout) / 1000) + STOP_MARGIN_SECONDS;
  const writable = writablePaths(plan);
  const lines = [
    '[Unit]',
    `Description=drplan${plan.service ? ` for ${plan.service}` : ''}: scheduled backups, verification and the HTTP API`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    ...(user ? [`User=${user}`] : []),
    `ExecStart=${[paths.node, paths.drplan, '--config', paths.config, 'serve'].map(systemdQuote).join(' ')}`,
    '# Secrets used as ${VAR} in the plan (database passwords, S3 keys, server.token) go in this file, mode 0600.',
    'EnvironmentFile=-/etc/drplan/drplan.env',
    'Restart=on-failure',
    'RestartSec=10s',
    // Only the main process gets SIGTERM; drplan stops its own pg_dump and cleans up through the abort signals.
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    `# Above server.shutdownTimeout (${plan.server.shutdownTimeout}), so running jobs are aborted and cleaned up by drplan, not killed.`,
    `TimeoutStopSec=${stopSeconds}s`,
    '# The job state file (last run of each job) lives in /var/lib/drplan unless server.stateDir is set.',
    'StateDirectory=drplan',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectSystem=strict',
    ...(writable.length > 0 ? [`ReadWritePaths=${writable.map(systemdQuote).join(' ')}`] : []),
    'ProtectHome=read-only',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'CapabilityBoundingSet=',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
  ];
  return `${lines.join('\n')}\n`;
}

/** Directories drplan writes outside the state directory: file repositories, the temp directory and a chosen state directory. */
function writablePaths(plan: Plan): string[] {
  const paths = plan.repositories.filter((r) => r.url.startsWith('file://')).map((r) => decodeURIComponent(new URL(r.url).pathname));
  if (plan.backup.tempDir) paths.push(plan.backup.tempDir);
  if (plan.server.stateDir) paths.push(plan.server.stateDir);
  return [...new Set(paths)];
}

/** Returns crontab lines that run each job of the plan with `drplan serve --once`. */
export function crontabLines(plan: Plan, paths: InstallPaths): string {
  const jobs = plan.jobs ?? [];
  if (jobs.length === 0) {
    throw new UsageError('the plan defines no jobs, so there is nothing to schedule', { code: 'schedule.nojobs', hint: 'Add jobs under jobs: in the plan, each with a cron expression.' });
  }
  const lines = [
    `# drplan jobs from ${paths.config}`,
    '# cron reads times in the host time zone unless CRON_TZ is set. drplan evaluates a job in UTC',
    '# unless the job names a timezone, so each job below sets CRON_TZ. CRON_TZ is supported by cronie;',
    '# with a cron that ignores it, set the host time zone to UTC or convert the times.',
    '# Variables used as ${VAR} in the plan must be set in the crontab or the environment of cron.',
  ];
  for (const job of jobs) {
    const fields = job.cron.trim().split(/\s+/);
    // Plan validation already allows only these shapes; this check keeps crontab lines valid for a plan built in code.
    if (fields.length !== 5 && !(fields.length === 1 && CRON_NICKNAMES.includes(fields[0]!))) {
      throw new UsageError(`job ${job.name}: cron "${job.cron}" has ${fields.length} fields; crontab takes 5 (no seconds or years)`, {
        code: 'schedule.cron',
        object: job.name,
        hint: 'Write its schedule with 5 fields (minute hour day-of-month month day-of-week) or a nickname such as @daily.',
      });
    }
    const command = [paths.node, paths.drplan, '--config', paths.config, 'serve', '--once', job.name].map(shellQuote).join(' ');
    lines.push('', `# ${job.name} (${job.type})`, `CRON_TZ=${job.timezone ?? 'UTC'}`, `${fields.join(' ')} ${command}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Quotes a word for /bin/sh, which cron runs each command with; `%` is escaped because cron turns it into a newline. */
function shellQuote(word: string): string {
  const quoted = /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '\\%');
}

/** Quotes a word for systemd's command-line and path-list parsing. */
function systemdQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, '\\$1')}"`;
}
