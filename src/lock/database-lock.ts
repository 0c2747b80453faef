/**
 * Per-database and per-file-set locks stored in the repositories themselves,
 * so that runs on different machines sharing a repository exclude each other:
 * two backups of one database (or file set) never run at once, and prune never
 * deletes under a backup.
 *
 *   locks/<database>.json          { token, host, pid, purpose, database, startedAt, expiresAt }
 *   locks/files/<fileset>.json     the same for a file set, with `fileset` in place of `database`
 *
 * Database names cannot contain "/", so the two name spaces never meet.
 *
 * A holder renews `expiresAt` while it runs. A lock whose `expiresAt` has
 * passed, or whose holder was a process on this host that no longer exists,
 * is stale and is taken over with a warning.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { text } from 'node:stream/consumers';
import { AbortedError, LockedError, NotFoundError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Storage } from '../storage/storage.js';

export interface LockInfo {
  token: string;
  host: string;
  pid: number;
  purpose: string;
  database?: string;
  fileset?: string;
  startedAt: string;
  expiresAt: string;
}

export interface LockOptions {
  purpose: 'backup' | 'prune' | 'restore';
  /** How long to wait for a busy lock; 0 fails at once. */
  timeoutMs: number;
  /** How long a lock stays valid without renewal. */
  ttlMs?: number;
  log: Logger;
  signal?: AbortSignal;
}

export interface HeldLock {
  /** Rejects with LockedError when another run has taken the lock over since. */
  assertHeld(): Promise<void>;
  release(): Promise<void>;
}

const DEFAULT_TTL_MS = 5 * 60_000;
const POLL_MS = 1000;
const WAIT_LOG_MS = 30_000;

export function lockKey(database: string): string {
  return `locks/${database}.json`;
}

/** Returns the key of a file set's lock. */
export function filesetLockKey(fileset: string): string {
  return `locks/files/${fileset}.json`;
}

/** The subject of a lock: its key, a label for messages, and the field that names it in the lock file. */
interface LockTarget {
  key: string;
  kind: 'database' | 'file set';
  /** Such as `database app` or `file set uploads`. */
  label: string;
  owner: { database: string } | { fileset: string };
}

/** Takes the database's lock on every storage, waiting up to `timeoutMs` for a busy one. */
export async function acquireDatabaseLock(storages: Storage[], database: string, options: LockOptions): Promise<HeldLock> {
  return acquireLock(storages, { key: lockKey(database), kind: 'database', label: `database ${database}`, owner: { database } }, options);
}

/** Takes a file set's lock on every storage, so two backups of one file set never run at once and prune waits for them. */
export async function acquireFilesetLock(storages: Storage[], fileset: string, options: LockOptions): Promise<HeldLock> {
  return acquireLock(storages, { key: filesetLockKey(fileset), kind: 'file set', label: `file set ${fileset}`, owner: { fileset } }, options);
}

async function acquireLock(storages: Storage[], target: LockTarget, options: LockOptions): Promise<HeldLock> {
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  const deadline = Date.now() + options.timeoutMs;
  let loggedAt = 0;
  for (;;) {
    const attempt = await tryAcquireAll(storages, target, options, ttlMs);
    if ('held' in attempt) return attempt.held;
    if (options.signal?.aborted) throw new AbortedError(`interrupted while waiting for the ${target.kind} lock`, { code: 'lock.aborted' });
    if (Date.now() + POLL_MS > deadline) throw lockedError(target, attempt.holder, options.timeoutMs);
    if (Date.now() - loggedAt >= WAIT_LOG_MS) {
      options.log.info({ holder: describeHolder(attempt.holder) }, `waiting for the ${target.kind} lock`);
      loggedAt = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function tryAcquireAll(storages: Storage[], target: LockTarget, options: LockOptions, ttlMs: number): Promise<{ held: HeldLock } | { holder: LockInfo }> {
  const now = Date.now();
  const info: LockInfo = {
    token: randomUUID(),
    host: hostname(),
    pid: process.pid,
    purpose: options.purpose,
    ...target.owner,
    startedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + ttlMs).toISOString(),
  };
  const acquired: Storage[] = [];
  for (const storage of storages) {
    let holder: LockInfo | undefined;
    try {
      holder = await tryAcquire(storage, target.key, info, options.log);
    } catch (err) {
      await Promise.all(acquired.map((s) => releaseOn(s, target.key, info)));
      throw err;
    }
    if (holder) {
      await Promise.all(acquired.map((s) => releaseOn(s, target.key, info)));
      return { holder };
    }
    acquired.push(storage);
  }
  return { held: startRenewal(storages, target, info, ttlMs, options.log) };
}

/** Returns undefined when the lock was taken, or the current holder. */
async function tryAcquire(storage: Storage, key: string, info: LockInfo, log: Logger): Promise<LockInfo | undefined> {
  const existing = await readLock(storage, key);
  if (existing && !isStale(existing)) return existing;
  if (existing) {
    const reason = Date.parse(existing.expiresAt) < Date.now() ? `its lock expired at ${existing.expiresAt}` : `process ${existing.pid} no longer exists`;
    // Another run may have taken the stale lock over meanwhile; only the stale one is deleted.
    // NOTE: between this read and the delete a concurrent run can still slip in; the
    // read-back below and assertHeld() before any commit catch that case.
    if ((await readLock(storage, key))?.token !== existing.token) return readLock(storage, key).then((l) => l ?? existing);
    log.warn({ repository: storage.name, holder: describeHolder(existing) }, `taking over a stale lock: ${describeHolder(existing)} did not finish (${reason})`);
    await storage.delete(key);
  }
  if (!(await storage.putIfAbsent(key, Buffer.from(JSON.stringify(info))))) return (await readLock(storage, key)) ?? info;
  // Stores that ignore conditional writes let a concurrent writer overwrite
  // the lock; reading it back shows who really holds it.
  const written = await readLock(storage, key);
  return written?.token === info.token ? undefined : written;
}

async function readLock(storage: Storage, key: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await text(await storage.get(key))) as LockInfo;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    if (err instanceof SyntaxError) {
      // A half-written or damaged lock cannot name a live holder; it expires like a crashed one.
      return { token: '', host: 'unknown', pid: 0, purpose: 'unknown', startedAt: '', expiresAt: new Date(0).toISOString() };
    }
    throw err;
  }
}

function isStale(lock: LockInfo): boolean {
  if (Date.parse(lock.expiresAt) < Date.now()) return true;
  return lock.host === hostname() && !processExists(lock.pid);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** Checks whether `pid` is a zombie: killed, no longer running, and not yet reaped by its parent. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function startRenewal(storages: Storage[], target: LockTarget, info: LockInfo, ttlMs: number, log: Logger): HeldLock {
  let renewal: Promise<unknown> = Promise.resolve();
  const renew = async () => {
    info.expiresAt = new Date(Date.now() + ttlMs).toISOString();
    const body = Buffer.from(JSON.stringify(info));
    for (const storage of storages) {
      // Renewing a lock that another run has taken over would take it back from under that run.
      let current: LockInfo | undefined;
      try {
        current = await readLock(storage, target.key);
      } catch (err) {
        log.warn({ err, repository: storage.name }, `could not read the lock of ${target.label} to renew it`);
        continue;
      }
      if (current?.token !== info.token) {
        log.error({ repository: storage.name }, `the lock of ${target.label} was taken over by another run; this run will not commit`);
        continue;
      }
      await storage.put(target.key, body).catch((err) => log.warn({ err, repository: storage.name }, `could not renew the lock of ${target.label}`));
    }
  };
  const timer = setInterval(() => {
    renewal = renewal.then(renew);
  }, Math.max(ttlMs / 3, 1000));
  timer.unref();
  return {
    async assertHeld() {
      for (const storage of storages) {
        const current = await readLock(storage, target.key);
        if (current?.token === info.token) continue;
        throw new LockedError(`the lock of ${target.label} in repository ${storage.name} was taken over${current ? ` by a ${describeHolder(current)}` : ''}`, {
          code: 'lock.lost',
          object: target.key,
          hint: `Another run thought this one had crashed. Check that no two runs work on the ${target.label}, then run again.`,
        });
      }
    },
    async release() {
      clearInterval(timer);
      // A renewal still in flight would otherwise write the lock back after the delete.
      await renewal;
      await Promise.all(storages.map((s) => releaseOn(s, target.key, info)));
    },
  };
}

/** Deletes the lock only when it is still ours. */
async function releaseOn(storage: Storage, key: string, info: LockInfo): Promise<void> {
  const current = await readLock(storage, key).catch(() => undefined);
  if (current?.token === info.token) await storage.delete(key).catch(() => undefined);
}

function describeHolder(lock: LockInfo): string {
  return `${lock.purpose} on host ${lock.host} (pid ${lock.pid}) started ${lock.startedAt}`;
}

function lockedError(target: LockTarget, holder: LockInfo, timeoutMs: number): LockedError {
  const waited = timeoutMs > 0 ? ` after waiting ${Math.round(timeoutMs / 1000)}s` : '';
  return new LockedError(`${target.label} is locked by a ${describeHolder(holder)}${waited}`, {
    code: 'lock.busy',
    object: target.key,
    hint: `Wait for that run to finish, or set backup.lockTimeout in the plan to wait for it. A lock left by a crashed process expires at ${holder.expiresAt}.`,
  });
}
