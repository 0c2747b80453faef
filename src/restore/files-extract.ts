/**
 * Extracts a file-set tar archive into a directory: regular files with their
 * bytes, mode and modification time, directories, and symbolic links as
 * links. Ownership is restored only when running as root, because only root
 * may give a file to another user.
 *
 * Every entry must stay inside the directory: absolute names, ".." segments
 * and names that lead through a symbolic link (one from the archive or one
 * already there) are rejected before anything is written for them.
 */
import { lstat, lchown, lutimes, chmod, mkdir, open, symlink, unlink, utimes, chown } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, type ExtractEvents, type Header as TarHeader } from 'tar-stream';

type Entry = ExtractEvents['entry'][1];
import { AbortedError, IntegrityError, UsageError } from '../errors.js';
import type { Logger } from '../logging.js';

export interface ExtractOptions {
  /** Replace files and links that already exist (never delete anything else). */
  overwrite: boolean;
  log: Logger;
  signal?: AbortSignal;
}

export interface ExtractSummary {
  /** Entries written: files, directories and links. */
  entries: number;
  fileCount: number;
  fileBytes: number;
}

/** A directory whose mode and time are set after its content, since writing into it changes its time. */
interface PendingDirectory {
  target: string;
  header: TarHeader;
}

/** Extracts the tar stream `input` into `dir`, which must exist. */
export async function extractArchive(input: Readable, dir: string, options: ExtractOptions): Promise<ExtractSummary> {
  const root = path.resolve(dir);
  const summary: ExtractSummary = { entries: 0, fileCount: 0, fileBytes: 0 };
  const directories: PendingDirectory[] = [];
  const parser = extract();
  parser.on('entry', (header, stream, next) => {
    writeEntry(root, header, stream, options, directories, summary).then(
      () => next(),
      (err: unknown) => {
        stream.resume();
        parser.destroy(err as Error);
      },
    );
  });
  await pipeline(input, parser, { signal: options.signal });
  // Deepest first, so setting a parent's time is not undone by a child.
  for (const pending of directories.reverse()) await applyAttributes(pending.target, pending.header, false);
  return summary;
}

async function writeEntry(root: string, header: TarHeader, stream: Entry, options: ExtractOptions, directories: PendingDirectory[], summary: ExtractSummary): Promise<void> {
  if (options.signal?.aborted) throw new AbortedError('restore interrupted', { code: 'restore.aborted' });
  const relative = safeRelativeName(header.name);
  const target = path.join(root, relative);
  await ensureParents(root, relative);

  switch (header.type) {
    case 'directory':
      await makeDirectory(target);
      directories.push({ target, header });
      break;
    case 'file':
    case 'contiguous-file':
      await clearTarget(target, options.overwrite);
      summary.fileBytes += await writeFile(target, stream);
      summary.fileCount += 1;
      await applyAttributes(target, header, false);
      break;
    case 'symlink':
      await clearTarget(target, options.overwrite);
      await symlink(header.linkname ?? '', target);
      await applyAttributes(target, header, true);
      break;
    default:
      options.log.warn({ path: header.name, type: header.type }, 'skipped: drplan restores only files, directories and symbolic links');
      stream.resume();
      return;
  }
  stream.resume();
  summary.entries += 1;
}

/** Returns the entry name as a relative path, or rejects one that is absolute or climbs out with "..". */
export function safeRelativeName(name: string): string {
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || name.startsWith('/') || name.includes('\0') || segments.includes('..')) {
    throw new IntegrityError(`archive entry ${JSON.stringify(name)} would be written outside the target directory`, {
      code: 'restore.entry',
      object: name,
      hint: 'The archive was not written by drplan or was altered; nothing outside the target directory was touched.',
    });
  }
  return segments.join('/');
}

/** Creates the missing parents of an entry, and rejects a parent that is a symbolic link or not a directory. */
async function ensureParents(root: string, relative: string): Promise<void> {
  const segments = relative.split('/').slice(0, -1);
  let current = root;
  for (const segment of segments) {
    current = path.join(current, segment);
    const stats = await lstatOrUndefined(current);
    if (stats === undefined) {
      await mkdir(current);
      continue;
    }
    if (stats.isSymbolicLink()) {
      throw new IntegrityError(`archive entry ${relative} would be written through the symbolic link ${current}`, {
        code: 'restore.entry',
        object: relative,
        hint: 'Links are restored as links, never followed; remove the link or restore into an empty directory.',
      });
    }
    if (!stats.isDirectory()) throw conflict(current, 'a directory');
  }
}

async function makeDirectory(target: string): Promise<void> {
  const stats = await lstatOrUndefined(target);
  if (stats === undefined) return void (await mkdir(target));
  if (!stats.isDirectory() || stats.isSymbolicLink()) throw conflict(target, 'a directory');
}

/** Makes room for a file or link: an existing file or link is removed with --force, a directory never. */
async function clearTarget(target: string, overwrite: boolean): Promise<void> {
  const stats = await lstatOrUndefined(target);
  if (stats === undefined) return;
  if (stats.isDirectory()) throw conflict(target, 'a file or symbolic link');
  if (!overwrite) {
    throw new UsageError(`${target} already exists`, { code: 'restore.exists', object: target, hint: 'Pass --force to overwrite existing files, or restore into an empty directory.' });
  }
  await unlink(target);
}

/** Writes the entry's bytes to a new file (never through an existing link) and returns their number. */
async function writeFile(target: string, stream: Entry): Promise<number> {
  const handle = await open(target, 'wx', 0o600);
  let bytes = 0;
  try {
    for await (const chunk of stream) {
      await handle.write(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } finally {
    await handle.close();
  }
  return bytes;
}

/** Sets owner (as root), mode and modification time; the owner goes first because chown clears set-id bits. */
async function applyAttributes(target: string, header: TarHeader, isLink: boolean): Promise<void> {
  const mtime = header.mtime ?? new Date();
  if (process.getuid?.() === 0 && header.uid !== undefined && header.gid !== undefined) {
    await (isLink ? lchown : chown)(target, header.uid, header.gid);
  }
  if (isLink) return lutimes(target, mtime, mtime);
  if (header.mode !== undefined) await chmod(target, header.mode & 0o7777);
  await utimes(target, mtime, mtime);
}

async function lstatOrUndefined(target: string): Promise<Stats | undefined> {
  try {
    return await lstat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function conflict(target: string, expected: string): UsageError {
  return new UsageError(`${target} already exists and is not ${expected}`, {
    code: 'restore.conflict',
    object: target,
    hint: 'Move it out of the way, or restore into an empty directory.',
  });
}
