/**
 * The metadata file of a backup: written last on each repository, so its
 * presence is what makes a backup committed.
 */
import { z } from 'zod';
import { IntegrityError, UsageError } from '../errors.js';

const storedObject = z.object({
  key: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Fields every backup has, whatever it contains. */
const commonFields = {
  formatVersion: z.literal(1),
  id: z.string(),
  origin: z.enum(['scheduled', 'manual', 'pre_restore']),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  drplanVersion: z.string(),
  compression: z.object({ algorithm: z.enum(['zstd', 'gzip', 'none']), level: z.number().optional() }),
  /** Bytes before compression, of the main object. */
  rawBytes: z.number().int().nonnegative(),
  /** Bytes stored, of the main object. */
  storedBytes: z.number().int().nonnegative(),
  /** SHA-256 of the main object as stored. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  repositories: z.array(z.string()),
  host: z.string().optional(),
  /** A free-form tag, such as the deployment that asked for the backup. */
  label: z.string().optional(),
  /** Sanity warnings found when the backup was taken, such as an unusual size. */
  flags: z.array(z.object({ code: z.string(), message: z.string() })).optional(),
};

const serverFields = {
  database: z.string(),
  server: z.object({ version: z.string(), major: z.number() }),
  tool: z.object({ program: z.string(), version: z.string() }),
};

export const logicalMetadataSchema = z.object({
  ...commonFields,
  ...serverFields,
  kind: z.literal('logical'),
  format: z.literal('custom'),
  dump: storedObject,
  globals: storedObject.extend({ rolePasswords: z.boolean() }).optional(),
  databaseOwner: z.string(),
  encoding: z.string(),
  tables: z.array(z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() })),
});

/** The position of a physical base backup in the WAL stream. */
export const walPositionSchema = z.object({
  systemIdentifier: z.string(),
  timeline: z.number().int().positive(),
  startLsn: z.string(),
  stopLsn: z.string(),
  /** The first WAL segment a restore of this backup needs, such as 000000010000000000000003. */
  firstSegment: z.string().regex(/^[0-9A-F]{24}$/),
  /** The segment holding the stop LSN: recovery must replay at least this far to be consistent. */
  lastSegment: z.string().regex(/^[0-9A-F]{24}$/),
  walSegmentSize: z.number().int().positive(),
});

export const physicalMetadataSchema = z.object({
  ...commonFields,
  ...serverFields,
  kind: z.literal('physical'),
  format: z.literal('tar'),
  /** The base backup: pg_basebackup's tar stream, compressed. */
  archive: storedObject,
  /** PostgreSQL's backup_manifest, compressed, for pg_verifybackup. */
  manifest: storedObject,
  wal: walPositionSchema,
});

export const filesMetadataSchema = z.object({
  ...commonFields,
  kind: z.literal('files'),
  fileset: z.string(),
  format: z.literal('tar'),
  archive: storedObject,
  /** The paths of the file set as configured. */
  paths: z.array(z.string()),
  fileCount: z.number().int().nonnegative(),
  /** Bytes of file content in the archive. */
  fileBytes: z.number().int().nonnegative(),
  /** Every archived path (relative, as stored in the tar). */
  entries: z.array(z.string()),
});

export const metadataSchema = z.discriminatedUnion('kind', [logicalMetadataSchema, physicalMetadataSchema, filesMetadataSchema]);

export type BackupMetadata = z.infer<typeof metadataSchema>;
export type LogicalMetadata = z.infer<typeof logicalMetadataSchema>;
export type PhysicalMetadata = z.infer<typeof physicalMetadataSchema>;
export type FilesMetadata = z.infer<typeof filesMetadataSchema>;
export type StoredObject = z.infer<typeof storedObject>;
export type BackupFlag = NonNullable<BackupMetadata['flags']>[number];

/** Returns the object that contains the backup's data: the dump or the tar archive. */
export function mainObject(meta: BackupMetadata): StoredObject {
  return meta.kind === 'logical' ? meta.dump : meta.archive;
}

/** Returns every data object the metadata names (not the metadata itself). */
export function storedObjects(meta: BackupMetadata): StoredObject[] {
  switch (meta.kind) {
    case 'logical':
      return [meta.dump, ...(meta.globals ? [meta.globals] : [])];
    case 'physical':
      return [meta.archive, meta.manifest];
    case 'files':
      return [meta.archive];
  }
}

/**
 * Narrows to a logical backup for the steps that need pg_dump's archive; any
 * other kind is a usage error naming the command that handles it.
 */
export function asLogical(meta: BackupMetadata): LogicalMetadata {
  if (meta.kind === 'logical') return meta;
  const hint = meta.kind === 'physical' ? 'Restore a physical backup with `drplan restore --pitr`.' : 'Restore a file-set backup with `drplan restore ID --to DIR`.';
  throw new UsageError(`backup ${meta.id} is a ${meta.kind} backup, not a pg_dump archive`, { code: 'backup.kind', object: meta.id, hint });
}

/** Narrows to a physical base backup; any other kind is a usage error. */
export function asPhysical(meta: BackupMetadata): PhysicalMetadata {
  if (meta.kind === 'physical') return meta;
  throw new UsageError(`backup ${meta.id} is a ${meta.kind} backup, not a physical base backup`, {
    code: 'backup.kind',
    object: meta.id,
    hint: 'Choose a backup taken with `drplan backup --kind physical` (`drplan list` shows the kind).',
  });
}

/** Returns the subject of the backup: the database name, or the file set name. */
export function subjectOf(meta: BackupMetadata): string {
  return meta.kind === 'files' ? meta.fileset : meta.database;
}

/** Parses a metadata file; an unreadable one is an integrity error naming the key. */
export function parseMetadata(text: string, key: string, repository: string): BackupMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new IntegrityError(`repository ${repository}: metadata ${key} is not valid JSON`, { code: 'metadata.json', object: key, cause: err });
  }
  const result = metadataSchema.safeParse(json);
  if (!result.success) {
    const first = result.error.issues[0]!;
    throw new IntegrityError(`repository ${repository}: metadata ${key} is invalid at ${first.path.join('.')}: ${first.message}`, {
      code: 'metadata.invalid',
      object: key,
    });
  }
  return result.data;
}

export function serializeMetadata(meta: BackupMetadata): Buffer {
  return Buffer.from(`${JSON.stringify(meta, null, 2)}\n`);
}
