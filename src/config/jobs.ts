/**
 * Checks of `jobs[]` that the schema cannot express: unique names, the
 * database or file set each job needs, a five-field cron expression (or a
 * nickname such as @daily) that croner parses and that fires, and a valid
 * IANA time zone. Each error names the job and the field.
 */
import { Cron } from 'croner';
import { ConfigError } from '../errors.js';
import type { JobConfig, Plan } from './schema.js';

/** Raises a ConfigError for the first invalid job of the plan. */
export function checkJobs(plan: Plan, file: string): void {
  const seen = new Set<string>();
  (plan.jobs ?? []).forEach((job, index) => {
    const where = `jobs[${index}] (${job.name})`;
    if (seen.has(job.name)) fail(file, `${where}.name "${job.name}" is used twice`, `jobs[${index}].name`, 'Give every job its own name.');
    seen.add(job.name);
    checkTarget(plan, job, where, index, file);
    checkSchedule(job, where, index, file);
  });
}

function checkTarget(plan: Plan, job: JobConfig, where: string, index: number, file: string): void {
  if (job.type === 'files') {
    const filesets = (plan.files ?? []).map((f) => f.name);
    if (job.fileset === undefined) fail(file, `${where}.fileset is missing; a files job names a file set`, `jobs[${index}].fileset`, knownList('file sets', filesets));
    if (!filesets.includes(job.fileset)) fail(file, `${where}.fileset "${job.fileset}" is not a file set of the plan`, `jobs[${index}].fileset`, knownList('file sets', filesets));
    if (job.database !== undefined) fail(file, `${where}.database is set, but a files job backs up a file set`, `jobs[${index}].database`, 'Remove database, or change type.');
    return;
  }
  if (job.fileset !== undefined) fail(file, `${where}.fileset is set, but only a files job takes a file set`, `jobs[${index}].fileset`, 'Remove fileset, or set type: files.');
  const databases = plan.databases.map((d) => d.name);
  if (job.type === 'prune') {
    if (job.database !== undefined) fail(file, `${where}.database is set, but a prune job applies the retention rules of every repository to every database`, `jobs[${index}].database`, 'Remove database.');
    return;
  }
  if (job.database === undefined && databases.length === 1) return;
  if (job.database === undefined) fail(file, `${where}.database is missing; the plan has ${databases.length} databases`, `jobs[${index}].database`, knownList('databases', databases));
  if (!databases.includes(job.database)) fail(file, `${where}.database "${job.database}" is not a database of the plan`, `jobs[${index}].database`, knownList('databases', databases));
  if (job.kind !== undefined && job.type !== 'backup') fail(file, `${where}.kind is set, but only a backup job takes a kind`, `jobs[${index}].kind`, 'Remove kind.');
  if (job.deep !== undefined && job.type !== 'verify') fail(file, `${where}.deep is set, but only a verify job takes deep`, `jobs[${index}].deep`, 'Remove deep.');
}

function checkSchedule(job: JobConfig, where: string, index: number, file: string): void {
  if (job.timezone !== undefined && !isTimeZone(job.timezone)) {
    fail(file, `${where}.timezone "${job.timezone}" is not an IANA time zone`, `jobs[${index}].timezone`, 'Use a name such as UTC, Europe/Berlin or America/New_York.');
  }
  checkCronShape(job, where, index, file);
  let next: Date | null;
  try {
    next = new Cron(job.cron, { paused: true, timezone: job.timezone ?? 'UTC' }).nextRun();
  } catch (err) {
    fail(file, `${where}.cron "${job.cron}" is invalid: ${(err as Error).message}`, `jobs[${index}].cron`, CRON_EXAMPLE);
  }
  if (next === null) {
    fail(file, `${where}.cron "${job.cron}" never fires, because no date matches it`, `jobs[${index}].cron`, 'Check the day of month against the month (February has no 30th or 31st). For example "0 2 28 2 *" runs at 02:00 on February 28th.');
  }
}

/**
 * Cron nicknames that croner 11 accepts and that crontab(5) of Vixie cron
 * (and cronie, derived from it) documents in place of the five fields, so
 * `schedule install --cron` can write them as they are. @reboot is left out
 * because it names no time.
 */
export const CRON_NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly'];

const CRON_EXAMPLE = 'Use five fields (minute hour day-of-month month day-of-week), for example "0 2 * * *" for 02:00 every day, or a nickname such as @daily.';

/**
 * Rejects an expression that is neither five fields nor a nickname. Croner
 * also takes six or seven fields (seconds and years), but crontab does not,
 * and a seconds field would make a backup run every few seconds.
 */
function checkCronShape(job: JobConfig, where: string, index: number, file: string): void {
  const expression = job.cron.trim();
  if (expression.startsWith('@')) {
    if (!CRON_NICKNAMES.includes(expression)) fail(file, `${where}.cron "${job.cron}" is not a supported nickname; expected one of ${CRON_NICKNAMES.join(', ')}`, `jobs[${index}].cron`, CRON_EXAMPLE);
    return;
  }
  const fields = expression.split(/\s+/).length;
  if (fields !== 5) fail(file, `${where}.cron "${job.cron}" has ${fields} fields; expected exactly five, because seconds and years are not supported`, `jobs[${index}].cron`, CRON_EXAMPLE);
}

/** Checks a time zone name against the zones in this Node.js build's ICU data. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Returns the database a job works on, defaulting to the plan's only database. */
export function jobDatabase(plan: Plan, job: JobConfig): string | undefined {
  if (job.type === 'files' || job.type === 'prune') return undefined;
  return job.database ?? plan.databases[0]!.name;
}

function knownList(category: string, names: string[]): string {
  return names.length === 0 ? `The plan defines no ${category}.` : `Known ${category}: ${names.join(', ')}.`;
}

function fail(file: string, message: string, object: string, hint: string): never {
  throw new ConfigError(`invalid plan ${file}: ${message}`, { code: 'config.job', object, hint });
}
