/**
 * Compression and decompression of backup streams.
 *
 * zstd runs as the standard `zstd` program, because Node.js 20 has no zstd in
 * zlib and that program's output is what `zstd -d` reads. It also compresses
 * on several threads (`-T0`). gzip uses Node's zlib, and `none` passes bytes
 * through.
 */
import { createGunzip, createGzip } from 'node:zlib';
import { createWriteStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startProcess } from '../util/process.js';
import type { Compression } from '../config/schema.js';

export const DEFAULT_LEVEL: Record<Compression, number | undefined> = { zstd: 3, gzip: 6, none: undefined };

/** A transformed stream and a promise that settles when its producer has finished. */
export interface CodecStream {
  output: Readable;
  done: Promise<void>;
}

/** Compresses `input`; `done` rejects when the compressor fails. */
export function compress(input: Readable, algorithm: Compression, level: number | undefined, signal?: AbortSignal): CodecStream {
  const effective = level ?? DEFAULT_LEVEL[algorithm];
  if (algorithm === 'zstd') {
    const child = startProcess('zstd', ['-q', '-c', '-T0', `-${effective}`, '-'], { stdin: input, signal, operation: 'compress with zstd' });
    return { output: child.stdout as Readable, done: child.done };
  }
  if (algorithm === 'gzip') return viaTransform(input, createGzip({ level: effective }));
  return viaTransform(input, new PassThrough());
}

/** Decompresses `input`; zstd checks its frame checksum, gzip its CRC. */
export function decompress(input: Readable, algorithm: Compression, signal?: AbortSignal): CodecStream {
  if (algorithm === 'zstd') {
    const child = startProcess('zstd', ['-q', '-d', '-c', '-'], { stdin: input, signal, operation: 'decompress with zstd' });
    return { output: child.stdout as Readable, done: child.done };
  }
  if (algorithm === 'gzip') return viaTransform(input, createGunzip());
  return viaTransform(input, new PassThrough());
}

/**
 * Decompresses `input` into `file`. zstd writes the file itself, so the
 * decompressed bytes (about three times the stored size in the benchmark)
 * never pass through Node. That copy was most of the time a restore spent
 * before pg_restore started.
 */
export async function decompressToFile(input: Readable, algorithm: Compression, file: string, signal?: AbortSignal): Promise<void> {
  if (algorithm === 'zstd') {
    const child = startProcess('zstd', ['-q', '-d', '-f', '-o', file, '-'], { stdin: input, signal, operation: 'decompress with zstd' });
    child.stdout.resume();
    return child.done;
  }
  const plain = decompress(input, algorithm, signal);
  await Promise.all([pipeline(plain.output, createWriteStream(file), { signal }), plain.done]);
}

function viaTransform(input: Readable, transform: NodeJS.ReadWriteStream & Readable): CodecStream {
  const done = new Promise<void>((resolve, reject) => {
    transform.once('end', resolve);
    transform.once('error', reject);
    input.once('error', (err) => {
      transform.destroy(err);
      reject(err);
    });
  });
  input.pipe(transform);
  // The consumer of the output also gets this error, so it is not reported twice.
  done.catch(() => undefined);
  return { output: transform, done };
}
