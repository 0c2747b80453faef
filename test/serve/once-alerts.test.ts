/**
 * Alerts of `drplan serve --once` across processes, through the job state
 * file: a repeated failure within suppressFor is sent once, a success after
 * an alerted failure sends one recovery, and a run refused because another
 * run holds the lock is a skip that sends nothing. Each run is a real CLI
 * process sending to a webhook receiver on 127.0.0.1.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { startHttpReceiver, type HttpReceiver } from '../helpers/receivers.js';

describe('serve --once alerts', () => {
  let receiver: HttpReceiver;

  beforeAll(async () => {
    receiver = await startHttpReceiver();
  });

  afterAll(async () => {
    await receiver?.close();
  });

  /** Writes a plan with one files job backing up `uploads`, sending alerts to the receiver. */
  async function filesPlan(uploads: string, stateDir: string, repository: { name: string; url: string }) {
    return writePlan({
      databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }],
      repositories: [repository],
      files: [{ name: 'uploads', paths: [uploads] }],
      jobs: [{ name: 'upload-files', type: 'files', fileset: 'uploads', cron: '0 3 * * *' }],
      backup: { lockTimeout: '0s' },
      server: { stateDir },
      notifications: { channels: [{ name: 'hook', type: 'webhook', url: receiver.url('/alerts') }] },
    });
  }

  function alertsSince(count: number): { type: string; subject: string; summary: string }[] {
    return (receiver.json() as { type: string; subject: string; summary: string }[]).slice(count);
  }

  it('failure sent once, then recovery', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'drplan-once-alerts-'));
    const uploads = path.join(work, 'uploads');
    const planFile = await filesPlan(uploads, path.join(work, 'state'), await fileRepository('local'));
    const before = receiver.requests.length;

    // The file set's directory is missing, so both runs fail; the second is within suppressFor (1h) of the first.
    for (let i = 0; i < 2; i++) {
      const failed = await runCli(['--config', planFile, 'serve', '--once', 'upload-files']);
      expect(failed.code, failed.stderr).toBe(2);
      expect(failed.stderr).toContain(`path ${uploads} of file set uploads does not exist`);
    }
    const failures = alertsSince(before);
    expect(failures.map((a) => [a.type, a.subject])).toEqual([['job.failed', 'upload-files']]);
    expect(failures[0]!.summary).toBe(`job upload-files failed: files[uploads].paths[0]: path ${uploads} of file set uploads does not exist`);
    const state = JSON.parse(await readFile(path.join(work, 'state', 'jobs.json'), 'utf8')) as { jobs: Record<string, { result: string; failureAlertedAt?: string; finishedAt: string }> };
    expect(state.jobs['upload-files']!.result).toBe('failed');
    expect(Date.parse(state.jobs['upload-files']!.failureAlertedAt!)).toBeLessThan(Date.parse(state.jobs['upload-files']!.finishedAt));

    await mkdir(uploads);
    await writeFile(path.join(uploads, 'invoice-1.json'), '{"id":1}');
    for (let i = 0; i < 2; i++) {
      const ok = await runCli(['--config', planFile, 'serve', '--once', 'upload-files']);
      expect(ok.code, ok.stderr).toBe(0);
    }
    const all = alertsSince(before);
    expect(all.map((a) => [a.type, a.subject])).toEqual([
      ['job.failed', 'upload-files'],
      ['job.recovered', 'upload-files'],
    ]);
    expect(all[1]!.summary).toMatch(/^job upload-files succeeded again: committed files_\d{8}_\d{6} of file set uploads/);
  });

  it('busy lock is a skip', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'drplan-once-alerts-'));
    const uploads = path.join(work, 'uploads');
    await mkdir(uploads);
    await writeFile(path.join(uploads, 'invoice-1.json'), '{"id":1}');
    const repository = await fileRepository('local');
    const planFile = await filesPlan(uploads, path.join(work, 'state'), repository);
    // A live lock of another host, as a backup of the file set running elsewhere leaves it.
    const lock = { token: 'other-run', host: 'other-host', pid: 4242, purpose: 'backup', fileset: 'uploads', startedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
    await mkdir(path.join(repository.dir, 'locks', 'files'), { recursive: true });
    await writeFile(path.join(repository.dir, 'locks', 'files', 'uploads.json'), JSON.stringify(lock));
    const before = receiver.requests.length;

    const locked = await runCli(['--config', planFile, 'serve', '--once', 'upload-files']);
    expect(locked.code, locked.stderr).toBe(7);
    expect(locked.stderr).toContain('"msg":"job run skipped: another run has the lock"');
    expect(locked.stderr).toContain('drplan: error: file set uploads is locked by a backup on host other-host (pid 4242)');
    expect(locked.stderr).not.toContain('"msg":"job failed"');
    // Delivery is flushed before exit, so any alert would have arrived by now.
    expect(alertsSince(before)).toEqual([]);
    await expect(readFile(path.join(work, 'state', 'jobs.json'), 'utf8')).rejects.toThrow(/ENOENT/);
  });
});
