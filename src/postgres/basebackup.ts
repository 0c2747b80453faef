/**
 * pg_basebackup and the facts around a physical base backup: the server's
 * archiving settings, its system identifier and WAL segment size, and the
 * WAL positions read from backup_label and backup_manifest.
 *
 * With `-D - -Ft` PostgreSQL 15's pg_basebackup writes one tar stream to
 * stdout and, because it cannot write a second file there, adds the
 * backup_manifest to that stream as its last member. drplan reads
 * backup_label and backup_manifest out of the stream as it passes.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { extract } from 'tar-stream';
import { ConfigError, IntegrityError } from '../errors.js';
import { startProcess, type RunningProcess } from '../util/process.js';
import { parseLsn, segmentName, segnoOfLsn } from '../wal/segment.js';
import type { ConnectionTarget } from './connection.js';
import type { PgTool } from './tools.js';

/**
 * Rejects a server whose WAL is not archived: a base backup taken with
 * `-X none` cannot be restored without the archived WAL from its start to its end.
 */
export async function assertArchiving(client: pg.Client, endpoint: string): Promise<void> {
  const { rows } = await client.query<{ wal_level: string; archive_mode: string; archive_command: string }>(
    "SELECT current_setting('wal_level') AS wal_level, current_setting('archive_mode') AS archive_mode, current_setting('archive_command') AS archive_command",
  );
  const settings = rows[0]!;
  const problems: string[] = [];
  if (!['replica', 'logical'].includes(settings.wal_level)) problems.push(`wal_level is ${settings.wal_level} (must be replica or logical)`);
  if (!['on', 'always'].includes(settings.archive_mode)) problems.push(`archive_mode is ${settings.archive_mode} (must be on)`);
  if (settings.archive_command.trim() === '' || settings.archive_command === '(disabled)') problems.push('archive_command is empty');
  if (problems.length === 0) return;
  throw new ConfigError(`the server at ${endpoint} does not archive its WAL: ${problems.join(', ')}; a physical backup without archived WAL cannot be restored`, {
    code: 'backup.archiving',
    object: endpoint,
    hint: "Set wal_level = replica, archive_mode = on and archive_command = 'drplan wal push --database NAME %p' in postgresql.conf, restart the server, then run the backup again.",
  });
}

/** Identity of the server's WAL stream. */
export interface WalFacts {
  systemIdentifier: string;
  walSegmentSize: number;
}

/** Reads the system identifier (pg_control_system()) and the WAL segment size in bytes. */
export async function readWalFacts(client: pg.Client): Promise<WalFacts> {
  const system = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
  // SHOW prints the size with a unit ("16MB"); pg_settings has it in bytes.
  const size = await client.query<{ setting: string; unit: string | null }>("SELECT setting, unit FROM pg_settings WHERE name = 'wal_segment_size'");
  const row = size.rows[0]!;
  if (row.unit !== 'B') throw new IntegrityError(`unexpected unit ${row.unit} of wal_segment_size`, { code: 'backup.wal_segment_size' });
  return { systemIdentifier: system.rows[0]!.id, walSegmentSize: Number(row.setting) };
}

/**
 * Starts pg_basebackup writing an uncompressed tar stream to stdout, after a
 * fast checkpoint, without WAL (`-X none`: the WAL comes from the archive).
 * The password reaches the child through PGPASSWORD, never argv.
 *
 * NOTE: a tar stream on stdout contains one tablespace only, so pg_basebackup
 * itself fails on a cluster with extra tablespaces. drplan has no other mode yet.
 */
export function startBaseBackup(tool: PgTool, target: ConnectionTarget, options: { label: string; signal?: AbortSignal }): RunningProcess {
  const args = ['--pgdata=-', '--format=tar', '--wal-method=none', '--checkpoint=fast', `--label=${options.label}`, '--no-password', `--dbname=${target.uri}`];
  return startProcess(tool.path, args, { env: target.env, signal: options.signal, operation: 'pg_basebackup' });
}

/** The start of a base backup, from its backup_label. */
export interface BackupLabel {
  startLsn: string;
  timeline: number;
}

/** Parses backup_label's START WAL LOCATION and START TIMELINE lines. */
export function parseBackupLabel(text: string): BackupLabel {
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(text);
  const timeline = /^START TIMELINE: (\d+)/m.exec(text);
  if (!start || !timeline) {
    throw new IntegrityError('backup_label of the base backup has no START WAL LOCATION or START TIMELINE line', { code: 'backup.label', object: 'backup_label' });
  }
  return { startLsn: start[1]!, timeline: Number(timeline[1]) };
}

/** The WAL range a base backup needs, from backup_manifest's WAL-Ranges. */
export interface ManifestWalRange {
  timeline: number;
  startLsn: string;
  endLsn: string;
}

/** Reads the last WAL range of a backup_manifest: its End-LSN is the backup's stop LSN. */
export function parseManifestWalRange(manifest: Buffer): ManifestWalRange {
  let ranges: { Timeline?: number; 'Start-LSN'?: string; 'End-LSN'?: string }[] | undefined;
  try {
    ranges = (JSON.parse(manifest.toString('utf8')) as { 'WAL-Ranges'?: typeof ranges })['WAL-Ranges'];
  } catch (err) {
    throw new IntegrityError('backup_manifest of the base backup is not valid JSON', { code: 'backup.manifest', object: 'backup_manifest', cause: err });
  }
  const last = ranges?.at(-1);
  if (!last?.Timeline || !last['Start-LSN'] || !last['End-LSN']) {
    throw new IntegrityError('backup_manifest of the base backup has no WAL-Ranges entry', { code: 'backup.manifest', object: 'backup_manifest' });
  }
  return { timeline: last.Timeline, startLsn: ranges![0]!['Start-LSN']!, endLsn: last['End-LSN'] };
}

/**
 * Returns the first and last segment a restore of the backup needs. The last
 * is the segment holding the byte before the stop LSN, as PostgreSQL names it
 * in the backup history file, because a stop LSN on a segment boundary ends
 * the previous segment.
 */
export function backupSegments(startLsn: string, stopLsn: string, timeline: number, stopTimeline: number, segmentSize: number) {
  const stop = parseLsn(stopLsn);
  return {
    firstSegment: segmentName({ timeline, segno: segnoOfLsn(parseLsn(startLsn), segmentSize) }, segmentSize),
    lastSegment: segmentName({ timeline: stopTimeline, segno: segnoOfLsn(stop > 0n ? stop - 1n : 0n, segmentSize) }, segmentSize),
  };
}

/** The members kept from a base backup's tar stream, and its entry count. */
export interface ScannedBaseBackup {
  backupLabel?: Buffer;
  manifest?: Buffer;
  entries: number;
}

const KEPT_MEMBERS = new Set(['backup_label', 'backup_manifest']);

/**
 * Parses a base backup's tar stream and keeps backup_label and
 * backup_manifest in memory. `onControlFile` runs when global/pg_control
 * arrives: the server sends it after every other data file, so from then on
 * pg_basebackup only waits for the backup's end (and the archiving of its
 * WAL) and for the manifest.
 */
export async function scanBaseBackup(input: Readable, onControlFile?: () => void): Promise<ScannedBaseBackup> {
  const parser = extract();
  const scanned: ScannedBaseBackup = { entries: 0 };
  parser.on('entry', (header, stream, next) => {
    scanned.entries += 1;
    if (header.name === 'global/pg_control') onControlFile?.();
    if (!KEPT_MEMBERS.has(header.name)) {
      stream.on('end', next);
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      if (header.name === 'backup_label') scanned.backupLabel = Buffer.concat(chunks);
      else scanned.manifest = Buffer.concat(chunks);
      next();
    });
  });
  await pipeline(input, parser);
  return scanned;
}
