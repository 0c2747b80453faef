/**
 * Restores a file-set backup into a directory. The archive is downloaded and
 * its SHA-256 checked before anything is written into the directory, and the
 * directory must be empty unless the caller allows overwriting.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeSubject, findBackup, readCatalog, type CatalogEntry, type CatalogFilter } from '../backup/catalog.js';
import type { FilesMetadata } from '../backup/metadata.js';
import type { PlanContext } from '../context.js';
import { IntegrityError, UsageError } from '../errors.js';
import type { Logger } from '../logging.js';
import { fetchMainObject } from './fetch.js';
import { extractArchive, type ExtractSummary } from './files-extract.js';

export interface FilesRestoreRequest {
  /** Backup id, or `latest` together with `fileset`. */
  backup: string;
  /** The file set whose backups to search; without it the id is searched everywhere. */
  fileset?: string;
  /** Directory to extract into: created when absent, else it must be empty unless `force`. */
  to: string;
  /** Overwrite files and links that already exist in `to`; nothing else there is deleted. */
  force: boolean;
  signal: AbortSignal;
}

export interface FilesRestoreResult {
  backup: FilesMetadata;
  repository: string;
  directory: string;
  fileCount: number;
  fileBytes: number;
  durationMs: number;
  /** Copies on other repositories that were missing or corrupted, with the reason. */
  rejectedCopies: string[];
}

/** Finds a file-set backup, rejecting a database backup with a usage error that names the right options. */
export async function findFilesBackup(context: PlanContext, backup: string, fileset: string | undefined): Promise<CatalogEntry & { meta: FilesMetadata }> {
  if (backup === 'latest' && fileset === undefined) {
    throw new UsageError('"latest" needs the file set: pass --files NAME', { code: 'usage.latest', hint: 'For example: drplan restore latest --files uploads --to /srv/restore.' });
  }
  const filter: CatalogFilter | undefined = fileset === undefined ? undefined : { fileset };
  const entry = findBackup(await readCatalog(context, filter), backup, filter);
  if (entry.meta.kind !== 'files') {
    throw new UsageError(`backup ${entry.id} is a ${entry.meta.kind} backup of ${describeSubject(entry)}; --to restores file-set backups only`, {
      code: 'backup.kind',
      object: entry.id,
      hint: 'Restore a database backup with --target-database NAME or --in-place.',
    });
  }
  return entry as CatalogEntry & { meta: FilesMetadata };
}

/** Checks the destination before any download: absent, or an empty directory, or any directory with `force`. */
export async function checkDestination(directory: string, force: boolean): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(directory)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isDirectory) {
    throw new UsageError(`--to ${directory} exists and is not a directory`, { code: 'restore.target', object: directory, hint: 'Choose a new or empty directory.' });
  }
  if (force) return;
  const names = await readdir(directory);
  if (names.length === 0) return;
  throw new UsageError(`--to ${directory} is not empty (${names.length} entries)`, {
    code: 'restore.target_not_empty',
    object: directory,
    hint: 'Restore into an empty or new directory, or pass --force to overwrite existing files there (other files are kept).',
  });
}

/** Restores the file-set backup into `request.to`. */
export async function runFilesRestore(context: PlanContext, request: FilesRestoreRequest): Promise<FilesRestoreResult> {
  const started = Date.now();
  const directory = path.resolve(request.to);
  const entry = await findFilesBackup(context, request.backup, request.fileset);
  await checkDestination(directory, request.force);
  const log = context.log.child({ component: 'restore', backupId: entry.id, fileset: entry.database });

  const fetched = await fetchMainObject(entry, context.plan.backup.tempDir ?? os.tmpdir(), log, request.signal);
  try {
    await mkdir(directory, { recursive: true });
    const meta = fetched.copy.meta as FilesMetadata;
    const summary = await extractFile(fetched.file, directory, request.force, log, request.signal);
    checkAgainstMetadata(meta, summary, directory);
    const durationMs = Date.now() - started;
    log.info({ repository: fetched.copy.storage.name, directory, files: summary.fileCount, bytes: summary.fileBytes, durationMs }, 'file-set restore finished');
    return {
      backup: meta,
      repository: fetched.copy.storage.name,
      directory,
      fileCount: summary.fileCount,
      fileBytes: summary.fileBytes,
      durationMs,
      rejectedCopies: fetched.rejected,
    };
  } finally {
    await fetched.dispose();
  }
}

/** Extracts a decompressed tar file into `directory`. */
export function extractFile(file: string, directory: string, overwrite: boolean, log: Logger, signal?: AbortSignal): Promise<ExtractSummary> {
  return extractArchive(createReadStream(file), directory, { overwrite, log, signal });
}

/** Compares what was extracted with what the metadata recorded at backup time. */
export function checkAgainstMetadata(meta: FilesMetadata, summary: ExtractSummary, where: string): void {
  const expected = { entries: meta.entries.length, fileCount: meta.fileCount, fileBytes: meta.fileBytes };
  const differences = (Object.keys(expected) as (keyof typeof expected)[]).filter((k) => expected[k] !== summary[k]).map((k) => `${k}: metadata ${expected[k]}, extracted ${summary[k]}`);
  if (differences.length === 0) return;
  throw new IntegrityError(`backup ${meta.id} extracted into ${where} does not match its metadata (${differences.join('; ')})`, {
    code: 'restore.mismatch',
    object: meta.id,
    hint: 'The archive is incomplete or was altered; restore from another repository or an older backup.',
  });
}
