/** Validation of jobs[] and server: each invalid entry names the job, the field and the value. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drplan-jobs-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function planWith(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    databases: [
      { name: 'shop', url: 'postgres://shop@127.0.0.1:5432/shop' },
      { name: 'billing', url: 'postgres://billing@127.0.0.1:5432/billing' },
    ],
    repositories: [{ name: 'local', url: 'file:///var/backups/shop' }],
    files: [{ name: 'uploads', paths: ['/srv/uploads'] }],
    ...extra,
  };
}

async function load(plan: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const file = join(dir, 'drplan.yaml');
  await writeFile(file, stringify(plan));
  return { file, result: loadPlan(file, env) };
}

async function jobError(job: Record<string, unknown>, others: Record<string, unknown>[] = []): Promise<ConfigError> {
  const { result } = await load(planWith({ jobs: [...others, job] }));
  const error = await result.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error;
}

describe('jobs', () => {
  const backup = { name: 'nightly', type: 'backup', database: 'shop', cron: '0 2 * * *' };

  it('valid jobs load', async () => {
    const { result } = await load(
      planWith({
        jobs: [backup, { name: 'files', type: 'files', fileset: 'uploads', cron: '0 3 * * *', timezone: 'Europe/Berlin' }, { name: 'prune', type: 'prune', cron: '0 4 * * *', catchUp: false }],
      }),
    );
    const plan = await result;
    expect(plan.jobs?.map((j) => j.name)).toEqual(['nightly', 'files', 'prune']);
    expect(plan.server).toEqual({ listen: '127.0.0.1:9187', catchUp: true, shutdownTimeout: '5m', refreshInterval: '1m' });
  });

  it('cron nicknames load', async () => {
    const { result } = await load(planWith({ jobs: [{ ...backup, cron: '@daily' }, { name: 'hourly', type: 'backup', database: 'billing', cron: '@hourly' }] }));
    const plan = await result;
    expect(plan.jobs?.map((j) => j.cron)).toEqual(['@daily', '@hourly']);
  });

  it('cron error names the field', async () => {
    const error = await jobError({ ...backup, cron: '*/5 * * * * *' });
    expect(error.object).toBe('jobs[0].cron');
  });

  const CRON_HINT = 'Use five fields (minute hour day-of-month month day-of-week), for example "0 2 * * *" for 02:00 every day, or a nickname such as @daily.';
  const cases: [string, Record<string, unknown>, string, string][] = [
    ['unknown database', { ...backup, database: 'shopp' }, 'jobs[0] (nightly).database "shopp" is not a database of the plan', 'Known databases: shop, billing.'],
    ['missing database', { name: 'verify', type: 'verify', cron: '0 5 * * *' }, 'jobs[0] (verify).database is missing; the plan has 2 databases', 'Known databases: shop, billing.'],
    ['unknown fileset', { name: 'files', type: 'files', fileset: 'upload', cron: '0 3 * * *' }, 'jobs[0] (files).fileset "upload" is not a file set of the plan', 'Known file sets: uploads.'],
    ['files without fileset', { name: 'files', type: 'files', cron: '0 3 * * *' }, 'jobs[0] (files).fileset is missing; a files job names a file set', 'Known file sets: uploads.'],
    ['bad cron', { ...backup, cron: '61 2 * * *' }, 'jobs[0] (nightly).cron "61 2 * * *" is invalid: CronPattern: Invalid value for minute: 61', CRON_HINT],
    ['cron with seconds', { ...backup, cron: '*/5 * * * * *' }, 'jobs[0] (nightly).cron "*/5 * * * * *" has 6 fields; expected exactly five, because seconds and years are not supported', CRON_HINT],
    ['cron with years', { ...backup, cron: '0 0 2 * * * 2027' }, 'jobs[0] (nightly).cron "0 0 2 * * * 2027" has 7 fields; expected exactly five, because seconds and years are not supported', CRON_HINT],
    ['cron with four fields', { ...backup, cron: '0 2 * *' }, 'jobs[0] (nightly).cron "0 2 * *" has 4 fields; expected exactly five, because seconds and years are not supported', CRON_HINT],
    ['unknown nickname', { ...backup, cron: '@reboot' }, 'jobs[0] (nightly).cron "@reboot" is not a supported nickname; expected one of @yearly, @annually, @monthly, @weekly, @daily, @hourly', CRON_HINT],
    ['cron never fires', { ...backup, cron: '0 2 31 2 *' }, 'jobs[0] (nightly).cron "0 2 31 2 *" never fires, because no date matches it', 'Check the day of month against the month (February has no 30th or 31st). For example "0 2 28 2 *" runs at 02:00 on February 28th.'],
    ['bad time zone', { ...backup, timezone: 'Europe/Berlinn' }, 'jobs[0] (nightly).timezone "Europe/Berlinn" is not an IANA time zone', 'Use a name such as UTC, Europe/Berlin or America/New_York.'],
    ['prune with database', { name: 'prune', type: 'prune', database: 'shop', cron: '0 4 * * *' }, 'jobs[0] (prune).database is set, but a prune job applies the retention rules of every repository to every database', 'Remove database.'],
    ['deep on a backup', { ...backup, deep: true }, 'jobs[0] (nightly).deep is set, but only a verify job takes deep', 'Remove deep.'],
  ];
  for (const [name, job, message, hint] of cases) {
    it(name, async () => {
      const error = await jobError(job);
      expect(error.message).toBe(`invalid plan ${join(dir, 'drplan.yaml')}: ${message}`);
      expect(error.hint).toBe(hint);
      expect(error.code).toBe('config.job');
      expect(error.exitCode).toBe(2);
    });
  }

  it('duplicate job names', async () => {
    const error = await jobError({ ...backup, cron: '0 3 * * *' }, [backup]);
    expect(error.message).toContain('jobs[1] (nightly).name "nightly" is used twice');
    expect(error.object).toBe('jobs[1].name');
  });

  it('unknown job type', async () => {
    const error = await jobError({ ...backup, type: 'backups' });
    expect(error.message).toContain('jobs[0].type: "backups" is invalid; expected one of "backup", "files", "verify", "prune", "wal-check"');
  });

  it('unknown server field', async () => {
    const { result } = await load(planWith({ server: { listen: '127.0.0.1:9000', tokne: 'x' } }));
    await expect(result).rejects.toThrow('server: unknown field tokne; did you mean token?');
  });

  it('token from environment', async () => {
    const { result } = await load(planWith({ server: { token: '${DRPLAN_TOKEN}' } }), { DRPLAN_TOKEN: 'a-long-enough-secret-token' });
    expect((await result).server.token).toBe('a-long-enough-secret-token');
  });

  it('short token rejected', async () => {
    const { result } = await load(planWith({ server: { token: 'short' } }));
    await expect(result).rejects.toThrow('server.token: "short" is invalid; expected a token of at least 16 characters');
  });
});
