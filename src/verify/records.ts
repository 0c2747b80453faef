/**
 * Verification records: the result of each verification, stored beside the
 * backup on every repository that has a copy, so the history survives the loss
 * of any one machine or repository.
 *
 *   <area>/<database>/<id>.verify-<YYYYMMDDTHHMMSSmmmZ>.json
 */
import { z } from 'zod';
import type { Storage } from '../storage/storage.js';
import { keyStamp } from '../util/duration.js';

export const verificationSchema = z.object({
  formatVersion: z.literal(1),
  backupId: z.string(),
  database: z.string(),
  kind: z.enum(['checksum', 'deep']),
  ok: z.boolean(),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** Download plus pg_restore into the scratch database, or for a physical backup download, extraction and pg_verifybackup, in milliseconds (deep only). */
  restoreMs: z.number().optional(),
  target: z.string().optional(),
  /** Problems with the checked copies; any of them makes `ok` false. */
  failures: z.array(z.string()),
  /**
   * Repositories that should hold a copy but could not be checked
   * (unreachable, or the copy is gone). They fail the command, not the
   * backup: `ok` describes the copies that were checked.
   */
  missing: z.array(z.string()).optional(),
  tables: z.array(z.object({ table: z.string(), expected: z.number(), actual: z.number().nullable(), ok: z.boolean() })).optional(),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
});

export type VerificationRecord = z.infer<typeof verificationSchema>;

const RECORD_PATTERN = /\.verify-(\d{8}T\d{9}Z)\.json$/;

/** Returns the key of a new record for the backup whose metadata key is `metaKey`. */
export function verificationKey(metaKey: string, at: Date): string {
  const stamp = keyStamp(at);
  return metaKey.replace(/\.meta\.json$/, `.verify-${stamp}.json`);
}

/** True for keys of verification records. */
export function isVerificationKey(key: string): boolean {
  return RECORD_PATTERN.test(key);
}

/** Returns the metadata key that a verification record belongs to. */
export function metaKeyOfRecord(key: string): string {
  return key.replace(RECORD_PATTERN, '.meta.json');
}

/** Stores the record on each storage; returns the names of those that failed. */
export async function storeVerification(storages: { storage: Storage; metaKey: string }[], record: VerificationRecord, at: Date): Promise<string[]> {
  const body = Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
  const results = await Promise.allSettled(storages.map(({ storage, metaKey }) => storage.put(verificationKey(metaKey, at), body)));
  return results.flatMap((result, index) => (result.status === 'rejected' ? [storages[index]!.storage.name] : []));
}
