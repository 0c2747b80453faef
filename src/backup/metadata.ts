/**
 * The metadata file of a backup: written last on each repository, so its
 * presence is what makes a backup committed.
 */
import { z } from 'zod';
import { IntegrityError } from '../errors.js';

const storedObject = z.object({
  key: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const metadataSchema = z.object({
  formatVersion: z.literal(1),
  id: z.string(),
  database: z.string(),
  kind: z.literal('logical'),
  origin: z.enum(['scheduled', 'manual', 'pre_restore']),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  server: z.object({ version: z.string(), major: z.number() }),
  tool: z.object({ program: z.string(), version: z.string() }),
  drplanVersion: z.string(),
  format: z.literal('custom'),
  compression: z.object({ algorithm: z.enum(['zstd', 'gzip', 'none']), level: z.number().optional() }),
  rawBytes: z.number().int().nonnegative(),
  storedBytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  dump: storedObject,
  globals: storedObject.extend({ rolePasswords: z.boolean() }).optional(),
  databaseOwner: z.string(),
  encoding: z.string(),
  tables: z.array(z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() })),
  repositories: z.array(z.string()),
  host: z.string().optional(),
  /** Sanity warnings found when the backup was taken, such as an unusual size. */
  flags: z.array(z.object({ code: z.string(), message: z.string() })).optional(),
});

export type BackupMetadata = z.infer<typeof metadataSchema>;
export type BackupFlag = NonNullable<BackupMetadata['flags']>[number];

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
