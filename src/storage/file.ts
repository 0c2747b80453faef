/**
 * Local-disk backend for `file:///absolute/path` repositories.
 *
 * Writes go to a hidden temporary file in the target directory, are fsync-ed,
 * then renamed over the final name and the directory is fsync-ed, so an
 * object is either complete or absent. Temporary files carry TEMP_PREFIX
 * and are never listed.
 */
import { createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { NotFoundError, StorageError } from '../errors.js';
import { assertSafeKey } from './keys.js';
import type { IncompleteWrite, ObjectInfo, PutOptions, Storage } from './storage.js';

/** Prefix of in-flight temporary files; a file with it and no writer is a partial object. */
export const TEMP_PREFIX = '.drplan-tmp-';

export class FileStorage implements Storage {
  readonly root: string;

  constructor(
    readonly name: string,
    readonly url: string,
  ) {
    this.root = fileURLToPath(url);
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true }).catch((err) => {
      throw this.ioError('create directory for', key, err);
    });
    // pipeline() given a signal that is already aborted can destroy a stream after its listeners are gone, an uncaught error.
    if (options.signal?.aborted) throw abortError(options.signal);
    const temp = path.join(path.dirname(target), `${TEMP_PREFIX}${path.basename(target)}.${randomBytes(6).toString('hex')}`);
    try {
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      await pipeline(source, createWriteStream(temp, { flags: 'wx' }), { signal: options.signal });
      await syncPath(temp);
      await rename(temp, target);
      await syncPath(path.dirname(target));
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if ((err as Error).name === 'AbortError') throw err;
      throw err instanceof StorageError ? err : this.ioError('write', key, err);
    }
    const info = await stat(target);
    return { key, size: info.size, modified: info.mtime };
  }

  async putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true }).catch((err) => {
      throw this.ioError('create directory for', key, err);
    });
    const temp = path.join(path.dirname(target), `${TEMP_PREFIX}${path.basename(target)}.${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(temp, body, { flag: 'wx' });
      await syncPath(temp);
      // link() fails when the target exists, so the complete file appears atomically or not at all.
      await link(temp, target);
      await syncPath(path.dirname(target));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.ioError('create', key, err);
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new NotFoundError(`object ${key} not found in repository ${this.name}`, { code: 'storage.missing', object: key });
      throw this.ioError('open', key, err);
    });
    return handle.createReadStream({ highWaterMark: 1 << 20 });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(key);
    try {
      const info = await stat(file);
      return info.isFile() ? { key, size: info.size, modified: info.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.ioError('stat', key, err);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* this.walk(this.root, prefix);
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw this.ioError('delete', key, err);
    });
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true }).catch((err) => {
      throw this.ioError('create', '.', err);
    });
  }

  async *listIncomplete(): AsyncIterable<IncompleteWrite> {
    for await (const info of this.walk(this.root, '', true)) yield { key: info.key, started: info.modified };
  }

  async abortIncomplete(write: IncompleteWrite): Promise<void> {
    await this.delete(write.key);
  }

  private async *walk(dir: string, prefix: string, partialOnly = false): AsyncIterable<ObjectInfo> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.ioError('list', path.relative(this.root, dir) || '.', err);
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      const key = path.relative(this.root, full).split(path.sep).join('/');
      if (entry.isDirectory()) {
        if (prefix.startsWith(`${key}/`) || key.startsWith(prefix) || `${key}/`.startsWith(prefix)) yield* this.walk(full, prefix, partialOnly);
        continue;
      }
      const isTemp = entry.name.startsWith(TEMP_PREFIX);
      if (!entry.isFile() || isTemp !== partialOnly || !key.startsWith(prefix)) continue;
      const info = await stat(full).catch(() => undefined);
      if (info) yield { key, size: info.size, modified: info.mtime };
    }
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  private ioError(action: string, key: string, err: unknown): StorageError {
    const message = (err as Error).message;
    return new StorageError(`repository ${this.name}: cannot ${action} ${key}: ${message}`, {
      code: 'storage.io',
      object: key,
      hint: `Check that ${this.root} exists, is writable by this user and has free space.`,
      cause: err,
    });
  }
}

async function syncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Returns the error pipeline() raises for an aborted signal, with the abort reason as its cause. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}
