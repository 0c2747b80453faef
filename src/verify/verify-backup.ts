/**
 * Checksum verification of a backup on every repository that has a copy: the
 * objects exist, their size and SHA-256 read back from storage match the
 * metadata, and the archive is readable by pg_restore.
 */
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { Storage } from '../storage/storage.js';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { decompress } from '../backup/compression.js';
import type { BackupCopy, Catalog, CatalogEntry } from '../backup/catalog.js';
import { mainObject, storedObjects, type BackupMetadata, type StoredObject } from '../backup/metadata.js';
import { countTarEntries } from '../util/tar.js';
import type { Logger } from '../logging.js';
import { NotFoundError, StorageError } from '../errors.js';
import { listArchive } from '../postgres/restore.js';
import { findTool } from '../postgres/tools.js';
import { Meter, pipeInto } from '../util/streams.js';

export interface CheckResult {
  name: 'exists' | 'size' | 'sha256' | 'archive' | 'globals' | 'manifest' | 'sanity';
  ok: boolean;
  detail: string;
}

export interface CopyResult {
  repository: string;
  object: string;
  ok: boolean;
  checks: CheckResult[];
}

export interface VerifyResult {
  id: string;
  database: string;
  ok: boolean;
  copies: CopyResult[];
  /** Sanity flags recorded at backup time, such as an unusual size: warnings, not failures. */
  sanity: CheckResult[];
}

/** Verifies every copy of `entry`; `ok` only when every check on every copy passed. */
export async function verifyBackup(entry: CatalogEntry, log: Logger, signal?: AbortSignal): Promise<VerifyResult> {
  const copies: CopyResult[] = [];
  for (const copy of entry.copies) {
    const result = await verifyCopy(copy, signal);
    for (const check of result.checks.filter((c) => !c.ok)) log.error({ backupId: entry.id, repository: copy.storage.name, key: result.object }, check.detail);
    copies.push(result);
  }
  // Sanity flags are warnings about the size, not integrity failures; a passed deep verification accepts them.
  const accepted = entry.copies.some((c) => c.flagsAccepted === true);
  const sanity: CheckResult[] = (entry.meta.flags ?? []).map((flag) => ({
    name: 'sanity',
    ok: accepted,
    detail: `backup ${entry.id}: ${flag.message}${accepted ? ' (accepted: a deep verification passed)' : '; run `drplan verify --deep` to prove it'}`,
  }));
  return { id: entry.id, database: entry.database, ok: copies.every((c) => c.ok), copies, sanity };
}

/**
 * Names the repositories that should have a copy of the backup (those it was
 * written to and that are still in the plan) but returned none: unreachable
 * ones, and ones where the copy is gone. A copy that prune deleted by that
 * repository's own retention rules, as its prune records show, is not missing.
 */
export async function missingCopies(entry: CatalogEntry, catalog: Catalog, planRepositories: string[]): Promise<string[]> {
  const present = new Set(entry.copies.map((c) => c.storage.name));
  const missing: string[] = [];
  for (const name of entry.meta.repositories.filter((r) => planRepositories.includes(r) && !present.has(r))) {
    const problem = catalog.problems.find((p) => p.repository === name && p.key === undefined);
    if (problem) {
      missing.push(`repository ${name} could not be read: ${problem.error.message}`);
      continue;
    }
    const listing = catalog.listings.find((l) => l.storage.name === name);
    if (listing && (await prunedBackups(listing.storage)).has(`${entry.database}/${entry.id}`)) continue;
    missing.push(`repository ${name} has no committed copy of backup ${entry.id}`);
  }
  return missing;
}

/** Reads the prune records of a repository: the `database/id` of every backup prune deleted there. */
async function prunedBackups(storage: Storage): Promise<Set<string>> {
  const deleted = new Set<string>();
  for await (const object of storage.list('prune/')) {
    try {
      const record = JSON.parse(await text(await storage.get(object.key))) as { deleted?: { database: string; id: string }[] };
      for (const entry of record.deleted ?? []) deleted.add(`${entry.database}/${entry.id}`);
    } catch {
      // An unreadable prune record proves nothing; the copy then counts as missing.
    }
  }
  return deleted;
}

/** Lists every failed integrity check of a result, one line each. */
export function failuresOf(result: VerifyResult): string[] {
  return result.copies.flatMap((c) => c.checks.filter((k) => !k.ok).map((k) => k.detail));
}

async function verifyCopy(copy: BackupCopy, signal?: AbortSignal): Promise<CopyResult> {
  const { storage, meta } = copy;
  const checks: CheckResult[] = [];
  const main = mainObject(meta);
  const where = `repository ${storage.name}, object ${main.key}`;
  const info = await storage.stat(main.key);
  checks.push({ name: 'exists', ok: info !== undefined, detail: info ? `${where} exists` : `${where} is missing` });
  if (info) {
    const sizeOk = info.size === main.bytes;
    checks.push({ name: 'size', ok: sizeOk, detail: `${where}: stored ${info.size} bytes, metadata says ${main.bytes}` });
    checks.push(...(await readAndCheck((key) => storage.get(key, { signal }), meta, where, signal)));
  }
  const sideName = meta.kind === 'logical' ? 'globals' : 'manifest';
  for (const object of storedObjects(meta).filter((o) => o !== main)) checks.push(await checkSideObject(copy, object, sideName, signal));
  return { repository: storage.name, object: main.key, ok: checks.every((c) => c.ok), checks };
}

/**
 * Returns a reader that reads the decompressed main object the way its restore
 * will: pg_restore --list for a dump, a tar parse otherwise. The tool is found
 * before the object is opened, so no data flows before a reader is attached.
 */
async function archiveReader(meta: BackupMetadata, signal?: AbortSignal): Promise<(plain: Readable) => Promise<number>> {
  if (meta.kind !== 'logical') return countTarEntries;
  const tool = await findTool('pg_restore', meta.server.major, meta.server.version);
  return async (plain) => {
    const listing = await listArchive(tool, plain, signal);
    return listing.split('\n').filter((l) => l && !l.startsWith(';')).length;
  };
}

/** Reads the dump once: hashes the stored bytes and feeds the decompressed archive to pg_restore. */
async function readAndCheck(get: (key: string) => Promise<Readable>, meta: BackupMetadata, where: string, signal?: AbortSignal): Promise<CheckResult[]> {
  const main = mainObject(meta);
  const readArchive = await archiveReader(meta, signal);
  const meter = new Meter({ sha256: true });
  const stored = pipeInto(await get(main.key), meter);
  let readError: Error | undefined;
  stored.once('error', (err) => {
    readError = err;
  });

  const plain = decompress(stored, meta.compression.algorithm, signal);
  const [listed, decompressed] = await Promise.allSettled([readArchive(plain.output), plain.done]);
  const reader = meta.kind === 'logical' ? 'pg_restore --list' : 'the tar reader';
  const archive: CheckResult = { name: 'archive', ok: true, detail: `${where}: ${reader} read the archive` };
  if (listed.status === 'fulfilled' && decompressed.status === 'fulfilled') {
    archive.detail += ` (${listed.value} entries)`;
  } else {
    await drain(stored);
    // A failed read proves nothing about the stored bytes. It fails the
    // command, not the backup, so no failed verification is recorded for it.
    if (readError) {
      throw new StorageError(`${where}: reading the object failed: ${readError.message}`, { code: 'verify.read', object: main.key, cause: readError });
    }
    const failure = (decompressed.status === 'rejected' ? decompressed.reason : (listed as PromiseRejectedResult).reason) as Error;
    archive.ok = false;
    archive.detail = `${where}: archive unreadable: ${failure.message}`;
  }

  const actual = meter.digest();
  const shaOk = actual === main.sha256;
  const sha: CheckResult = {
    name: 'sha256',
    ok: shaOk,
    detail: shaOk ? `${where}: SHA-256 ${actual} matches` : `${where}: SHA-256 mismatch: expected ${main.sha256}, got ${actual}`,
  };
  return [sha, archive];
}

/** Checks an object beside the main one (globals SQL, backup manifest) by size and SHA-256. */
async function checkSideObject(copy: BackupCopy, object: StoredObject, name: 'globals' | 'manifest', signal?: AbortSignal): Promise<CheckResult> {
  const where = `repository ${copy.storage.name}, object ${object.key}`;
  try {
    const meter = new Meter({ sha256: true });
    await pipeline(await copy.storage.get(object.key), meter, new Writable({ write: (_c, _e, cb) => cb() }), { signal });
    const actual = meter.digest();
    const ok = actual === object.sha256 && meter.bytes === object.bytes;
    return { name, ok, detail: ok ? `${where}: SHA-256 matches` : `${where}: SHA-256 mismatch: expected ${object.sha256}, got ${actual}` };
  } catch (err) {
    if (err instanceof NotFoundError) return { name, ok: false, detail: `${where} is missing` };
    // A read that failed half-way is a storage problem, not evidence against the backup.
    throw new StorageError(`${where}: reading the object failed: ${(err as Error).message}`, { code: 'verify.read', object: object.key, cause: err });
  }
}

async function drain(stream: Readable): Promise<void> {
  await pipeline(stream, new Writable({ write: (_c, _e, cb) => cb() })).catch(() => undefined);
}
