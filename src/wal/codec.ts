/**
 * Compression of whole WAL files in memory. A segment is 16 MiB by default,
 * so buffering it costs less than streaming plumbing, and the archiver needs
 * the complete stored bytes anyway for a conditional write.
 * NOTE: a server initialized with the largest segment size (1 GiB) makes each
 * push hold about two segments in memory.
 * zstd output comes from the standard `zstd` program (with its frame
 * checksum), so `zstd -d` reads every archived file.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { Compression } from '../config/schema.js';
import { DEFAULT_LEVEL } from '../backup/compression.js';
import { startProcess } from '../util/process.js';

/** Returns `bytes` compressed with `algorithm`. */
export async function compressBuffer(bytes: Buffer, algorithm: Compression, level: number | undefined): Promise<Buffer> {
  const effective = level ?? DEFAULT_LEVEL[algorithm];
  if (algorithm === 'zstd') return runZstd(['-q', '-c', `-${effective}`, '-'], bytes, 'compress WAL with zstd');
  if (algorithm === 'gzip') return promisify(gzip)(bytes, { level: effective });
  return bytes;
}

/** Returns `bytes` decompressed; rejects when the data is damaged (zstd checks its frame checksum, gzip its CRC). */
export async function decompressBuffer(bytes: Buffer, algorithm: Compression): Promise<Buffer> {
  if (algorithm === 'zstd') return runZstd(['-q', '-d', '-c', '-'], bytes, 'decompress WAL with zstd');
  if (algorithm === 'gzip') return promisify(gunzip)(bytes);
  return bytes;
}

/** Returns the hex SHA-256 of `bytes`. */
export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function runZstd(args: string[], input: Buffer, operation: string): Promise<Buffer> {
  const child = startProcess('zstd', args, { stdin: Readable.from([input]), operation });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await child.done;
  return Buffer.concat(chunks);
}
