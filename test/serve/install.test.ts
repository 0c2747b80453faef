/** The systemd unit and crontab lines written by `drplan schedule install`. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { planSchema } from '../../src/config/schema.js';
import { UsageError } from '../../src/errors.js';
import { crontabLines, systemdUnit } from '../../src/serve/install.js';
import { runCli } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

const paths = { node: '/usr/bin/node', drplan: '/opt/drplan/bin/drplan.js', config: '/etc/drplan/drplan.yaml' };

function plan(extra: Record<string, unknown> = {}) {
  return planSchema.parse({
    service: 'shop',
    databases: [{ name: 'shop', url: 'postgres://shop@127.0.0.1:5432/shop' }],
    repositories: [
      { name: 'local', url: 'file:///var/backups/shop' },
      { name: 'offsite', url: 's3://shop-backups/drplan' },
    ],
    jobs: [
      { name: 'nightly', type: 'backup', cron: '0 2 * * *' },
      { name: 'berlin-verify', type: 'verify', cron: '30 4 * * 1', timezone: 'Europe/Berlin', deep: true },
    ],
    ...extra,
  });
}

describe('systemd unit', () => {
  it('runs serve with absolute paths', () => {
    const unit = systemdUnit(plan(), paths, 'drplan');
    const lines = unit.split('\n');
    expect(lines).toContain('ExecStart=/usr/bin/node /opt/drplan/bin/drplan.js --config /etc/drplan/drplan.yaml serve');
    expect(lines).toContain('Description=drplan for shop: scheduled backups, verification and the HTTP API');
    expect(lines).toContain('User=drplan');
    expect(lines).toContain('Restart=on-failure');
    expect(lines).toContain('KillSignal=SIGTERM');
    expect(lines).toContain('KillMode=mixed');
    expect(lines).toContain('StateDirectory=drplan');
    expect(lines).toContain('ProtectSystem=strict');
    expect(lines).toContain('NoNewPrivileges=yes');
    expect(lines).toContain('ReadWritePaths=/var/backups/shop');
    expect(lines).toContain('WantedBy=multi-user.target');
  });

  it('stop timeout above shutdownTimeout', () => {
    expect(systemdUnit(plan(), paths).split('\n')).toContain('TimeoutStopSec=360s');
    const unit = systemdUnit(plan({ server: { shutdownTimeout: '30m', stateDir: '/srv/drplan state' } }), paths);
    expect(unit.split('\n')).toContain('TimeoutStopSec=1860s');
    expect(unit.split('\n')).toContain('ReadWritePaths=/var/backups/shop "/srv/drplan state"');
    expect(unit).not.toContain('User=');
  });

  it('quotes paths with spaces', () => {
    const unit = systemdUnit(plan(), { ...paths, config: '/etc/drplan/my plan.yaml' });
    expect(unit.split('\n')).toContain('ExecStart=/usr/bin/node /opt/drplan/bin/drplan.js --config "/etc/drplan/my plan.yaml" serve');
  });
});

describe('crontab', () => {
  it('one line per job', () => {
    const lines = crontabLines(plan(), paths).split('\n');
    const entries = lines.filter((line) => line !== '' && !line.startsWith('#'));
    expect(entries).toEqual([
      'CRON_TZ=UTC',
      '0 2 * * * /usr/bin/node /opt/drplan/bin/drplan.js --config /etc/drplan/drplan.yaml serve --once nightly',
      'CRON_TZ=Europe/Berlin',
      '30 4 * * 1 /usr/bin/node /opt/drplan/bin/drplan.js --config /etc/drplan/drplan.yaml serve --once berlin-verify',
    ]);
    expect(lines[0]).toBe('# drplan jobs from /etc/drplan/drplan.yaml');
  });

  it('quotes for the shell', () => {
    const text = crontabLines(plan(), { ...paths, config: "/etc/drplan/it's 100%.yaml" });
    expect(text).toContain(`--config '/etc/drplan/it'\\''s 100\\%.yaml' serve --once nightly`);
  });

  it('rejects seconds field', () => {
    const withSeconds = plan({ jobs: [{ name: 'fast', type: 'backup', cron: '*/30 * * * * *' }] });
    expect(() => crontabLines(withSeconds, paths)).toThrow(UsageError);
    expect(() => crontabLines(withSeconds, paths)).toThrow('job fast: cron "*/30 * * * * *" has 6 fields; crontab takes 5 (no seconds or years)');
  });

  it('writes a nickname as it is', () => {
    const daily = plan({ jobs: [{ name: 'daily', type: 'backup', cron: '@daily' }] });
    expect(crontabLines(daily, paths)).toContain('\n@daily /usr/bin/node /opt/drplan/bin/drplan.js --config /etc/drplan/drplan.yaml serve --once daily\n');
  });

  it('rejects a plan without jobs', () => {
    expect(() => crontabLines(plan({ jobs: [] }), paths)).toThrow('the plan defines no jobs, so there is nothing to schedule');
  });
});

describe('schedule install --output', () => {
  it('keeps an existing file', async () => {
    const planFile = await writePlan({
      databases: [{ name: 'shop', url: 'postgres://shop@127.0.0.1:1/shop' }],
      repositories: [await fileRepository('local')],
      jobs: [{ name: 'nightly', type: 'backup', cron: '0 2 * * *' }],
    });
    const output = path.join(await mkdtemp(path.join(tmpdir(), 'drplan-install-')), 'drplan.cron');
    await writeFile(output, '# my own crontab\n');

    const refused = await runCli(['--config', planFile, 'schedule', 'install', '--cron', '--output', output]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`drplan: error: ${output} already exists; drplan schedule install does not replace it`);
    expect(refused.stderr).toContain('hint: Compare it with the output of the same command without --output, then add --force to replace it.');
    expect(await readFile(output, 'utf8')).toBe('# my own crontab\n');

    const forced = await runCli(['--config', planFile, 'schedule', 'install', '--cron', '--output', output, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await readFile(output, 'utf8')).toContain('serve --once nightly');
  });
});
