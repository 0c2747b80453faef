/**
 * Writes a file set as a tar stream: walks the configured paths, skips
 * excluded ones, and adds regular files, directories and symbolic links with
 * their mode, owner and modification time.
 *
 * Entry names are the absolute path without its leading "/", so
 * `/srv/shop/uploads/a.png` is stored as `srv/shop/uploads/a.png` and files
 * from different configured directories never collide. Names longer than the
 * ustar limit, or not ASCII, get a pax header (tar-stream writes it). The
 * modification time is stored in whole seconds, as ustar headers hold it.
 *
 * Exclude patterns (picomatch glob syntax, dot files included):
 * - a pattern without "/" matches the base name of any entry, such as `*.tmp`
 *   or `cache`;
 * - a pattern with "/" matches the path relative to the configured directory,
 *   such as `build/tmp` or `logs/*.gz`;
 * - a pattern starting with "/" matches the absolute path.
 * An excluded directory is skipped with everything below it.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import type { Pack } from 'tar-stream';
import { AbortedError, ConfigError, DrplanError, IntegrityError, StorageError } from '../errors.js';
import type { Logger } from '../logging.js';

export interface FilesetSource {
  name: string;
  paths: string[];
  exclude?: string[];
}

/** Contents of the archive, as the metadata records them. */
export interface ArchiveSummary {
  /** Regular files archived. */
  fileCount: number;
  /** Bytes of file content archived. */
  fileBytes: number;
  /** Every entry name, in archive order; directories end with "/". */
  entries: string[];
}

const READ_CHUNK = 1 << 20;

/** The part of a tar-stream entry (a streamx Writable) that the walker uses. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): void;
  on(event: 'drain' | 'close', listener: () => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  off(event: 'drain' | 'close', listener: () => void): void;
}

/** Returns the tar entry name of an absolute path: the path without its leading "/". */
export function entryName(absolutePath: string): string {
  return path.resolve(absolutePath).replace(/^\/+/, '');
}

/** Returns a test for exclusion by the file set's patterns, given a path relative to its configured directory and the absolute path. */
export function excludeMatcher(patterns: string[]): (relative: string, absolute: string) => boolean {
  const absolute = patterns.filter((p) => p.startsWith('/'));
  const relative = patterns.filter((p) => !p.startsWith('/') && p.includes('/'));
  const baseName = patterns.filter((p) => !p.includes('/'));
  const matchAbsolute = compile(absolute, {});
  const matchRelative = compile(relative, {});
  // picomatch's `basename` option applies to every pattern it is given, so only the patterns without "/" get it.
  const matchBaseName = compile(baseName, { basename: true });
  return (rel, abs) => matchAbsolute(abs) || (rel !== '' && (matchRelative(rel) || matchBaseName(rel)));
}

function compile(patterns: string[], options: picomatch.PicomatchOptions): (path: string) => boolean {
  return patterns.length > 0 ? picomatch(patterns, { dot: true, ...options }) : () => false;
}

/**
 * Checks that every configured path is absolute and exists, so that a typo
 * in the plan fails before anything is written.
 */
export async function checkFilesetPaths(fileset: FilesetSource): Promise<void> {
  for (const [index, configured] of fileset.paths.entries()) {
    const field = `files[${fileset.name}].paths[${index}]`;
    if (!path.isAbsolute(configured)) {
      throw new ConfigError(`${field}: ${JSON.stringify(configured)} is not an absolute path`, { code: 'config.files.path', object: field, hint: 'Write the full path, such as /srv/shop/uploads.' });
    }
    try {
      await lstat(configured);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (err as Error).message})`;
      throw new ConfigError(`${field}: path ${configured} of file set ${fileset.name} ${reason}`, {
        code: 'config.files.path',
        object: configured,
        hint: 'Fix the path in the plan, or create it, then run the backup again.',
        cause: err,
      });
    }
  }
}

/** Writes every entry of the file set into `pack`, then finalizes it. */
export async function packFileset(fileset: FilesetSource, pack: Pack, log: Logger, signal: AbortSignal): Promise<ArchiveSummary> {
  const walker = new Walker(pack, excludeMatcher(fileset.exclude ?? []), log, signal);
  for (const configured of fileset.paths) {
    const root = path.resolve(configured);
    await walker.add(root, root);
  }
  pack.finalize();
  return walker.summary;
}

class Walker {
  readonly summary: ArchiveSummary = { fileCount: 0, fileBytes: 0, entries: [] };
  /** Entry names already written: overlapping configured paths add each entry once. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly pack: Pack,
    private readonly excluded: (relative: string, absolute: string) => boolean,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  /** Adds `absolute` (and, for a directory, everything below it) unless excluded. */
  async add(absolute: string, root: string): Promise<void> {
    if (this.signal.aborted) throw new AbortedError('file-set backup interrupted; nothing was committed', { code: 'backup.aborted' });
    const relative = path.relative(root, absolute);
    if (this.excluded(relative, absolute)) {
      this.log.debug({ path: absolute }, 'excluded');
      return;
    }
    const stats = await this.statOrSkip(absolute);
    if (!stats) return;
    const name = entryName(absolute) + (stats.isDirectory() ? '/' : '');
    if (this.seen.has(name)) return;
    this.seen.add(name);

    if (stats.isDirectory()) return this.addDirectory(absolute, root, name, stats);
    if (stats.isSymbolicLink()) return this.addSymlink(absolute, name, stats);
    if (stats.isFile()) return this.addFile(absolute, name);
    this.log.warn({ path: absolute }, 'skipped: not a regular file, directory or symbolic link');
  }

  private async addDirectory(absolute: string, root: string, name: string, stats: Stats): Promise<void> {
    await this.writeEntry({ name, type: 'directory', ...ownership(stats) });
    let children: string[];
    try {
      children = await readdir(absolute);
    } catch (err) {
      if (isVanished(err)) return this.warnVanished(absolute);
      throw readError(absolute, err);
    }
    // Sorted, so two backups of the same tree list their entries in the same order.
    for (const child of children.sort()) await this.add(path.join(absolute, child), root);
  }

  private async addSymlink(absolute: string, name: string, stats: Stats): Promise<void> {
    let target: string;
    try {
      target = await readlink(absolute);
    } catch (err) {
      if (isVanished(err)) return this.warnVanished(absolute);
      throw readError(absolute, err);
    }
    await this.writeEntry({ name, type: 'symlink', linkname: target, ...ownership(stats) });
  }

  /**
   * Adds a regular file. Its size goes into the tar header before the
   * content, so a file that changes while it is read cannot be stored as it
   * was: a change in size or modification time fails the backup.
   */
  private async addFile(absolute: string, name: string): Promise<void> {
    let handle: FileHandle;
    try {
      // O_NOFOLLOW and O_NONBLOCK: a file replaced by a link or a FIFO since the lstat must not be followed or block.
      handle = await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if (isVanished(err)) return this.warnVanished(absolute);
      throw readError(absolute, err);
    }
    try {
      const before = await handle.stat();
      if (!before.isFile()) throw changedError(absolute, 'it is no longer a regular file');
      const done = this.openEntry({ name, type: 'file', size: before.size, ...ownership(before) });
      await copyContent(handle, done.sink, before.size, absolute, this.signal).catch((err: unknown) => {
        throw err instanceof DrplanError ? err : readError(absolute, err);
      });
      const after = await handle.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
        throw changedError(absolute, `size ${before.size} -> ${after.size} bytes, modified ${before.mtime.toISOString()} -> ${after.mtime.toISOString()}`);
      }
      done.sink.end();
      await done.finished;
      this.summary.fileCount += 1;
      this.summary.fileBytes += before.size;
    } finally {
      await handle.close();
    }
  }

  private async statOrSkip(absolute: string): Promise<Stats | undefined> {
    try {
      return await lstat(absolute);
    } catch (err) {
      if (isVanished(err)) {
        this.warnVanished(absolute);
        return undefined;
      }
      throw readError(absolute, err);
    }
  }

  private warnVanished(absolute: string): void {
    this.log.warn({ path: absolute }, 'skipped: removed while the backup ran');
  }

  private async writeEntry(header: Parameters<Pack['entry']>[0]): Promise<void> {
    await this.openEntry(header).finished;
  }

  private openEntry(header: Parameters<Pack['entry']>[0]): { sink: EntrySink; finished: Promise<void> } {
    let sink!: EntrySink;
    const finished = new Promise<void>((resolve, reject) => {
      sink = this.pack.entry(header, (err) => (err ? reject(err) : resolve())) as unknown as EntrySink;
    });
    // The entry's callback reports its failure; without a listener, the same error
    // emitted when a failed backup destroys the tar stream would crash the process.
    sink.on('error', () => undefined);
    // A file that fails half-way is abandoned without awaiting its entry, so the rejection is marked handled here.
    finished.catch(() => undefined);
    // The name is recorded when the entry starts, so the list follows archive order.
    this.summary.entries.push(header.name);
    return { sink, finished };
  }
}

/** Returns the header fields from `stats`: the mode with its type bits (so tar-stream keeps a mode of 0), owner and time. */
function ownership(stats: Stats) {
  return { mode: stats.mode, uid: stats.uid, gid: stats.gid, mtime: stats.mtime };
}

/** Copies exactly `size` bytes into the entry, and fails when the file turns out shorter or longer. */
async function copyContent(handle: FileHandle, sink: EntrySink, size: number, absolute: string, signal: AbortSignal): Promise<void> {
  let offset = 0;
  while (offset < size) {
    if (signal.aborted) throw new AbortedError('file-set backup interrupted; nothing was committed', { code: 'backup.aborted' });
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - offset));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    if (bytesRead === 0) throw changedError(absolute, `it shrank to ${offset} bytes while being read (expected ${size})`);
    offset += bytesRead;
    if (!sink.write(buffer.subarray(0, bytesRead))) await drained(sink, signal);
  }
  const probe = await handle.read(Buffer.alloc(1), 0, 1, size);
  if (probe.bytesRead > 0) throw changedError(absolute, `it grew beyond ${size} bytes while being read`);
}

function drained(sink: EntrySink, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      sink.off('drain', onDrain);
      sink.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error('the tar stream closed before the file was written'));
    };
    const onAbort = () => {
      cleanup();
      reject(new AbortedError('file-set backup interrupted; nothing was committed', { code: 'backup.aborted' }));
    };
    sink.on('drain', onDrain);
    sink.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function isVanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function readError(absolute: string, err: unknown): StorageError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new StorageError(`cannot read ${absolute}: ${code}`, {
    code: 'files.read',
    object: absolute,
    hint: 'Give drplan read access to the path, or exclude it in the file set; nothing was committed.',
    cause: err,
  });
}

function changedError(absolute: string, detail: string): IntegrityError {
  return new IntegrityError(`file ${absolute} changed while it was archived (${detail}); nothing was committed`, {
    code: 'files.changed',
    object: absolute,
    hint: 'Run the backup again when the file is not being written, or exclude it from the file set.',
  });
}
