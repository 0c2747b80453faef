/**
 * Writes backups straight into a file repository, laid out as `drplan backup`
 * and `drplan verify` write them, so retention and audit tests need no
 * PostgreSQL. The dump and globals are random bytes with matching checksums.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type Origin = 'scheduled' | 'manual' | 'pre_restore';

export interface FakeBackup {
  id: string;
  origin: Origin;
  startedAt: Date;
  flags?: { code: string; message: string }[];
  /** Writes a checksum verification record with this result, one hour after the backup. */
  verified?: boolean;
}

/** Size of each fabricated dump object, in bytes. */
export const FAKE_DUMP_BYTES = 64;

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes one object under the repository directory `dir`. */
export async function writeObject(dir: string, key: string, body: Buffer | string): Promise<void> {
  const file = path.join(dir, ...key.split('/'));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, body);
}

/** Writes the dump, globals, metadata and optional verification record of one backup; returns their keys, metadata first. */
export async function writeFakeBackup(dir: string, backup: FakeBackup): Promise<string[]> {
  const base = `${backup.origin === 'scheduled' ? 'backups' : 'manual'}/app/${backup.id}`;
  const dump = randomBytes(FAKE_DUMP_BYTES);
  const globals = randomBytes(32);
  const finishedAt = new Date(backup.startedAt.getTime() + 90_000);
  const meta = {
    formatVersion: 1,
    id: backup.id,
    database: 'app',
    kind: 'logical',
    origin: backup.origin,
    startedAt: backup.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: 90_000,
    server: { version: '16.4', major: 16 },
    tool: { program: 'pg_dump', version: '16.4' },
    drplanVersion: '0.1.0',
    format: 'custom',
    compression: { algorithm: 'zstd', level: 3 },
    rawBytes: dump.length * 4,
    storedBytes: dump.length,
    sha256: sha256(dump),
    dump: { key: `${base}.dump.zst`, bytes: dump.length, sha256: sha256(dump) },
    globals: { key: `${base}.globals.sql.zst`, bytes: globals.length, sha256: sha256(globals), rolePasswords: false },
    databaseOwner: 'app',
    encoding: 'UTF8',
    tables: [{ schema: 'public', name: 'items', rows: 100 }],
    repositories: ['local'],
    ...(backup.flags ? { flags: backup.flags } : {}),
  };
  const keys = [`${base}.meta.json`, meta.dump.key, meta.globals.key];
  await writeObject(dir, meta.dump.key, dump);
  await writeObject(dir, meta.globals.key, globals);
  await writeObject(dir, keys[0]!, `${JSON.stringify(meta, null, 2)}\n`);

  if (backup.verified !== undefined) {
    const verifiedAt = new Date(finishedAt.getTime() + 3_600_000);
    const key = `${base}.verify-${verifiedAt.toISOString().replace(/[-:.]/g, '')}.json`;
    const record = {
      formatVersion: 1,
      backupId: backup.id,
      database: 'app',
      kind: 'checksum',
      ok: backup.verified,
      startedAt: verifiedAt.toISOString(),
      finishedAt: verifiedAt.toISOString(),
      failures: backup.verified ? [] : [`${meta.dump.key}: sha256 mismatch`],
      checks: [],
    };
    await writeObject(dir, key, JSON.stringify(record));
    keys.push(key);
  }
  return keys;
}

/**
 * Writes the metadata of a physical base backup whose WAL starts at
 * `firstSegment` on timeline 1, and with `withObjects` its archive and
 * manifest objects too. `wal` replaces fields of the WAL position.
 */
export async function writeFakePhysicalBackup(
  dir: string,
  backup: { id: string; database: string; startedAt: Date; firstSegment: string; withObjects?: boolean; wal?: { startLsn?: string; stopLsn?: string; systemIdentifier?: string } },
): Promise<string> {
  const base = `backups/${backup.database}/${backup.id}`;
  const object = (key: string) => ({ key, bytes: 1, sha256: '0'.repeat(64) });
  const meta = {
    formatVersion: 1,
    id: backup.id,
    database: backup.database,
    kind: 'physical',
    origin: 'scheduled',
    startedAt: backup.startedAt.toISOString(),
    finishedAt: new Date(backup.startedAt.getTime() + 60_000).toISOString(),
    durationMs: 60_000,
    server: { version: '15.0', major: 15 },
    tool: { program: 'pg_basebackup', version: '15.0' },
    drplanVersion: '0.1.0',
    format: 'tar',
    compression: { algorithm: 'zstd', level: 3 },
    rawBytes: 1,
    storedBytes: 1,
    sha256: '0'.repeat(64),
    archive: object(`${base}.base.tar.zst`),
    manifest: object(`${base}.manifest.zst`),
    repositories: ['local'],
    wal: {
      systemIdentifier: '1',
      timeline: 1,
      startLsn: '0/0',
      stopLsn: '0/0',
      firstSegment: backup.firstSegment,
      lastSegment: backup.firstSegment,
      walSegmentSize: 16 * 1024 * 1024,
      ...backup.wal,
    },
  };
  if (backup.withObjects) {
    await writeObject(dir, meta.archive.key, 'a');
    await writeObject(dir, meta.manifest.key, 'm');
  }
  await writeObject(dir, `${base}.meta.json`, `${JSON.stringify(meta, null, 2)}\n`);
  return `${base}.meta.json`;
}
