/**
 * The one storage interface that every repository backend implements.
 *
 * Keys are relative, slash-separated paths such as
 * `backups/app/backup_20261204_020000.meta.json`. A backend maps them under its
 * own root (a directory, or a bucket and prefix) and never outside it.
 */
import type { Readable } from 'node:stream';

/** One stored object as listed or stat-ed. */
export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

/** A write that never completed: a temporary file, or an unfinished multipart upload. */
export interface IncompleteWrite {
  /** The key being written, or the temporary file's key. */
  key: string;
  started: Date;
  /** The S3 multipart upload id. */
  uploadId?: string;
}

export interface PutOptions {
  /** Aborting the signal aborts the write and leaves no object behind. */
  signal?: AbortSignal;
}

/**
 * A repository backend.
 *
 * Contract:
 * - `putIfAbsent` creates a small object only when no object has the key and
 *   resolves to false, writing nothing, when one exists. Local disk makes
 *   this atomic. On S3 it relies on conditional writes (`If-None-Match`),
 *   which some S3-compatible stores ignore, so callers that need mutual
 *   exclusion read the object back to confirm what they wrote.
 * - `put` is atomic: the object becomes visible under its key only after the
 *   whole body has been written durably (local: fsync and rename; S3: a
 *   completed multipart upload). When the body errors, the signal aborts or
 *   the write fails, `put` rejects and no object and no partial upload is left.
 *   `put` replaces an existing object of the same key.
 * - `get` resolves to a stream of the object's bytes; it rejects with
 *   `NotFoundError` when the object does not exist.
 * - `stat` resolves to `undefined` when the object does not exist.
 * - `list` yields every object whose key starts with `prefix`, in no
 *   particular order; a missing prefix yields nothing.
 * - `delete` of a missing object succeeds.
 * - `check` rejects with `ConnectionError` when the endpoint cannot be reached
 *   and with `StorageError` when it answers but the repository cannot be used
 *   (missing bucket, permission denied).
 */
export interface Storage {
  /** The repository name from the plan. */
  readonly name: string;
  /** The repository URL without credentials, for messages. */
  readonly url: string;
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<ObjectInfo>;
  putIfAbsent(key: string, body: Buffer): Promise<boolean>;
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  check(): Promise<void>;
  /**
   * Lists writes left behind by crashed runs; a backend that cannot list
   * them (an S3-compatible store without ListMultipartUploads) yields nothing.
   */
  listIncomplete(): AsyncIterable<IncompleteWrite>;
  /** Removes one incomplete write; one already gone is not an error. */
  abortIncomplete(write: IncompleteWrite): Promise<void>;
}

/**
 * Returns `message` prefixed with "repository NAME: ", unless it already
 * starts so: the backends put that prefix on their own errors, and callers
 * that report several repositories add it to messages from elsewhere.
 */
export function withRepositoryPrefix(repository: string, message: string): string {
  const prefix = `repository ${repository}: `;
  return message.startsWith(prefix) ? message : `${prefix}${message}`;
}
