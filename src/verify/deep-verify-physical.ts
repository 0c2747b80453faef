/**
 * Deep verification of a physical base backup: a checked copy is extracted
 * into a temporary directory and pg_verifybackup compares every file with the
 * stored backup_manifest. The WAL is not part of the backup but of the WAL
 * archive, so pg_verifybackup skips it (`--no-parse-wal`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CatalogEntry } from '../backup/catalog.js';
import { asPhysical } from '../backup/metadata.js';
import { extractPhysicalBackup } from '../backup/physical-restore.js';
import type { PlanContext } from '../context.js';
import { findTool } from '../postgres/tools.js';
import { runProcess } from '../util/process.js';
import type { VerificationRecord } from './records.js';

/** Extracts the backup under backup.tempDir, runs pg_verifybackup on it and records the outcome; the copy is removed afterwards. */
export async function verifyBaseBackup(context: PlanContext, entry: CatalogEntry, record: VerificationRecord, signal: AbortSignal): Promise<void> {
  const meta = asPhysical(entry.meta);
  const started = Date.now();
  const scratch = await mkdtemp(path.join(context.plan.backup.tempDir ?? os.tmpdir(), 'drplan-verify-'));
  record.target = 'a temporary data directory (pg_verifybackup --no-parse-wal)';
  try {
    const tool = await findTool('pg_verifybackup', meta.server.major, meta.server.version);
    const dataDir = path.join(scratch, 'data');
    const extracted = await extractPhysicalBackup(context, entry, dataDir, signal);
    const output = await runProcess(tool.path, ['--no-parse-wal', `--manifest-path=${extracted.manifestPath}`, dataDir], { operation: 'pg_verifybackup', signal });
    record.restoreMs = Date.now() - started;
    record.checks.push({ name: 'pg_verifybackup', ok: true, detail: output.trim() || 'backup successfully verified' });
  } catch (err) {
    const message = (err as Error).message;
    record.checks.push({ name: 'pg_verifybackup', ok: false, detail: message });
    record.failures.push(`base backup check failed: ${message}`);
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch((err) => context.log.warn({ err, dir: scratch }, 'could not remove the verification directory'));
  }
}
