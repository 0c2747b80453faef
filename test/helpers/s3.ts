/**
 * A local S3 endpoint for tests: s3rver on 127.0.0.1 with a free port and its
 * own temp directory.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Subset of the s3rver 3.7 API that these tests use, because the package ships no type declarations. */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

export interface S3TestServer {
  /** Base URL such as `http://127.0.0.1:40123`. Clients must use path-style addressing. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Temp directory where s3rver keeps buckets and objects. */
  directory: string;
  createBucket(name: string): Promise<void>;
  /** Stops the server and deletes its directory. Safe to call more than once. */
  stop(): Promise<void>;
}

/** Starts s3rver on a free port of 127.0.0.1 with an empty store. */
export async function startS3Server(): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 'drplan-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }

  // s3rver 3.7 accepts only this access key id but does not verify SigV4 signatures,
  // so a wrong secret key is accepted while an unknown access key id gets InvalidAccessKeyId.
  const endpoint = `http://127.0.0.1:${address.port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const region = 'us-east-1';

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    // Keep-alive sockets from SDK clients would otherwise hold close() open.
    server.httpServer?.closeAllConnections();
    await server.close();
    await rm(directory, { recursive: true, force: true });
  };

  return {
    endpoint,
    ...credentials,
    region,
    directory,
    async createBucket(name: string) {
      const client = s3Client(endpoint, region, credentials);
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    stop: () => (stopping ??= stop()),
  };
}

/**
 * Creates an SDK client for the server. s3rver 3.7 predates the SDK's default
 * request checksums. With them, a streamed PutObject body is sent aws-chunked
 * with a trailing checksum, and s3rver stores the chunk framing as part of the
 * object. Checksums are therefore limited to the operations that require them.
 */
export function s3Client(endpoint: string, region: string, credentials: { accessKeyId: string; secretAccessKey: string }): S3Client {
  return new S3Client({
    endpoint,
    region,
    credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
