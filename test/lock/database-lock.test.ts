import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AbortedError, LockedError } from '../../src/errors.js';
import { acquireDatabaseLock } from '../../src/lock/database-lock.js';
import { silentLogger } from '../../src/logging.js';
import { FileStorage } from '../../src/storage/file.js';

describe('acquireDatabaseLock', () => {
  let dir: string;
  let storage: FileStorage;
  const options = { purpose: 'backup' as const, timeoutMs: 0, log: silentLogger };

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'drplan-lock-'));
    storage = new FileStorage('local', `file://${dir}`);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes and removes the lock', async () => {
    const lock = await acquireDatabaseLock([storage], 'app', options);
    const info = JSON.parse(await readFile(path.join(dir, 'locks', 'app.json'), 'utf8')) as { pid: number; purpose: string };
    expect(info.pid).toBe(process.pid);
    expect(info.purpose).toBe('backup');
    await lock.release();
    await expect(readFile(path.join(dir, 'locks', 'app.json'))).rejects.toThrow('ENOENT');
  });

  it('second holder is rejected', async () => {
    const lock = await acquireDatabaseLock([storage], 'app', options);
    const error = await acquireDatabaseLock([storage], 'app', options).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(LockedError);
    expect((error as LockedError).exitCode).toBe(7);
    expect((error as LockedError).message).toContain(`database app is locked by a backup on host `);
    await lock.release();
  });

  it('interrupt while waiting exits 130', async () => {
    const lock = await acquireDatabaseLock([storage], 'app', options);
    const controller = new AbortController();
    const waiting = acquireDatabaseLock([storage], 'app', { ...options, timeoutMs: 30_000, signal: controller.signal }).catch((err: unknown) => err);
    controller.abort();
    const error = await waiting;
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as AbortedError).exitCode).toBe(130);
    await lock.release();
  });

  it('detects a lock taken over', async () => {
    const lock = await acquireDatabaseLock([storage], 'app', options);
    const file = path.join(dir, 'locks', 'app.json');
    const other = { ...JSON.parse(await readFile(file, 'utf8')), token: 'someone-else', pid: 1, host: 'other-host' };
    await writeFile(file, JSON.stringify(other));
    const error = await lock.assertHeld().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(LockedError);
    expect((error as LockedError).code).toBe('lock.lost');
    await lock.release();
    expect(JSON.parse(await readFile(file, 'utf8')).token).toBe('someone-else');
  });

  it('expired lock is taken over', async () => {
    const file = path.join(dir, 'locks', 'app.json');
    await storage.put('locks/app.json', Buffer.from(JSON.stringify({ token: 't', host: 'other-host', pid: 1, purpose: 'backup', database: 'app', startedAt: '2026-01-01T00:00:00Z', expiresAt: '2026-01-01T00:05:00Z' })));
    const lock = await acquireDatabaseLock([storage], 'app', options);
    expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });
});
