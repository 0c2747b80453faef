/**
 * A download that fails half-way (a storage endpoint going away) must end
 * verification and restore with an error, not leave them waiting. The fault
 * is injected by wrapping a real local repository, since a dropped
 * connection cannot be produced on demand with the local S3 server.
 */
import { Readable, Transform } from 'node:stream';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog, type CatalogEntry } from '../../src/backup/catalog.js';
import { loadPlan } from '../../src/config/load.js';
import { StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { fetchVerified } from '../../src/restore/fetch.js';
import { FileStorage } from '../../src/storage/file.js';
import type { Storage } from '../../src/storage/storage.js';
import { verifyBackup } from '../../src/verify/verify-backup.js';
import { runCli } from '../helpers/cli.js';
import { query } from '../helpers/pg.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

/** Wraps a storage so that every read fails after `limit` bytes. */
function failingReads(inner: Storage, limit: number): Storage {
  const wrapper = Object.create(inner) as Storage;
  wrapper.get = async (key) => {
    const source = await inner.get(key);
    let seen = 0;
    const cut = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        seen += chunk.length;
        if (seen > limit) {
          source.destroy();
          return callback(new Error('connection reset by peer'));
        }
        callback(null, chunk);
      },
    });
    return source.pipe(cut) as Readable;
  };
  return wrapper;
}

describe('dropped reads', () => {
  let cluster: ThrowawayCluster;
  let entry: CatalogEntry;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    await query(cluster.url(), 'CREATE DATABASE app');
    await query(cluster.url('app'), 'CREATE TABLE t (id int PRIMARY KEY, body text); INSERT INTO t SELECT g, md5(random()::text) || md5(g::text) FROM generate_series(1, 200000) g');
    const repo = await fileRepository('dropped');
    const planFile = await writePlan({ databases: [{ name: 'app', url: cluster.url('app') }], repositories: [repo] });
    const backup = await runCli(['--config', planFile, 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const plan = await loadPlan(planFile);
    const storage = failingReads(new FileStorage(repo.name, repo.url), 256 * 1024);
    entry = (await readCatalog({ plan, storages: [storage], log: silentLogger })).entries[0]!;
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('verify fails without blaming the backup', async () => {
    const error = await verifyBackup(entry, silentLogger).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).exitCode).toBe(3);
    expect((error as StorageError).message).toContain('reading the object failed: connection reset by peer');
  });

  it('restore fetch rejects the copy', async () => {
    const error = await fetchVerified(entry, os.tmpdir(), silentLogger).catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('no usable copy of backup');
  });
});
