/** Checks on storage keys, shared by every backend. */
import { StorageError } from '../errors.js';

/** Rejects keys that are empty, absolute, or contain `..`, `.` or empty segments. */
export function assertSafeKey(key: string): void {
  const segments = key.split('/');
  const bad = key.length === 0 || key.includes('\\') || key.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw new StorageError(`invalid storage key ${JSON.stringify(key)}`, {
      code: 'storage.key',
      object: key,
      hint: 'Keys are relative paths without "..", "." or empty segments.',
    });
  }
}
