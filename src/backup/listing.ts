/** The rows of `drplan list --json` and of the API's backup list, built from a catalog. */
import { lastVerificationOf, type Catalog, type CatalogEntry } from './catalog.js';
import type { BackupFlag } from './metadata.js';

export interface VerificationSummary {
  kind: string;
  ok: boolean;
  finishedAt: string;
  restoreMs: number | null;
}

export interface BackupRow {
  id: string;
  kind: string;
  /** The database, or for a file-set backup the file set's name. */
  database: string;
  label: string | null;
  origin: string;
  finishedAt: string;
  storedBytes: number;
  rawBytes: number;
  repositories: string[];
  flags: BackupFlag[];
  lastVerification: VerificationSummary | null;
}

/** Returns one row per backup, newest first, as the catalog orders them. */
export function backupRows(catalog: Catalog): BackupRow[] {
  return catalog.entries.map((entry) => ({
    id: entry.id,
    kind: entry.meta.kind,
    database: entry.database,
    label: entry.meta.label ?? null,
    origin: entry.meta.origin,
    finishedAt: entry.meta.finishedAt,
    storedBytes: entry.meta.storedBytes,
    rawBytes: entry.meta.rawBytes,
    repositories: entry.copies.map((c) => c.storage.name),
    flags: entry.meta.flags ?? [],
    lastVerification: summarizeVerification(entry),
  }));
}

function summarizeVerification(entry: CatalogEntry): VerificationSummary | null {
  const record = lastVerificationOf(entry);
  if (!record) return null;
  return { kind: record.kind, ok: record.ok, finishedAt: record.finishedAt, restoreMs: record.restoreMs ?? null };
}
