/**
 * Reading the file PostgreSQL hands to archive_command.
 */
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError, StorageError } from '../errors.js';
import { assertWalFileName } from './layout.js';

/** Returns the name to store the WAL file at `file` under, after checking that it exists. */
export async function walSourceName(file: string): Promise<string> {
  const fileName = path.basename(file);
  assertWalFileName(fileName);
  await access(path.resolve(file), constants.R_OK).catch((err: unknown) => {
    throw sourceError(file, err);
  });
  return fileName;
}

/**
 * Reads the WAL file at `file`. PostgreSQL passes %p relative to the data
 * directory and runs archive_command there, so a relative path resolves
 * against the working directory. The stored name is the last path part.
 */
export async function readWalFile(file: string): Promise<{ fileName: string; bytes: Buffer }> {
  const fileName = path.basename(file);
  assertWalFileName(fileName);
  try {
    return { fileName, bytes: await readFile(path.resolve(file)) };
  } catch (err) {
    throw sourceError(file, err);
  }
}

function sourceError(file: string, err: unknown): Error {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new NotFoundError(`WAL file ${path.resolve(file)} not found`, {
      code: 'wal.source_missing',
      object: file,
      hint: 'archive_command gets %p relative to the data directory; run it from there or pass an absolute path.',
    });
  }
  return new StorageError(`cannot read WAL file ${path.resolve(file)}: ${(err as Error).message}`, { code: 'wal.source_read', object: file, cause: err });
}
