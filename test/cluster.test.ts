import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { access } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../src/postgres/cluster.js';
import { loadSqlFile, query, tableFingerprints, type TableFingerprint } from './helpers/pg.js';
import { s3Client, startS3Server, type S3TestServer } from './helpers/s3.js';

const chinookSql = fileURLToPath(new URL('../testdata/chinook/chinook.sql', import.meta.url));

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('throwaway cluster', () => {
  let cluster: ThrowawayCluster;
  let fingerprints: Record<string, TableFingerprint>;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    await loadSqlFile(cluster, chinookSql);
    fingerprints = await tableFingerprints(cluster.url('chinook'));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('listens on loopback with password login', () => {
    expect(cluster.host).toBe('127.0.0.1');
    expect(cluster.superuser).toBe('postgres');
    expect(cluster.password.length).toBeGreaterThanOrEqual(16);
    expect(cluster.url('chinook')).toBe(`postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${cluster.port}/chinook`);
  });

  it('loads chinook with all rows', () => {
    expect(Object.keys(fingerprints).sort()).toEqual([
      'public.album',
      'public.artist',
      'public.customer',
      'public.employee',
      'public.genre',
      'public.invoice',
      'public.invoice_line',
      'public.media_type',
      'public.playlist',
      'public.playlist_track',
      'public.track',
    ]);
    expect(fingerprints['public.track']?.rows).toBe(3503);
    expect(fingerprints['public.invoice_line']?.rows).toBe(2240);
    expect(fingerprints['public.playlist_track']?.rows).toBe(8715);
    expect(fingerprints['public.track']?.md5).toMatch(/^[0-9a-f]{32}$/);
  });

  it('fingerprints are stable and detect a change', async () => {
    expect(await tableFingerprints(cluster.url('chinook'))).toEqual(fingerprints);

    await query(cluster.url('chinook'), "UPDATE artist SET name = name || ' ' WHERE artist_id = 1");
    const changed = await tableFingerprints(cluster.url('chinook'));
    await query(cluster.url('chinook'), 'UPDATE artist SET name = rtrim(name) WHERE artist_id = 1');

    expect(changed['public.artist']?.rows).toBe(fingerprints['public.artist']?.rows);
    expect(changed['public.artist']?.md5).not.toBe(fingerprints['public.artist']?.md5);
    expect(changed['public.album']).toEqual(fingerprints['public.album']);
  });

  it('fingerprints tables without a primary key', async () => {
    await query(cluster.url(), 'CREATE TABLE loose (note text, amount numeric)');
    await query(cluster.url(), "INSERT INTO loose VALUES ('b', 2), ('a', 1), (NULL, NULL)");
    const before = await tableFingerprints(cluster.url());
    await query(cluster.url(), 'DELETE FROM loose');
    await query(cluster.url(), "INSERT INTO loose VALUES (NULL, NULL), ('a', 1), ('b', 2)");
    const after = await tableFingerprints(cluster.url());

    expect(before['public.loose']?.rows).toBe(3);
    expect(after['public.loose']).toEqual(before['public.loose']);
  });

  it('rejects a wrong password', async () => {
    const wrongUrl = `postgres://postgres:wrong-password@127.0.0.1:${cluster.port}/postgres`;
    await expect(query(wrongUrl, 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });
  });
});

describe('throwaway cluster stop', () => {
  it('removes its directory and is idempotent', async () => {
    const cluster = await startThrowawayCluster({ settings: { fsync: 'off', application_name: "it's drplan" } });
    const root = dirname(cluster.dataDir);
    const rows = await query<{ fsync: string; app: string }>(
      cluster.url(),
      "SELECT current_setting('fsync') AS fsync, current_setting('application_name') AS app",
    );
    expect(rows).toEqual([{ fsync: 'off', app: "it's drplan" }]);

    await cluster.stop();
    await cluster.stop();

    expect(await exists(root)).toBe(false);
    await expect(query(cluster.url(), 'SELECT 1')).rejects.toThrow();
  });
});

describe('s3 test server', () => {
  let server: S3TestServer;

  beforeAll(async () => {
    server = await startS3Server();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('stores and returns an object', async () => {
    await server.createBucket('backups');
    const client = s3Client(server.endpoint, server.region, server);
    try {
      await client.send(new PutObjectCommand({ Bucket: 'backups', Key: 'dir/hello.txt', Body: 'hello, drplan' }));
      const got = await client.send(new GetObjectCommand({ Bucket: 'backups', Key: 'dir/hello.txt' }));
      expect(await got.Body?.transformToString()).toBe('hello, drplan');
    } finally {
      client.destroy();
    }
  });

  it('stores a streamed body byte for byte', async () => {
    await server.createBucket('streamed');
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    const client = s3Client(server.endpoint, server.region, server);
    try {
      await client.send(new PutObjectCommand({ Bucket: 'streamed', Key: 'blob', Body: Readable.from([body]), ContentLength: body.length }));
      const got = await client.send(new GetObjectCommand({ Bucket: 'streamed', Key: 'blob' }));
      const stored = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
      expect(stored.length).toBe(body.length);
      expect(stored.equals(body)).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it('stop removes its directory', async () => {
    const other = await startS3Server();
    await other.createBucket('gone');
    await other.stop();
    await other.stop();

    expect(await exists(other.directory)).toBe(false);
  });
});
