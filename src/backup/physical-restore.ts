/**
 * Extraction of a physical base backup into a data directory. The first
 * repository whose copy matches its SHA-256 wins, and the tar stream is
 * unpacked as it downloads. backup_manifest is written beside the data files
 * so that pg_verifybackup can check them. The WAL is not in the backup; a
 * restore brings it from the archive through restore_command.
 */
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import type { PlanContext } from '../context.js';
import { AbortedError, IntegrityError, StorageError, UsageError } from '../errors.js';
import { serverOwner } from '../postgres/cluster.js';
import { checkDigest, noUsableCopy } from '../restore/fetch.js';
import { runProcess } from '../util/process.js';
import { Meter, pipeInto } from '../util/streams.js';
import type { BackupCopy, CatalogEntry } from './catalog.js';
import { decompress } from './compression.js';
import { asPhysical, type PhysicalMetadata, type StoredObject } from './metadata.js';

export interface ExtractedBackup {
  meta: PhysicalMetadata;
  /** The repository whose copy was extracted. */
  repository: string;
  /** Copies tried first and rejected, with the reason. */
  rejected: string[];
  /** The backup_manifest written into the data directory. */
  manifestPath: string;
}

/**
 * Downloads a physical backup, verifying its SHA-256, and unpacks it into
 * `dataDir`, which must be empty or not exist yet. The directory gets mode
 * 0700 and, when drplan runs as root, belongs to the `postgres` system user,
 * as the server requires. A copy that fails its checksum is removed again
 * and the next repository is tried.
 */
export async function extractPhysicalBackup(context: PlanContext, entry: CatalogEntry, dataDir: string, signal?: AbortSignal): Promise<ExtractedBackup> {
  const meta = asPhysical(entry.meta);
  const target = path.resolve(dataDir);
  await prepareEmptyDirectory(target);
  const log = context.log.child({ component: 'extract', backupId: entry.id, database: entry.database });
  const rejected: string[] = [];
  let corrupted = false;
  for (const copy of entry.copies) {
    const repoLog = log.child({ repository: copy.storage.name });
    try {
      await extractArchive(copy, target, signal);
      const manifestPath = path.join(target, 'backup_manifest');
      await writeFile(manifestPath, await readManifest(copy, signal), { mode: 0o600 });
      await handOverToServerUser(target, signal);
      repoLog.info({ key: meta.archive.key, bytes: meta.archive.bytes, dataDir: target }, 'base backup extracted');
      return { meta: asPhysical(copy.meta), repository: copy.storage.name, rejected, manifestPath };
    } catch (err) {
      await emptyDirectory(target);
      if (signal?.aborted) throw new AbortedError('extraction interrupted; the data directory was emptied again', { code: 'extract.aborted', cause: err });
      repoLog.warn({ reason: (err as Error).message }, 'copy unusable, trying the next repository');
      rejected.push(`${copy.storage.name}: ${(err as Error).message}`);
      corrupted ||= err instanceof IntegrityError;
    }
  }
  throw noUsableCopy(entry, rejected, corrupted);
}

/** Creates the directory, or checks that it is empty: extracting over files would mix two clusters. */
async function prepareEmptyDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const entries = await readdir(dir);
  if (entries.length === 0) return;
  throw new UsageError(`data directory ${dir} is not empty (${entries.length} entries, such as ${entries[0]})`, {
    code: 'extract.not_empty',
    object: dir,
    hint: 'Choose an empty or new directory; drplan never extracts a base backup over existing files.',
  });
}

async function emptyDirectory(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(entries.map((name) => rm(path.join(dir, name), { recursive: true, force: true })));
}

/** Streams the archive from one copy through SHA-256 and decompression into the tar extractor. */
async function extractArchive(copy: BackupCopy, dir: string, signal?: AbortSignal): Promise<void> {
  const meta = asPhysical(copy.meta);
  const meter = new Meter({ sha256: true });
  const source = await copy.storage.get(meta.archive.key, { signal });
  let readError: Error | undefined;
  source.once('error', (err: Error) => {
    readError = err;
  });
  const plain = decompress(pipeInto(source, meter), meta.compression.algorithm, signal);
  const results = await Promise.allSettled([untar(plain.output, dir), plain.done]);
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as unknown;
  if (failure !== undefined) source.destroy();
  if (signal?.aborted) throw new AbortedError('interrupted', { code: 'extract.aborted' });
  if (readError) throw new StorageError(`repository ${copy.storage.name}: reading ${meta.archive.key} failed: ${readError.message}`, { code: 'extract.read', object: meta.archive.key, cause: readError });
  checkDigest(copy, meta.archive.key, meter.bytes, meter.digest(), meta.archive.bytes, meta.archive.sha256, failure);
}

/** Reads, checks and decompresses the stored backup_manifest. */
async function readManifest(copy: BackupCopy, signal?: AbortSignal): Promise<string> {
  const object: StoredObject = asPhysical(copy.meta).manifest;
  const meter = new Meter({ sha256: true });
  const plain = decompress(pipeInto(await copy.storage.get(object.key, { signal }), meter), copy.meta.compression.algorithm, signal);
  const [manifest] = await Promise.all([text(plain.output), plain.done]);
  checkDigest(copy, object.key, meter.bytes, meter.digest(), object.bytes, object.sha256, undefined);
  return manifest;
}

/**
 * Unpacks a tar stream into `dir`. Only regular files and directories are
 * accepted (pg_basebackup sends nothing else for a cluster without extra
 * tablespaces), and no entry may leave `dir`.
 */
export async function untar(input: Readable, dir: string): Promise<number> {
  const parser = extract();
  let entries = 0;
  parser.on('entry', (header, stream, next) => {
    entries += 1;
    writeEntry(header, stream as unknown as Readable, dir).then(
      () => next(),
      (err: Error) => {
        stream.resume();
        parser.destroy(err);
      },
    );
  });
  await pipeline(input, parser);
  return entries;
}

async function writeEntry(header: Header, stream: Readable, dir: string): Promise<void> {
  const target = insideDirectory(dir, header.name);
  const mode = (header.mode ?? 0o600) & 0o700;
  if (header.type === 'directory') {
    await mkdir(target, { recursive: true, mode: mode | 0o700 });
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    return;
  }
  if (header.type !== 'file') {
    throw new IntegrityError(`the base backup contains ${header.name} of type ${header.type}; only files and directories are extracted`, { code: 'extract.entry', object: header.name });
  }
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  await pipeline(stream, createWriteStream(target, { mode: mode | 0o600 }));
}

/** Resolves a tar entry name inside `dir`, rejecting absolute names and any that climb out with `..`. */
export function insideDirectory(dir: string, name: string): string {
  const target = path.resolve(dir, name);
  if (path.isAbsolute(name) || name.split('/').includes('..') || (target !== dir && !target.startsWith(`${dir}${path.sep}`))) {
    throw new IntegrityError(`the base backup contains the entry ${JSON.stringify(name)}, which would be written outside ${dir}`, { code: 'extract.escape', object: name });
  }
  return target;
}

/** Sets mode 0700 and, when running as root, gives the directory to the postgres system user. */
async function handOverToServerUser(dir: string, signal?: AbortSignal): Promise<void> {
  await chmod(dir, 0o700);
  const owner = await serverOwner(signal);
  if (owner.uid === undefined || owner.gid === undefined) return;
  await runProcess('chown', ['-R', `${owner.uid}:${owner.gid}`, dir], { operation: 'hand the data directory to the postgres user', signal });
}
