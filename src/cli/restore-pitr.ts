/** `drplan restore --pitr`: options, checks and output of point-in-time restores and table recovery. */
import path from 'node:path';
import type { Command } from 'commander';
import { resolveConfigPath } from '../config/load.js';
import { durationSchema } from '../config/schema.js';
import { selectDatabase } from '../context.js';
import { UsageError } from '../errors.js';
import { planPointInTimeRestore, runPointInTimeRestore, type PitrRequest, type PitrResult } from '../restore/pitr.js';
import type { PitrPlan } from '../restore/pitr-plan.js';
import { parseRecoveryTarget } from '../restore/pitr-target.js';
import { planTableRecovery, runTableRecovery, type TableRecoveryRequest, type TableRecoveryResult } from '../restore/table-recovery.js';
import { parseDuration } from '../util/duration.js';
import type { TimelineRequest } from '../wal/continuity.js';
import { formatDuration, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';

const DEFAULT_TIMEOUT = '1h';

export interface PitrOptions {
  pitr?: boolean;
  targetTime?: string;
  targetLsn?: string;
  targetXid?: string;
  target?: string;
  targetTimeline?: string;
  exclusive?: boolean;
  dataDir?: string;
  port?: number;
  start?: boolean;
  timeout?: string;
  archive?: boolean;
}

/** The options only --pitr takes, with their flags. */
export const PITR_ONLY_OPTIONS: [keyof PitrOptions, string][] = [
  ['targetTime', '--target-time'],
  ['targetLsn', '--target-lsn'],
  ['targetXid', '--target-xid'],
  ['target', '--target'],
  ['targetTimeline', '--target-timeline'],
  ['exclusive', '--exclusive'],
  ['dataDir', '--data-dir'],
  ['port', '--port'],
  ['start', '--start'],
  ['timeout', '--timeout'],
  ['archive', '--no-archive'],
];

/** The options of `drplan restore` that a point-in-time restore reads. */
export interface RestoreCommandOptions extends PitrOptions {
  database?: string;
  targetDatabase?: string;
  targetUrl?: string;
  inPlace?: boolean;
  clean?: boolean;
  table: string[];
  dryRun?: boolean;
  json?: boolean;
}

/** Runs `restore --pitr`: a whole cluster into --data-dir, or with --table single tables into --target-database. */
export async function restorePointInTime(backup: string | undefined, options: RestoreCommandOptions, command: Command): Promise<void> {
  checkOptions(backup, options);
  const target = parseRecoveryTarget(options);
  const timeline = parseTimelineRequest(options.targetTimeline);
  const timeoutMs = parseTimeout(options.timeout ?? DEFAULT_TIMEOUT);
  const globals = command.optsWithGlobals<GlobalOptions>();
  const planPath = path.resolve(resolveConfigPath(globals.config));
  // The database URL's variables are needed only to connect: a restore that starts no server runs without the password.
  const context = await loadContext(globals, { repositoriesOnly: !options.start && options.table.length === 0 });
  const database = selectDatabase(context.plan, options.database);
  const signal = interruptSignal();

  if (options.table.length > 0) {
    const request: TableRecoveryRequest = { database, target, timeline, tables: options.table, targetDatabase: options.targetDatabase!, planPath, timeoutMs, signal };
    const plan = await planTableRecovery(context, request);
    if (options.dryRun) return printDryRun(plan, `copy ${options.table.join(', ')} as of that point into database ${request.targetDatabase}`, options.json);
    const result = await runTableRecovery(context, request, plan);
    return options.json ? printJson(result) : printTableResult(result);
  }

  const request: PitrRequest = {
    database,
    target,
    timeline,
    dataDir: path.resolve(options.dataDir!),
    planPath,
    port: options.port,
    start: options.start ?? false,
    archive: options.archive !== false,
    timeoutMs,
    signal,
  };
  const plan = await planPointInTimeRestore(context, request);
  if (options.dryRun) return printDryRun(plan, `extract it into ${request.dataDir} and recover`, options.json);
  const result = await runPointInTimeRestore(context, request, plan);
  return options.json ? printJson(result) : printPitrResult(result);
}

function checkOptions(backup: string | undefined, options: RestoreCommandOptions): void {
  const usage = (message: string, hint: string) => new UsageError(message, { code: 'usage.pitr', hint });
  if (backup !== undefined) throw usage(`--pitr picks the base backup for the target itself, so it takes no backup id (got ${JSON.stringify(backup)})`, 'Drop the backup id; `drplan list` shows which physical backups exist.');
  const withTables = options.table.length > 0;
  for (const [set, flag] of [
    [options.inPlace, '--in-place'],
    [options.clean, '--clean'],
    [options.targetUrl, '--target-url'],
  ] as const) {
    if (set !== undefined) throw usage(`--pitr does not take ${flag}`, 'A point-in-time restore never overwrites a live database: it recovers into --data-dir, or copies --table into --target-database.');
  }
  if (withTables) {
    if (options.targetDatabase === undefined) throw usage('--pitr --table needs --target-database NAME', 'The tables are copied into that database on the plan database\'s server, beside the live data; it is created when missing.');
    for (const [set, flag] of [
      [options.dataDir, '--data-dir'],
      [options.port, '--port'],
      [options.start, '--start'],
    ] as const) {
      if (set !== undefined) throw usage(`--pitr --table does not take ${flag}`, 'Table recovery runs its own scratch cluster in backup.tempDir and removes it afterwards.');
    }
    return;
  }
  if (options.targetDatabase !== undefined) throw usage('--target-database goes with --table in a point-in-time restore', 'Name the tables to copy with --table, or recover the whole cluster into --data-dir.');
  if (options.dataDir === undefined) throw usage('--pitr needs --data-dir DIR, a new or empty directory for the recovered cluster', 'For example: drplan restore --pitr --target-time "2026-12-04 14:30:00+01:00" --data-dir /var/lib/postgresql/restore --start');
  if (options.port !== undefined && options.port > 65535) throw new UsageError(`--port must be at most 65535, got ${options.port}`, { code: 'usage.number', object: '--port' });
}

function parseTimelineRequest(value: string | undefined): TimelineRequest {
  if (value === undefined || value === 'latest' || value === 'current') return value ?? 'latest';
  if (/^[1-9][0-9]{0,9}$/.test(value) && Number(value) <= 0xffffffff) return Number(value);
  throw new UsageError(`invalid --target-timeline ${JSON.stringify(value)}`, {
    code: 'usage.timeline',
    object: value,
    hint: 'Give a timeline number such as 1 or 2 (as in the first 8 hex digits of a WAL file name, in decimal), "current" or "latest".',
  });
}

function parseTimeout(value: string): number {
  if (!durationSchema.safeParse(value).success) {
    throw new UsageError(`invalid --timeout ${JSON.stringify(value)}`, { code: 'usage.timeout', object: value, hint: 'Give a duration such as 90s, 30m or 2h.' });
  }
  return parseDuration(value);
}

function printDryRun(plan: PitrPlan, action: string, json: boolean | undefined): void {
  if (json) {
    printJson({ backup: plan.entry.id, window: plan.window, walCheckedFrom: plan.chain.firstSegment, walCheckedUntil: plan.chain.until, timelines: plan.chain.timelines, recoveryTimeline: plan.timeline });
    return;
  }
  process.stdout.write(`dry run: would take base backup ${plan.entry.id} (finished ${plan.meta.finishedAt}), ${action}\n`);
  process.stdout.write(`archived WAL is continuous from ${plan.chain.firstSegment} to ${plan.chain.until} (timelines ${plan.chain.timelines.join(', ')}); recovery follows timeline ${plan.timeline}\n`);
}

function printPitrResult(result: PitrResult): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`recovery target: ${result.target.description}`);
  out(`base backup ${result.backup} (repository ${result.repository}) extracted into ${result.dataDir}`);
  out(`archived WAL checked for gaps up to ${result.walCheckedUntil}, recovering along timeline ${result.timeline}`);
  out(`restore_command: ${result.restoreCommand}`);
  for (const rejected of result.rejectedCopies) process.stderr.write(`warning: copy rejected, used the next repository: ${rejected}\n`);
  if (result.reached) {
    const point = result.reached;
    out(`recovery ended in ${formatDuration(result.durationMs)}: last replayed transaction at ${point.lastTransactionTime ?? '(none replayed)'}, last replayed LSN ${point.lastReplayedLsn}, now on timeline ${point.timeline}`);
    if (point.stopMessage) out(`  server log: ${point.stopMessage}`);
    out(`the server is running on 127.0.0.1:${result.port} (socket directory ${result.dataDir}, log ${result.logFile})`);
    out(`stop it with: ${result.stopCommand}`);
    return;
  }
  out(`recovery settings are in ${path.join(result.dataDir, 'postgresql.auto.conf')}; recovery.signal is in place`);
  out(`start the server with: ${result.startCommand}`);
  out(`it listens on 127.0.0.1:${result.port}`);
  out('restore_command runs drplan as the server\'s user, so that user must be able to read the plan, and the server\'s environment needs the repository credentials the plan uses');
  out(`stop it with: ${result.stopCommand}`);
}

function printTableResult(result: TableRecoveryResult): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`recovery target: ${result.target.description}`);
  out(`recovered a scratch copy from base backup ${result.backup} (repository ${result.repository}) to last replayed transaction at ${result.reached.lastTransactionTime ?? '(none replayed)'}, LSN ${result.reached.lastReplayedLsn}`);
  out(`${result.createdDatabase ? 'created' : 'used existing'} database ${result.targetDatabase} on ${result.endpoint} and copied:`);
  for (const table of result.tables) out(`  ${table.schema}.${table.name}: ${table.rows} rows`);
  for (const skipped of result.skipped) out(`  not copied: ${skipped}`);
  out(`the scratch cluster was stopped and removed; done in ${formatDuration(result.durationMs)}`);
}
