/**
 * Asynchronous WAL archiving: the spool fills while the repository is
 * unavailable, push then fails, and the queue drains once it is back, also
 * after the uploader was killed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { writePlan } from '../helpers/plan.js';

const SEGMENT_BYTES = 16 * 1024 * 1024;

function segment(seed: number): Buffer {
  const bytes = Buffer.alloc(SEGMENT_BYTES);
  randomBytes(SEGMENT_BYTES / 4).copy(bytes, 0);
  bytes.writeUInt32BE(seed, SEGMENT_BYTES - 4);
  return bytes;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('wal push in asynchronous mode', () => {
  let work: string;
  let repoDir: string;
  let spoolDir: string;
  let planFile: string;
  const names = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003'];
  const segments = names.map((_, i) => segment(i));

  const queued = async () => (await readdir(path.join(spoolDir, 'main')).catch(() => [] as string[])).filter((f) => /^\d{15}-/.test(f));
  const push = (name: string) => runCli(['--config', planFile, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd: path.join(work, 'data') });

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'drplan-wal-async-'));
    repoDir = path.join(work, 'repo');
    spoolDir = path.join(work, 'spool');
    await mkdir(path.join(work, 'data', 'pg_wal'), { recursive: true });
    for (const [i, name] of names.entries()) await writeFile(path.join(work, 'data', 'pg_wal', name), segments[i]!);
    // A regular file where the repository directory should be: every write fails, even for root, until it is removed.
    await writeFile(repoDir, 'not a directory');
    planFile = await writePlan({
      databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }],
      repositories: [{ name: 'local', url: `file://${repoDir}` }],
      wal: { async: true, spoolDir, maxQueue: 2 },
    });
  });

  afterAll(async () => {
    const pid = Number(await readFile(path.join(spoolDir, 'main', 'uploader.pid'), 'utf8').catch(() => ''));
    if (pid > 0) process.kill(pid, 'SIGTERM');
    await rm(work, { recursive: true, force: true });
  });

  it('queues, reports a full spool, and drains after a restart', async () => {
    for (const name of names.slice(0, 2)) {
      const result = await push(name);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain('WAL file queued');
    }
    expect(await queued()).toHaveLength(2);

    const full = await push(names[2]!);
    expect(full.code).toBe(3);
    expect(full.stderr).toContain(`drplan: error: WAL spool for database main is full (2 of 2 files waiting in ${path.join(spoolDir, 'main')}); ${names[2]} was not archived`);
    expect(full.stderr).toContain('"level":50');

    const uploaderLog = await readFile(path.join(spoolDir, 'main', 'uploader.log'), 'utf8');
    expect(uploaderLog).toContain('WAL upload failed; the file stays queued and is retried');

    // Kill the uploader as a crash would; the pid file stays behind.
    const pid = Number(await readFile(path.join(spoolDir, 'main', 'uploader.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor('the uploader to exit', async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    await rm(repoDir);

    // The next push finds the queue still full, but starts a new uploader that resumes it.
    const retried = await push(names[2]!);
    expect(retried.code).toBe(3);
    await waitFor('the spool to drain', async () => (await queued()).length === 0);

    const last = await push(names[2]!);
    expect(last.code, last.stderr).toBe(0);
    await waitFor('the last file to upload', async () => (await queued()).length === 0);
    await waitFor('the uploader to stop', async () => !(await readdir(path.join(spoolDir, 'main'))).includes('uploader.pid'));

    for (const [i, name] of names.entries()) {
      const sum = JSON.parse(await readFile(path.join(repoDir, 'wal', 'main', `${name}.zst.sum`), 'utf8')) as { sha256: string };
      expect(sum.sha256, name).toBe(createHash('sha256').update(segments[i]!).digest('hex'));
    }
    const fetched = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', names[0]!, path.join(work, 'restored')]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect((await readFile(path.join(work, 'restored'))).equals(segments[0]!)).toBe(true);
  });

  it('async without an absolute spoolDir is a configuration error', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ async: true }, 'wal.spoolDir: missing'],
      [{ async: true, spoolDir: 'spool' }, 'wal.async needs wal.spoolDir, an absolute path'],
      [{ async: true, spoolDir: '/tmp/x', maxQueue: 0 }, 'wal.maxQueue'],
    ];
    for (const [wal, message] of cases) {
      const plan = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [{ name: 'local', url: `file://${repoDir}` }], wal });
      const result = await runCli(['--config', plan, 'wal', 'push', '--database', 'main', `pg_wal/${names[0]}`], { cwd: path.join(work, 'data') });
      expect(result.code, JSON.stringify(wal)).toBe(2);
      expect(result.stderr).toContain(message);
    }
  });
});
