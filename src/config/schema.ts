/**
 * The shape of `drplan.yaml`, checked with zod. Unknown fields are rejected
 * everywhere so that a misspelt option fails loudly instead of being ignored.
 */
import { z } from 'zod';

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a name of letters, digits, "_", "." or "-" (at most 63 characters)');

const duration = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(s|m|h|d|w)$/, 'a duration such as "15m", "24h" or "7d"');

export { duration as durationSchema };

export const databaseSchema = z.strictObject({
  name,
  url: z.string().regex(/^postgres(ql)?:\/\//, 'a libpq connection URI starting with postgres:// or postgresql://'),
  description: z.string().optional(),
  objectives: z.strictObject({ rpo: duration.optional(), rto: duration.optional() }).optional(),
});

export const retentionRulesSchema = z.strictObject({
  keepLast: z.number().int().positive().optional(),
  keepDays: z.number().int().positive().optional(),
  keepDaily: z.number().int().positive().optional(),
  keepWeekly: z.number().int().positive().optional(),
  keepMonthly: z.number().int().positive().optional(),
  /** Compliance cap: nothing older is kept, whatever the other rules select. */
  maxAgeDays: z.number().int().positive().optional(),
});

export const retentionSchema = retentionRulesSchema.extend({
  /** Rules for backups taken with --name; default: the rules above. */
  manual: retentionRulesSchema.optional(),
  /** Rules for pre_restore safety backups; default: the rules above. */
  preRestore: retentionRulesSchema.optional(),
  /** Objects without metadata older than this are removed as partial. */
  partialGrace: duration.default('24h'),
});

export const repositorySchema = z.strictObject({
  name,
  url: z.string().regex(/^(file:\/\/\/|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/|$))/, 'file:///absolute/path or s3://bucket/prefix (bucket of 3-63 lowercase letters, digits, "." or "-")'),
  endpoint: z.url().optional(),
  region: z.string().min(1).optional(),
  forcePathStyle: z.boolean().optional(),
  retention: retentionSchema.optional(),
});

export const backupSchema = z.strictObject({
  compression: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
  compressionLevel: z.number().int().min(1).max(19).optional(),
  /** Directory for temporary files during restore and verification; defaults to the system temp directory. */
  tempDir: z.string().optional(),
  /** How long a backup waits for another run on the same database to finish; 0s fails at once. */
  lockTimeout: duration.default('0s'),
  /**
   * How long a physical backup waits, once pg_basebackup has sent the data,
   * for the WAL segment holding its stop LSN to be archived in every repository.
   */
  archiveTimeout: duration.default('60s'),
});

export const walSchema = z
  .strictObject({
    /** Queue WAL files in a local spool directory and upload them in the background. */
    async: z.boolean().default(false),
    /** Absolute path of the spool directory; required with async. */
    spoolDir: z.string().optional(),
    /** Files the spool holds before `wal push` fails and PostgreSQL keeps the segment in pg_wal. */
    maxQueue: z.number().int().positive().default(64),
  })
  .refine((wal) => !wal.async || (wal.spoolDir !== undefined && wal.spoolDir.startsWith('/')), {
    message: 'wal.async needs wal.spoolDir, an absolute path on local disk such as /var/lib/drplan/spool',
    path: ['spoolDir'],
  });

const objectiveTable = z.record(z.string(), duration);

export const objectivesSchema = z.strictObject({
  rpo: z.union([duration, objectiveTable]).optional(),
  rto: z.union([duration, objectiveTable]).optional(),
});

export const filesetSchema = z.strictObject({
  name,
  paths: z.array(z.string().min(1)).min(1),
  exclude: z.array(z.string()).optional(),
});

export const jobSchema = z.strictObject({
  name,
  type: z.enum(['backup', 'files', 'verify', 'prune', 'wal-check']),
  database: z.string().optional(),
  fileset: z.string().optional(),
  kind: z.enum(['logical', 'physical']).optional(),
  deep: z.boolean().optional(),
  cron: z.string().min(1),
  timezone: z.string().optional(),
  description: z.string().optional(),
});

export const verifyCheckSchema = z.strictObject({
  name: z.string().min(1),
  database: z.string().optional(),
  sql: z.string().min(1),
  expect: z.union([z.string(), z.number(), z.boolean()]).optional(),
  minRows: z.number().int().nonnegative().optional(),
});

export const verifySchema = z.strictObject({
  /** Server for test restores; without it drplan starts a throwaway local cluster. */
  url: z.string().regex(/^postgres(ql)?:\/\//, 'a libpq connection URI').optional(),
  checks: z.array(verifyCheckSchema).optional(),
  /** Parallel pg_restore jobs for test restores. */
  jobs: z.number().int().positive().default(2),
});

export const scenarioSchema = z.strictObject({
  name,
  title: z.string().min(1),
  objective: z.string().optional(),
  steps: z.array(z.string().min(1)).min(1),
});

export const severitySchema = z.strictObject({
  level: z.enum(['P0', 'P1', 'P2', 'P3']),
  description: z.string().min(1),
  respondWithin: duration,
  notify: z.array(z.string()).optional(),
});

export const incidentsSchema = z.strictObject({
  severities: z.array(severitySchema).optional(),
  channels: z.array(z.string()).optional(),
  reportWithin: duration.optional(),
  maintenanceNotice: duration.optional(),
});

export const complianceSchema = z.strictObject({
  maxRetentionDays: z.number().int().positive().optional(),
  encryption: z.boolean().optional(),
  auditTrail: z.boolean().optional(),
});

export const planSchema = z.strictObject({
  version: z.literal(1).default(1),
  service: z.string().optional(),
  objectives: objectivesSchema.optional(),
  databases: z.array(databaseSchema).min(1, 'at least one database'),
  repositories: z.array(repositorySchema).min(1, 'at least one repository'),
  backup: backupSchema.default({ compression: 'zstd', lockTimeout: '0s', archiveTimeout: '60s' }),
  wal: walSchema.default({ async: false, maxQueue: 64 }),
  files: z.array(filesetSchema).optional(),
  jobs: z.array(jobSchema).optional(),
  verify: verifySchema.optional(),
  scenarios: z.array(scenarioSchema).optional(),
  incidents: incidentsSchema.optional(),
  compliance: complianceSchema.optional(),
});

export type Plan = z.infer<typeof planSchema>;
export type DatabaseConfig = z.infer<typeof databaseSchema>;
export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type Compression = Plan['backup']['compression'];
export type RetentionRules = z.infer<typeof retentionRulesSchema>;
export type RetentionConfig = z.infer<typeof retentionSchema>;
export type WalConfig = z.infer<typeof walSchema>;
export type VerifyCheck = z.infer<typeof verifyCheckSchema>;
