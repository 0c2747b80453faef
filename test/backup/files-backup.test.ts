/**
 * runFilesBackup failing half-way: a repository that breaks during the upload
 * and an interrupt both leave nothing committed and no object behind. The
 * failure is injected by wrapping a real file repository, because a disk
 * cannot be made to fail on cue here.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runFilesBackup } from '../../src/backup/files-backup.js';
import { loadPlan } from '../../src/config/load.js';
import type { PlanContext } from '../../src/context.js';
import { AbortedError, StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';
import { FileStorage } from '../../src/storage/file.js';
import type { PutOptions, Storage } from '../../src/storage/storage.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

/** Wraps a storage so that the archive upload runs `onFirstChunk` once data arrives, then fails or continues. */
function faulty(inner: FileStorage, onFirstChunk: () => Error | undefined): Storage {
  return Object.assign(Object.create(inner) as FileStorage, {
    async put(key: string, body: Readable | Buffer, options?: PutOptions) {
      if (Buffer.isBuffer(body) || !key.includes('.tar')) return inner.put(key, body, options);
      const failure = await new Promise<Error | undefined>((resolve) => body.once('data', () => resolve(onFirstChunk())));
      if (failure) {
        // A real backend stops reading and rejects; the caller then destroys the stream with the error.
        body.on('error', () => undefined);
        body.resume();
        throw failure;
      }
      return inner.put(key, body, options);
    },
  });
}

async function objectsUnder(storage: Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys.sort();
}

describe('runFilesBackup failures', () => {
  let source: string;
  let good: FileStorage;
  let bad: FileStorage;
  let planFile: string;

  beforeEach(async () => {
    source = await mkdtemp(path.join(tmpdir(), 'drplan-files-fail-'));
    await writeFile(path.join(source, 'data.bin'), randomBytes(2 * 1024 * 1024));
    const [a, b] = await Promise.all([fileRepository('a'), fileRepository('b')]);
    good = new FileStorage('a', a.url);
    bad = new FileStorage('b', b.url);
    planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }], repositories: [a, b], files: [{ name: 'data', paths: [source] }] });
  });

  afterEach(async () => {
    await rm(source, { recursive: true, force: true });
  });

  it('repository failure leaves nothing behind', async () => {
    const context: PlanContext = { plan: await loadPlan(planFile), storages: [good, faulty(bad, () => new StorageError('disk full (injected)', { code: 'test.fault' }))], log: silentLogger };
    const error = await runFilesBackup(context, { fileset: 'data', signal: new AbortController().signal }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toBe('disk full (injected)');
    expect(await objectsUnder(good, 'files/')).toEqual([]);
    expect(await objectsUnder(bad, 'files/')).toEqual([]);
    expect(await objectsUnder(good, 'locks/')).toEqual([]);
    const events = await objectsUnder(good, 'events/files/data/');
    expect(events).toHaveLength(1);
  });

  it('interrupt leaves nothing behind', async () => {
    const controller = new AbortController();
    const interrupt = () => {
      controller.abort(new Error('SIGINT received'));
      return undefined;
    };
    const context: PlanContext = { plan: await loadPlan(planFile), storages: [good, faulty(bad, interrupt)], log: silentLogger };
    const error = await runFilesBackup(context, { fileset: 'data', signal: controller.signal }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error as Error).message).toBe('backup interrupted; nothing was committed');
    expect(await objectsUnder(good, 'files/')).toEqual([]);
    expect(await objectsUnder(bad, 'files/')).toEqual([]);
  });
});
