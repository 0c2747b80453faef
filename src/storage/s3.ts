/**
 * S3 backend for `s3://bucket/prefix` repositories, through the AWS SDK, so
 * that AWS S3, MinIO, Ceph, Cloudflare R2 and other compatible stores work.
 *
 * Large writes are multipart uploads that become visible only on completion;
 * a failed or aborted upload is aborted on the server, so no parts remain.
 * Credentials come from the SDK's standard chain (AWS_ACCESS_KEY_ID and
 * friends, profiles, instance roles) and never from the plan file.
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Readable } from 'node:stream';
import { ConnectionError, DrplanError, NotFoundError, StorageError } from '../errors.js';
import { assertSafeKey } from './keys.js';
import type { IncompleteWrite, ObjectInfo, PutOptions, Storage } from './storage.js';

/** Part size and parallel parts of a multipart upload; memory use is about their product. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 4;
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 60_000;

export interface S3Options {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

export class S3Storage implements Storage {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;

  constructor(
    readonly name: string,
    readonly url: string,
    private readonly options: S3Options = {},
  ) {
    const parsed = new URL(url);
    this.bucket = parsed.hostname;
    this.prefix = parsed.pathname.replace(/^\/+|\/+$/g, '');
    // The SDK warns on every run under Node.js 20 about its own future
    // releases; the versions drplan ships with support Node.js 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: 3,
      // A store that stops responding without closing the connection must not
      // stall a backup or verify forever, so requests give up after a minute of silence.
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: IDLE_TIMEOUT_MS },
      // Flexible checksums are not implemented by every S3-compatible store;
      // drplan verifies its own SHA-256 of every object instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    const objectKey = this.objectKey(key);
    if (Buffer.isBuffer(body)) {
      await this.send('write', key, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body }), { abortSignal: options.signal }));
      return { key, size: body.length, modified: new Date() };
    }
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: objectKey, Body: body },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => undefined);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.send('upload', key, () => upload.done());
    } catch (err) {
      // A failed body has no HTTP status, so mapError would report an unreachable endpoint.
      // Report the body's own error instead, even when aborting the multipart upload failed afterwards.
      const bodyError = body.errored;
      if (bodyError && (err as Error).name !== 'AbortError') {
        throw new StorageError(`repository ${this.name}: cannot write ${key}: ${bodyError.message}`, { code: 'storage.io', object: key, cause: bodyError });
      }
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const info = await this.stat(key);
    if (!info) throw new StorageError(`repository ${this.name}: ${key} is missing right after its upload completed`, { code: 'storage.lost', object: key });
    return info;
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    try {
      await this.send('create', key, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Body: body, IfNoneMatch: '*' })));
      return true;
    } catch (err) {
      const status = ((err as DrplanError).cause as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      throw err;
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const response = await this.send('read', key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { abortSignal: options.signal }),
    );
    return response.Body as Readable;
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const head = await this.send('stat', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })));
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    const base = this.prefix ? `${this.prefix}/` : '';
    do {
      const page = await this.send('list', prefix || '.', () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base + prefix, ContinuationToken: token })),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        yield { key: object.Key.slice(base.length), size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    await this.send('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })));
  }

  async *listIncomplete(): AsyncIterable<IncompleteWrite> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    const base = this.prefix ? `${this.prefix}/` : '';
    do {
      let page;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: base, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        // Some S3-compatible stores (s3rver among them) do not implement this call.
        if (status === 501 || status === 405) return;
        throw this.mapError('list uploads', '.', err);
      }
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        yield { key: upload.Key.slice(base.length), started: upload.Initiated ?? new Date(0), uploadId: upload.UploadId };
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  async abortIncomplete(write: IncompleteWrite): Promise<void> {
    await this.send('abort upload', write.key, () =>
      this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.objectKey(write.key), UploadId: write.uploadId })),
    ).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
  }

  async check(): Promise<void> {
    try {
      await this.send('check', '.', () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
    } catch (err) {
      if (err instanceof NotFoundError) throw this.missingBucket(err);
      throw err;
    }
  }

  private missingBucket(cause: unknown): StorageError {
    return new StorageError(`repository ${this.name}: bucket ${this.bucket} does not exist at ${this.endpointName()}`, {
      code: 'storage.bucket',
      object: this.bucket,
      hint: `Create the bucket ${this.bucket}, or correct the bucket in the repository URL ${this.url}.`,
      cause,
    });
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private endpointName(): string {
    return this.options.endpoint ?? `AWS S3 (${this.options.region ?? process.env.AWS_REGION ?? 'us-east-1'})`;
  }

  /** Runs one SDK call and maps its failures onto drplan's error classes. */
  private async send<T>(action: string, key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.mapError(action, key, err);
    }
  }

  private mapError(action: string, key: string, err: unknown): Error {
    const error = err as Error & { $metadata?: { httpStatusCode?: number }; code?: string; Code?: string };
    const status = error.$metadata?.httpStatusCode;
    if (error instanceof DrplanError) return error;
    if (error.name === 'AbortError') return error;
    if (error.name === 'NoSuchKey' || error.name === 'NotFound' || (status === 404 && error.name !== 'NoSuchBucket')) {
      return new NotFoundError(`object ${key} not found in repository ${this.name}`, { code: 'storage.missing', object: key, cause: err });
    }
    if (error.name === 'NoSuchBucket') return this.missingBucket(err);
    if (error.name === 'CredentialsProviderError') {
      return new StorageError(`repository ${this.name}: no S3 credentials found: ${error.message}`, {
        code: 'storage.credentials',
        object: this.url,
        hint: 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment of drplan.',
        cause: err,
      });
    }
    if (status === undefined) {
      const operation = key === '.' ? '' : ` to ${action} ${key}`;
      return new ConnectionError(`repository ${this.name}: cannot reach ${this.endpointName()}${operation}: ${error.message || error.code || error.name}`, {
        code: 'storage.unreachable',
        object: this.endpointName(),
        hint: 'Check that the S3 endpoint is running and reachable, and the endpoint URL in the plan.',
        cause: err,
      });
    }
    const denied = status === 403;
    return new StorageError(`repository ${this.name}: ${action} ${key} failed with HTTP ${status} (${error.name}): ${error.message}`, {
      code: denied ? 'storage.denied' : 'storage.request',
      object: key,
      hint: denied ? 'Check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket policy.' : undefined,
      cause: err,
    });
  }
}
