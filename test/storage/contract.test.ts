/**
 * The Storage contract from src/storage/storage.ts, run against every backend:
 * FileStorage on a temp directory and S3Storage on a local s3rver. Each test
 * gets a fresh repository (a new directory, or a new key prefix in the bucket).
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionError, NotFoundError, StorageError } from '../../src/errors.js';
import { FileStorage, TEMP_PREFIX } from '../../src/storage/file.js';
import { S3Storage } from '../../src/storage/s3.js';
import type { ObjectInfo, Storage } from '../../src/storage/storage.js';
import { s3Client, startS3Server, type S3TestServer } from '../helpers/s3.js';

const MIB = 1024 * 1024;

/** One fresh repository for one test. */
interface StorageHarness {
  storage: Storage;
  /** Lists temporary files in the repository directory by relative path. Only the file backend has them. */
  temporaryFiles?: () => Promise<string[]>;
  dispose(): Promise<void>;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function listAll(storage: Storage, prefix: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  for await (const info of storage.list(prefix)) objects.push(info);
  return objects.sort((a, b) => a.key.localeCompare(b.key));
}

async function listKeys(storage: Storage, prefix: string): Promise<string[]> {
  return (await listAll(storage, prefix)).map((info) => info.key);
}

/** Creates a stream of `totalBytes` random bytes in 1 MiB chunks and a function returning their SHA-256. */
function randomBody(totalBytes: number): { body: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  async function* chunks() {
    for (let sent = 0; sent < totalBytes; sent += MIB) {
      const chunk = randomBytes(Math.min(MIB, totalBytes - sent));
      hash.update(chunk);
      yield chunk;
    }
  }
  return { body: Readable.from(chunks(), { objectMode: false }), sha256: () => hash.digest('hex') };
}

/** Creates a stream that produces `bytesBeforeError` random bytes and then fails with `error`. */
function failingBody(bytesBeforeError: number, error: Error): Readable {
  async function* chunks() {
    for (let sent = 0; sent < bytesBeforeError; sent += MIB) yield randomBytes(Math.min(MIB, bytesBeforeError - sent));
    throw error;
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** Waits until `condition` holds, checking every 10 ms for at most 10 s. */
async function waitUntil(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the promise to reject');
    },
    (err: unknown) => err,
  );
}

function describeStorageContract(backend: string, createHarness: () => Promise<StorageHarness>): void {
  describe(`${backend} storage contract`, () => {
    let harness: StorageHarness;
    let storage: Storage;

    beforeEach(async () => {
      harness = await createHarness();
      storage = harness.storage;
    });

    afterEach(async () => {
      await harness?.dispose();
    });

    async function expectNoTemporaryFiles(): Promise<void> {
      if (harness.temporaryFiles) expect(await harness.temporaryFiles()).toEqual([]);
    }

    it('check passes on fresh repository', async () => {
      await expect(storage.check()).resolves.toBeUndefined();
    });

    it('put buffer then get', async () => {
      const bytes = Buffer.from('pg_dump custom format\0\x01\x02\xff', 'binary');

      const info = await storage.put('backups/app/one.dump', bytes);

      expect(info.key).toBe('backups/app/one.dump');
      expect(info.size).toBe(bytes.length);
      expect(info.modified).toBeInstanceOf(Date);
      const read = await readAll(await storage.get('backups/app/one.dump'));
      expect(read.equals(bytes)).toBe(true);
    });

    it('put empty buffer', async () => {
      const info = await storage.put('backups/app/empty', Buffer.alloc(0));

      expect(info.size).toBe(0);
      expect((await storage.stat('backups/app/empty'))?.size).toBe(0);
      expect((await readAll(await storage.get('backups/app/empty'))).length).toBe(0);
    });

    it('put multipart stream keeps bytes', async () => {
      // Slightly more than 20 MiB is three parts at the S3 backend's 8 MiB part size.
      const totalBytes = 20 * MIB + 12_345;
      const { body, sha256 } = randomBody(totalBytes);

      const info = await storage.put('backups/app/big.dump.zst', body);

      expect(info.key).toBe('backups/app/big.dump.zst');
      expect(info.size).toBe(totalBytes);
      expect((await storage.stat('backups/app/big.dump.zst'))?.size).toBe(totalBytes);
      expect(await sha256Of(await storage.get('backups/app/big.dump.zst'))).toBe(sha256());
    });

    it('stat returns object info', async () => {
      const before = Date.now();
      await storage.put('backups/app/x.meta.json', Buffer.from('{"id":"x"}'));

      const info = await storage.stat('backups/app/x.meta.json');

      expect(info?.key).toBe('backups/app/x.meta.json');
      expect(info?.size).toBe(10);
      expect(info?.modified).toBeInstanceOf(Date);
      // S3 returns Last-Modified in whole seconds, so allow for truncation.
      expect(info!.modified.getTime()).toBeGreaterThanOrEqual(before - 2_000);
      expect(info!.modified.getTime()).toBeLessThanOrEqual(Date.now() + 2_000);
    });

    it('stat of missing is undefined', async () => {
      expect(await storage.stat('backups/app/missing.meta.json')).toBeUndefined();
    });

    it('get of missing rejects NotFoundError', async () => {
      const error = await rejectionOf(storage.get('backups/app/missing.dump'));

      expect(error).toBeInstanceOf(NotFoundError);
      expect((error as NotFoundError).code).toBe('storage.missing');
      expect((error as NotFoundError).object).toBe('backups/app/missing.dump');
      expect((error as NotFoundError).message).toBe(`object backups/app/missing.dump not found in repository ${storage.name}`);
      expect((error as NotFoundError).exitCode).toBe(5);
    });

    it('list returns keys under prefix', async () => {
      await storage.put('backups/app/b.dump.zst', Buffer.from('bb'));
      await storage.put('backups/app/a.meta.json', Buffer.from('a'));
      await storage.put('backups/app/nested/c', Buffer.from('ccc'));
      await storage.put('backups/apple/d', Buffer.from('dddd'));
      await storage.put('manual/app/e', Buffer.from('eeeee'));

      const listed = await listAll(storage, 'backups/app/');

      expect(listed.map((info) => info.key)).toEqual(['backups/app/a.meta.json', 'backups/app/b.dump.zst', 'backups/app/nested/c']);
      expect(listed.map((info) => info.size)).toEqual([1, 2, 3]);
      expect(listed.every((info) => info.modified instanceof Date)).toBe(true);
    });

    it('list matches partial segment', async () => {
      await storage.put('backups/app/a', Buffer.from('a'));
      await storage.put('backups/apple/b', Buffer.from('b'));
      await storage.put('backups/bpp/c', Buffer.from('c'));

      expect(await listKeys(storage, 'backups/app')).toEqual(['backups/app/a', 'backups/apple/b']);
      expect(await listKeys(storage, 'backups/app/a')).toEqual(['backups/app/a']);
    });

    it('list with empty prefix', async () => {
      await storage.put('backups/app/a', Buffer.from('a'));
      await storage.put('manual/app/b', Buffer.from('b'));

      expect(await listKeys(storage, '')).toEqual(['backups/app/a', 'manual/app/b']);
    });

    it('list of missing prefix', async () => {
      await storage.put('backups/app/a', Buffer.from('a'));

      expect(await listKeys(storage, 'backups/other/')).toEqual([]);
    });

    it('list hides unfinished put', async () => {
      const body = new PassThrough();
      const put = storage.put('backups/app/slow.dump', body);
      body.write(randomBytes(MIB));
      await waitUntil(() => body.readableLength === 0);
      if (harness.temporaryFiles) await waitUntil(async () => (await harness.temporaryFiles!()).length === 1);

      expect(await listKeys(storage, 'backups/')).toEqual([]);
      expect(await storage.stat('backups/app/slow.dump')).toBeUndefined();

      body.end(randomBytes(MIB));
      expect((await put).size).toBe(2 * MIB);
      expect(await listKeys(storage, 'backups/')).toEqual(['backups/app/slow.dump']);
      await expectNoTemporaryFiles();
    });

    it('delete removes object', async () => {
      await storage.put('backups/app/gone', Buffer.from('x'));

      await storage.delete('backups/app/gone');

      expect(await storage.stat('backups/app/gone')).toBeUndefined();
      expect(await listKeys(storage, '')).toEqual([]);
    });

    it('delete of missing succeeds', async () => {
      await expect(storage.delete('backups/app/never-written')).resolves.toBeUndefined();
    });

    it('put replaces existing object', async () => {
      await storage.put('backups/app/x', Buffer.from('first version'));

      const info = await storage.put('backups/app/x', Buffer.from('second'));

      expect(info.size).toBe(6);
      expect((await storage.stat('backups/app/x'))?.size).toBe(6);
      expect((await readAll(await storage.get('backups/app/x'))).toString()).toBe('second');
      expect(await listKeys(storage, '')).toEqual(['backups/app/x']);
    });

    it('put stream replaces existing object', async () => {
      await storage.put('backups/app/x', Buffer.from('first version'));

      await storage.put('backups/app/x', Readable.from([Buffer.from('streamed')]));

      expect((await readAll(await storage.get('backups/app/x'))).toString()).toBe('streamed');
    });

    it('body error leaves nothing', async () => {
      const sourceError = new Error('pg_dump exited with code 1');

      const error = await rejectionOf(storage.put('backups/app/broken.dump', failingBody(2 * MIB, sourceError)));

      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('storage.io');
      expect((error as StorageError).object).toBe('backups/app/broken.dump');
      expect((error as StorageError).message).toBe(`repository ${storage.name}: cannot write backups/app/broken.dump: pg_dump exited with code 1`);
      expect((error as StorageError).cause).toBe(sourceError);
      expect(await storage.stat('backups/app/broken.dump')).toBeUndefined();
      expect(await listKeys(storage, '')).toEqual([]);
      await expectNoTemporaryFiles();
    });

    it('body error after part leaves nothing', async () => {
      // More than one 8 MiB part, so the S3 backend has started a multipart upload.
      const sourceError = new Error('pg_dump exited with code 1');

      const error = await rejectionOf(storage.put('backups/app/broken.dump', failingBody(9 * MIB, sourceError)));

      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('storage.io');
      expect((error as StorageError).object).toBe('backups/app/broken.dump');
      expect((error as StorageError).message).toBe(`repository ${storage.name}: cannot write backups/app/broken.dump: pg_dump exited with code 1`);
      expect((error as StorageError).cause).toBe(sourceError);
      expect(await storage.stat('backups/app/broken.dump')).toBeUndefined();
      expect(await listKeys(storage, '')).toEqual([]);
      await expectNoTemporaryFiles();
    });

    it('abort mid-stream leaves nothing', async () => {
      const controller = new AbortController();
      async function* chunks() {
        for (let index = 0; index < 8; index++) {
          if (index === 4) controller.abort();
          yield randomBytes(MIB / 2);
        }
      }

      const error = await rejectionOf(storage.put('backups/app/aborted.dump', Readable.from(chunks(), { objectMode: false }), { signal: controller.signal }));

      expect((error as Error).name).toBe('AbortError');
      expect(await storage.stat('backups/app/aborted.dump')).toBeUndefined();
      expect(await listKeys(storage, '')).toEqual([]);
      await expectNoTemporaryFiles();
    });

    it('abort after part leaves nothing', async () => {
      const controller = new AbortController();
      async function* chunks() {
        for (let index = 0; index < 24; index++) {
          if (index === 18) controller.abort();
          yield randomBytes(MIB / 2);
        }
      }

      const error = await rejectionOf(storage.put('backups/app/aborted.dump', Readable.from(chunks(), { objectMode: false }), { signal: controller.signal }));

      expect((error as Error).name).toBe('AbortError');
      expect(await storage.stat('backups/app/aborted.dump')).toBeUndefined();
      expect(await listKeys(storage, '')).toEqual([]);
      await expectNoTemporaryFiles();
    });

    it('put buffer with aborted signal', async () => {
      const error = await rejectionOf(storage.put('backups/app/x', Buffer.from('x'), { signal: AbortSignal.abort() }));

      expect((error as Error).name).toBe('AbortError');
      expect(await storage.stat('backups/app/x')).toBeUndefined();
      await expectNoTemporaryFiles();
    });

    describe.each(['../x', '/abs', 'a//b', 'a/./b', '', 'a/..', 'a\\b'])('invalid key %j', (key) => {
      function expectKeyError(error: unknown): void {
        expect(error).toBeInstanceOf(StorageError);
        expect((error as StorageError).code).toBe('storage.key');
        expect((error as StorageError).object).toBe(key);
        expect((error as StorageError).message).toBe(`invalid storage key ${JSON.stringify(key)}`);
      }

      it('put rejects storage.key', async () => {
        expectKeyError(await rejectionOf(storage.put(key, Buffer.from('x'))));
      });

      it('put stream rejects storage.key', async () => {
        expectKeyError(await rejectionOf(storage.put(key, Readable.from([Buffer.from('x')]))));
      });

      it('get rejects storage.key', async () => {
        expectKeyError(await rejectionOf(storage.get(key)));
      });

      it('stat rejects storage.key', async () => {
        expectKeyError(await rejectionOf(storage.stat(key)));
      });

      it('delete rejects storage.key', async () => {
        expectKeyError(await rejectionOf(storage.delete(key)));
      });
    });
  });
}

async function recursiveFileList(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1));
}

async function temporaryFilesUnder(root: string): Promise<string[]> {
  const files = await recursiveFileList(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return files.filter((file) => file.split('/').pop()!.startsWith(TEMP_PREFIX));
}

describeStorageContract('file', async () => {
  const base = await mkdtemp(join(tmpdir(), 'drplan-file-storage-'));
  const root = join(base, 'repository');
  return {
    storage: new FileStorage('local', pathToFileURL(root).href),
    temporaryFiles: () => temporaryFilesUnder(root),
    dispose: () => rm(base, { recursive: true, force: true }),
  };
});

const BUCKET = 'drplan-contract';
let s3: S3TestServer | undefined;
let prefixCount = 0;

describe('s3 backend', () => {
  beforeAll(async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'S3RVER');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'S3RVER');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    s3 = await startS3Server();
    await s3.createBucket(BUCKET);
  });

  afterAll(async () => {
    await s3?.stop();
    vi.unstubAllEnvs();
  });

  function openS3(url: string, endpoint = s3!.endpoint): S3Storage {
    return new S3Storage('offsite', url, { endpoint, region: 'us-east-1', forcePathStyle: true });
  }

  describeStorageContract('s3', async () => {
    prefixCount += 1;
    return {
      storage: openS3(`s3://${BUCKET}/team/shop-${prefixCount}`),
      dispose: async () => undefined,
    };
  });

  describe('s3 storage', () => {
    it('keys live under url prefix', async () => {
      const storage = openS3(`s3://${BUCKET}/layout/check`);
      await storage.put('backups/app/a.meta.json', Buffer.from('{}'));

      const client = s3Client(s3!.endpoint, s3!.region, { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey });
      try {
        const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'layout/' }));
        expect(page.Contents?.map((object) => object.Key)).toEqual(['layout/check/backups/app/a.meta.json']);
      } finally {
        client.destroy();
      }
    });

    it('url without prefix uses bucket root', async () => {
      const storage = openS3(`s3://${BUCKET}`);
      await storage.put('root-level/a', Buffer.from('a'));

      expect(await listKeys(storage, 'root-level/')).toEqual(['root-level/a']);
      expect(await listKeys(openS3(`s3://${BUCKET}/root-level`), '')).toEqual(['a']);
      await storage.delete('root-level/a');
    });

    it('prefixes do not overlap', async () => {
      const first = openS3(`s3://${BUCKET}/overlap/one`);
      const second = openS3(`s3://${BUCKET}/overlap/one-more`);
      await first.put('a', Buffer.from('1'));
      await second.put('b', Buffer.from('2'));

      expect(await listKeys(first, '')).toEqual(['a']);
      expect(await listKeys(second, '')).toEqual(['b']);
    });

    it('check of missing bucket', async () => {
      const storage = openS3('s3://no-such-bucket/drplan');

      const error = await rejectionOf(storage.check());

      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('storage.bucket');
      expect((error as StorageError).object).toBe('no-such-bucket');
      expect((error as StorageError).message).toBe(`repository offsite: bucket no-such-bucket does not exist at ${s3!.endpoint}`);
      expect((error as StorageError).exitCode).toBe(3);
    });

    it('put to missing bucket', async () => {
      const storage = openS3('s3://no-such-bucket/drplan');

      const error = await rejectionOf(storage.put('backups/app/a', Buffer.from('a')));

      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe('storage.bucket');
      expect((error as StorageError).message).toBe(`repository offsite: bucket no-such-bucket does not exist at ${s3!.endpoint}`);
    });

    it('check of unreachable endpoint', async () => {
      const endpoint = await closedLoopbackEndpoint();
      const storage = openS3(`s3://${BUCKET}/drplan`, endpoint);

      const error = await rejectionOf(storage.check());

      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as ConnectionError).code).toBe('storage.unreachable');
      expect((error as ConnectionError).object).toBe(endpoint);
      expect((error as ConnectionError).message).toBe(`repository offsite: cannot reach ${endpoint}: connect ECONNREFUSED ${endpoint.slice('http://'.length)}`);
      expect((error as ConnectionError).hint).toBe('Check that the S3 endpoint is running and reachable, and the endpoint URL in the plan.');
      expect((error as ConnectionError).exitCode).toBe(3);
    });
  });
});

/** Returns `http://127.0.0.1:PORT` for a port that was just free and has nothing listening now. */
async function closedLoopbackEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  return `http://127.0.0.1:${port}`;
}

describe('file storage', () => {
  let base: string;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'drplan-file-storage-'));
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('keys map to paths under root', async () => {
    const storage = new FileStorage('local', pathToFileURL(join(base, 'repo')).href);

    await storage.put('backups/app/a.meta.json', Buffer.from('{"id":"a"}'));

    expect(await readFile(join(base, 'repo', 'backups', 'app', 'a.meta.json'), 'utf8')).toBe('{"id":"a"}');
    expect(await recursiveFileList(join(base, 'repo'))).toEqual(['backups/app/a.meta.json']);
  });

  it('list skips leftover temp files', async () => {
    const storage = new FileStorage('local', pathToFileURL(join(base, 'repo')).href);
    await storage.put('backups/app/a', Buffer.from('a'));
    await writeFile(join(base, 'repo', 'backups', 'app', `${TEMP_PREFIX}b.dump.0123456789ab`), 'partial');

    expect(await listKeys(storage, '')).toEqual(['backups/app/a']);
    expect(await listKeys(storage, 'backups/app/')).toEqual(['backups/app/a']);
  });

  it('check creates missing root', async () => {
    const root = join(base, 'new', 'repo');
    const storage = new FileStorage('local', pathToFileURL(root).href);

    await storage.check();

    expect(await readdir(root)).toEqual([]);
  });

  it('check under regular file fails', async () => {
    await writeFile(join(base, 'file.txt'), 'not a directory');
    const root = join(base, 'file.txt', 'sub');
    const storage = new FileStorage('local', pathToFileURL(root).href);

    const error = await rejectionOf(storage.check());

    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('storage.io');
    expect((error as StorageError).object).toBe('.');
    expect((error as StorageError).message).toBe(`repository local: cannot create .: ENOTDIR: not a directory, mkdir '${root}'`);
    expect((error as StorageError).hint).toBe(`Check that ${root} exists, is writable by this user and has free space.`);
    expect((error as StorageError).exitCode).toBe(3);
  });

  it('put under regular file fails', async () => {
    await writeFile(join(base, 'file.txt'), 'not a directory');
    const storage = new FileStorage('local', pathToFileURL(join(base, 'file.txt', 'sub')).href);

    const error = await rejectionOf(storage.put('backups/app/a', Buffer.from('a')));

    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('storage.io');
    expect((error as StorageError).object).toBe('backups/app/a');
  });
});
