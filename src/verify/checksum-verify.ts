/**
 * Checksum verification of one backup as a recorded step: check every copy,
 * then store the verification record beside each copy's metadata.
 */
import type { CatalogEntry } from '../backup/catalog.js';
import type { PlanContext } from '../context.js';
import { AbortedError } from '../errors.js';
import { storeVerification, type VerificationRecord } from './records.js';
import { failuresOf, verifyBackup, type VerifyResult } from './verify-backup.js';

/** Verifies every copy of `entry`, stores the record and returns both; `missing` lists repositories without a copy. */
export async function checksumVerify(context: PlanContext, entry: CatalogEntry, signal: AbortSignal, missing: string[]): Promise<{ result: VerifyResult; record: VerificationRecord }> {
  const startedAt = new Date();
  const result = await verifyBackup(entry, context.log.child({ component: 'verify' }), signal);
  // An interrupted check proves nothing about the backup, so it is not recorded.
  if (signal.aborted) throw new AbortedError('verification interrupted; no result was recorded', { code: 'verify.aborted' });
  const record: VerificationRecord = {
    formatVersion: 1,
    backupId: entry.id,
    database: entry.database,
    kind: 'checksum',
    ok: result.ok,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    failures: failuresOf(result),
    missing,
    checks: result.copies.flatMap((c) => c.checks.map((k) => ({ name: `${c.repository} ${k.name}`, ok: k.ok, detail: k.detail }))),
  };
  await storeVerification(entry.copies.map((c) => ({ storage: c.storage, metaKey: c.metaKey })), record, startedAt);
  return { result, record };
}
