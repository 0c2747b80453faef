/**
 * Stream helpers: counting and hashing bytes as they pass, and copying one
 * stream to several writers with back-pressure from the slowest.
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, Writable, type TransformCallback } from 'node:stream';

/**
 * Pipes `source` into `destination` and passes a source error on by
 * destroying the destination with it. Plain `.pipe()` leaves the destination
 * open when the source fails (a dropped download), and everything
 * downstream then waits forever.
 */
export function pipeInto<T extends NodeJS.WritableStream & { destroy(error?: Error): unknown }>(source: NodeJS.ReadableStream, destination: T): T {
  source.once('error', (error: Error) => destination.destroy(error));
  source.pipe(destination);
  return destination;
}

/** Counts and optionally hashes (SHA-256) the bytes that pass through. */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash?: Hash;

  constructor(
    options: { sha256?: boolean } = {},
    private readonly onProgress?: (bytes: number) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
    if (options.sha256) this.hash = createHash('sha256');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    this.onProgress?.(this.bytes);
    callback(null, chunk);
  }

  /** Returns the hex SHA-256 of every byte that passed; call it after the stream has ended. */
  digest(): string {
    if (!this.hash) throw new Error('Meter was created without sha256');
    return this.hash.digest('hex');
  }
}

/**
 * A writable that copies every chunk to each branch and waits until all of
 * them have drained before taking the next, so memory stays bounded by the
 * branches' buffers whatever the slowest consumer does.
 */
export class Tee extends Writable {
  readonly branches: PassThrough[];

  constructor(count: number) {
    super({ highWaterMark: 1 << 20 });
    this.branches = Array.from({ length: count }, () => new PassThrough({ highWaterMark: 4 << 20 }));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits = this.branches.filter((branch) => !branch.destroyed && !branch.write(chunk)).map((branch) => waitForDrain(branch));
    if (waits.length === 0) return callback();
    Promise.all(waits).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const branch of this.branches) branch.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A Tee is also destroyed after a normal finish (autoDestroy); the
    // branches may still hold data for their readers then and must stay.
    if (error) for (const branch of this.branches) branch.destroy(error);
    callback(error);
  }
}

function waitForDrain(stream: PassThrough): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      stream.off('drain', onDrain);
      reject(new Error('a storage branch closed before the backup stream ended'));
    };
    stream.once('drain', onDrain);
    stream.once('close', onClose);
  });
}
