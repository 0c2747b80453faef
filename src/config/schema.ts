/**
 * The shape of `drplan.yaml`, checked with zod. Unknown fields are rejected
 * everywhere so that a misspelt option fails loudly instead of being ignored.
 */
import { z } from 'zod';
import { PROBLEM_EVENTS } from '../notify/events.js';

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
    /** Files the spool may contain before `wal push` fails and PostgreSQL keeps the segment in pg_wal. */
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
  /** Absolute, because the archive stores each entry under its absolute path. */
  paths: z.array(z.string().regex(/^\//, 'an absolute path such as /srv/shop/uploads')).min(1),
  exclude: z.array(z.string()).optional(),
});

export const jobSchema = z.strictObject({
  name,
  type: z.enum(['backup', 'files', 'verify', 'prune', 'wal-check']),
  database: z.string().optional(),
  fileset: z.string().optional(),
  kind: z.enum(['logical', 'physical']).optional(),
  deep: z.boolean().optional(),
  /** Five-field cron expression (six with seconds), evaluated in UTC unless `timezone` is set. */
  cron: z.string().min(1),
  /** IANA time zone for `cron`, such as Europe/Berlin. */
  timezone: z.string().optional(),
  /** Run once at start when the last scheduled run was missed; default: `server.catchUp`. */
  catchUp: z.boolean().optional(),
  description: z.string().optional(),
});

export const serverSchema = z.strictObject({
  /** Address of the HTTP API as HOST:PORT. */
  listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'HOST:PORT, such as 127.0.0.1:9187').default('127.0.0.1:9187'),
  /** Bearer token required by /api and /metrics; unset leaves them open. */
  token: z.string().min(16, 'a token of at least 16 characters').optional(),
  /** Directory of the daemon's state file (last run of each job); default: $STATE_DIRECTORY, else ~/.local/state/drplan. */
  stateDir: z.string().min(1).optional(),
  /** Run a job once at start when its last scheduled run was missed. */
  catchUp: z.boolean().default(true),
  /** How long shutdown waits for running jobs before aborting them. */
  shutdownTimeout: duration.default('5m'),
  /** How often the status behind /metrics and /ready is read again from the repositories, besides after each job. */
  refreshInterval: duration.default('1m'),
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

const httpUrl = z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' });

/** An e-mail address, bare or with a display name. */
const emailAddress = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/, 'an e-mail address such as ops@example.com or "drplan <drplan@example.com>"');

export const alertSeveritySchema = z.enum(['critical', 'error', 'warning', 'info']);

export const webhookChannelSchema = z.strictObject({
  name,
  type: z.literal('webhook'),
  url: httpUrl,
  /** Extra request headers, such as an Authorization token written as ${VAR}. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name'), z.string()).optional(),
});

export const slackChannelSchema = z.strictObject({
  name,
  type: z.literal('slack'),
  /** A Slack (or Slack-compatible, such as Mattermost) incoming-webhook URL. */
  url: httpUrl,
});

export const emailChannelSchema = z.strictObject({
  name,
  type: z.literal('email'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  /** TLS from the first byte (usually port 465); false means plain SMTP, upgraded with STARTTLS when the server offers it. */
  secure: z.boolean().default(false),
  /** Refuse to send unless the server upgrades the connection with STARTTLS. */
  requireTLS: z.boolean().default(false),
  user: z.string().min(1).optional(),
  /** Written as ${VAR}: the plan file must not contain the password itself. */
  password: z.string().optional(),
  from: emailAddress,
  to: z.array(emailAddress).min(1, 'at least one recipient'),
});

export const pagerdutyChannelSchema = z.strictObject({
  name,
  type: z.literal('pagerduty'),
  /**
   * The Events API v2 enqueue endpoint, such as PagerDuty's own
   * https://events.pagerduty.com/v2/enqueue. Required: drplan sends nothing to
   * a host the plan does not name.
   */
  url: httpUrl,
  /** The integration key of the PagerDuty service, written as ${VAR}. */
  routingKey: z.string().min(1),
});

export const notificationChannelSchema = z.discriminatedUnion('type', [webhookChannelSchema, slackChannelSchema, emailChannelSchema, pagerdutyChannelSchema]);

export const notificationRouteSchema = z.strictObject({
  /** Problem events this route applies to; default: every problem event. Recoveries follow their problem and are not routed. */
  events: z.array(z.enum(PROBLEM_EVENTS)).min(1).optional(),
  /** The minimum severity this route applies to; default: every severity. */
  minSeverity: alertSeveritySchema.optional(),
  channels: z.array(z.string().min(1)).min(1, 'at least one channel'),
});

export const notificationsSchema = z.strictObject({
  channels: z.array(notificationChannelSchema).default([]),
  /** Rules that send problems to channels; without routes, every problem goes to every channel. */
  routes: z.array(notificationRouteSchema).min(1).optional(),
  /** A repeat of an alert already sent (same event and subject) is not sent again within this time. */
  suppressFor: duration.default('1h'),
  /** Time limit of one delivery attempt (an HTTP request, or each SMTP connection phase). */
  timeout: duration.default('10s'),
  retry: z
    .strictObject({
      /** Delivery attempts per alert and channel, the first included. */
      attempts: z.number().int().min(1).max(10).default(5),
      /** Wait before the second attempt; it doubles before each further attempt. */
      initialBackoff: duration.default('2s'),
    })
    .default({ attempts: 5, initialBackoff: '2s' }),
  /** Alerts waiting per channel; when full, the oldest waiting alert is dropped. */
  queueSize: z.number().int().min(1).max(10_000).default(100),
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
  server: serverSchema.prefault({}),
  verify: verifySchema.optional(),
  scenarios: z.array(scenarioSchema).optional(),
  incidents: incidentsSchema.optional(),
  compliance: complianceSchema.optional(),
  notifications: notificationsSchema.optional(),
});

export type Plan = z.infer<typeof planSchema>;
export type DatabaseConfig = z.infer<typeof databaseSchema>;
export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type Compression = Plan['backup']['compression'];
export type RetentionRules = z.infer<typeof retentionRulesSchema>;
export type RetentionConfig = z.infer<typeof retentionSchema>;
export type WalConfig = z.infer<typeof walSchema>;
export type VerifyCheck = z.infer<typeof verifyCheckSchema>;
export type JobConfig = z.infer<typeof jobSchema>;
export type ServerConfig = z.infer<typeof serverSchema>;
export type NotificationsConfig = z.infer<typeof notificationsSchema>;
export type NotificationChannelConfig = z.infer<typeof notificationChannelSchema>;
export type NotificationRoute = z.infer<typeof notificationRouteSchema>;
