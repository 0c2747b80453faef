/**
 * `drplan restore`: restore a database backup side by side, or in place after
 * a safety backup; extract a file-set backup into a directory (--to). With
 * --pitr it recovers a physical backup and the archived WAL to a point in
 * time, into a new data directory or, for single tables, into a side database.
 */
import type { Command } from 'commander';
import { readCatalog } from '../backup/catalog.js';
import { defaultDatabaseName, selectDatabase, type PlanContext } from '../context.js';
import { UsageError } from '../errors.js';
import { planRestore, runRestore, type RestoreRequest } from '../restore/restore-backup.js';
import { checkDestination, findFilesBackup, runFilesRestore } from '../restore/files-restore.js';
import { formatBytes, formatDuration, interruptSignal, loadContext, positiveInt, printJson, type GlobalOptions } from './common.js';
import { confirmDestructive } from './confirm.js';
import { PITR_ONLY_OPTIONS, restorePointInTime, type RestoreCommandOptions } from './restore-pitr.js';

interface RestoreOptions extends RestoreCommandOptions {
  jobs: number;
  globals: boolean;
  yes?: boolean;
  to?: string;
  force?: boolean;
  files?: string;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a backup into a new database (--target-database) or over the configured one (--in-place); a file-set backup into a directory (--to); with --pitr, recover to a point in time')
    .argument('[backup]', 'backup id, or "latest" (not with --pitr, which picks the base backup itself)')
    .option('--database <name>', 'database of the plan the backup belongs to')
    .option('--target-database <name>', 'restore into this database, created when missing')
    .option('--target-url <uri>', 'server to restore into, as a libpq URI (default: the database URL from the plan)')
    .option('--in-place', 'overwrite the configured database, after a committed pre_restore backup of it')
    .option('--clean', 'allow a non-empty --target-database; objects in the backup are dropped and recreated')
    .option('--table <name>', 'restore only this table, as name or schema.name (repeatable)', (value: string, list: string[]) => [...list, value], [])
    .option('--jobs <n>', 'parallel pg_restore jobs', positiveInt('--jobs'), 1)
    .option('--no-globals', 'do not recreate missing roles from the backup')
    .option('--yes', 'confirm an in-place restore without asking')
    .option('--dry-run', 'print what would be restored and where, and change nothing')
    .option('--json', 'print the result as JSON')
    .option('--to <dir>', 'extract a file-set backup into this directory, created when absent; it must be empty unless --force')
    .option('--force', 'with --to: overwrite files that already exist in the directory (other files are kept)')
    .option('--files <name>', 'file set the backup belongs to (needed with "latest")')
    .option('--pitr', 'point-in-time recovery from a physical base backup and the archived WAL')
    .option('--target-time <time>', 'with --pitr: recover to this moment, such as "2026-12-04 14:30:00+01:00"; without an offset it is local time of this machine (TZ)')
    .option('--target-lsn <lsn>', 'with --pitr: recover to this WAL location, such as 0/3000028')
    .option('--target-xid <xid>', 'with --pitr: recover to this transaction id')
    .option('--target <name>', 'with --pitr: "latest" replays all archived WAL')
    .option('--exclusive', 'with --pitr: stop just before the target instead of just after it')
    .option('--data-dir <dir>', 'with --pitr: new or empty directory for the recovered cluster')
    .option('--port <port>', 'with --pitr: port of the recovered server on 127.0.0.1 (default: a free port, written into the recovery settings)', positiveInt('--port'))
    .option('--target-timeline <timeline>', 'with --pitr: timeline to recover along: a number, "current" (the base backup\'s own) or "latest" (default: the newest timeline that branched off the backup\'s timeline after the backup)')
    .option('--start', 'with --pitr: start the server, wait until recovery has ended and leave it running')
    .option('--timeout <duration>', 'with --pitr --start: how long to wait for recovery to end, such as 30m or 2h (default: 1h)')
    .option('--no-archive', 'with --pitr: turn WAL archiving off in the recovered server, for a test restore beside a live primary')
    .action(async (backup: string | undefined, options: RestoreOptions, command: Command) => {
      if (options.pitr) {
        rejectFilesOptions(options, '--pitr');
        return restorePointInTime(backup, options, command);
      }
      rejectPitrOptions(backup, options);
      if (options.to !== undefined) {
        checkFilesOptions(options, command);
        const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
        return restoreFiles(context, backup, options, options.to);
      }
      rejectFilesOptions(options, 'a database restore');
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      await rejectFilesBackup(context, backup, options.database);
      const databaseName = defaultDatabaseName(context.plan, options.database);
      // A database that left the plan can still be restored elsewhere with --target-url.
      const inPlan = databaseName !== undefined && context.plan.databases.some((d) => d.name === databaseName);
      const database = inPlan ? selectDatabase(context.plan, databaseName) : undefined;
      const request: RestoreRequest = {
        backup,
        database,
        databaseName,
        targetDatabase: options.targetDatabase,
        targetUrl: options.targetUrl,
        inPlace: options.inPlace ?? false,
        clean: options.clean ?? false,
        tables: options.table,
        jobs: options.jobs,
        globals: options.globals,
        signal: interruptSignal(),
      };
      const plan = await planRestore(context, request);
      const description = `restore backup ${plan.entry.id} (recovery point ${plan.entry.meta.startedAt}) of ${plan.entry.database} into database ${plan.target.database} on ${plan.target.endpoint}`;
      if (options.dryRun) {
        process.stdout.write(`dry run: would ${description}${request.inPlace ? ', after a pre_restore backup, replacing its current contents' : ''}\n`);
        return;
      }
      if (request.inPlace) {
        await confirmDestructive(`This will overwrite database ${plan.target.database} on ${plan.target.endpoint} with backup ${plan.entry.id}`, plan.target.database, options.yes ?? false, 'the in-place restore');
      }
      const result = await runRestore(context, request, plan);
      for (const rejected of result.rejectedCopies) process.stderr.write(`warning: copy rejected, used the next repository: ${rejected}\n`);
      if (options.json) return printJson({ ...result, backup: result.backup.id });
      if (result.preRestoreBackup) process.stdout.write(`safety backup committed: ${result.preRestoreBackup}\n`);
      process.stdout.write(
        `restored ${result.backup.id} from repository ${result.repository} into ${result.targetDatabase} in ${formatDuration(result.durationMs)}; recovery point ${result.recoveryPoint}\n`,
      );
    });
}

/** Options of a database restore that mean nothing for a file-set restore, with the value commander gives when they are absent. */
const DATABASE_OPTIONS = ['database', 'targetDatabase', 'targetUrl', 'inPlace', 'clean', 'table', 'jobs', 'globals', 'yes'] as const;

function checkFilesOptions(options: RestoreOptions, command: Command): void {
  const given = DATABASE_OPTIONS.filter((name) => command.getOptionValueSource(name) === 'cli').map((name) => `--${name === 'globals' ? 'no-globals' : kebab(name)}`);
  if (given.length === 0) return;
  throw new UsageError(`--to restores a file-set backup and takes no database option (${given.join(', ')})`, {
    code: 'usage.target',
    hint: 'Drop the database options, or drop --to to restore a database backup.',
  });
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Gives a file-set backup id passed without --to a usage error that names --to, instead of "not found". */
async function rejectFilesBackup(context: PlanContext, backup: string, database: string | undefined): Promise<void> {
  if (backup === 'latest' || database !== undefined) return;
  const matches = (await readCatalog(context)).entries.filter((e) => e.id === backup);
  const fileset = matches.find((e) => e.meta.kind === 'files');
  if (!fileset || matches.length > 1) return;
  throw new UsageError(`backup ${backup} is a backup of file set ${fileset.database}, not of a database`, {
    code: 'backup.kind',
    object: backup,
    hint: `Restore it into a directory with: drplan restore ${backup} --to DIR`,
  });
}

async function restoreFiles(context: PlanContext, backup: string, options: RestoreOptions, to: string): Promise<void> {
  const signal = interruptSignal();
  if (options.dryRun) {
    const entry = await findFilesBackup(context, backup, options.files);
    await checkDestination(to, options.force ?? false);
    process.stdout.write(`dry run: would restore backup ${entry.id} of file set ${entry.database} (${entry.meta.fileCount} files) into ${to}\n`);
    return;
  }
  const result = await runFilesRestore(context, { backup, fileset: options.files, to, force: options.force ?? false, signal });
  for (const rejected of result.rejectedCopies) process.stderr.write(`warning: copy rejected, used the next repository: ${rejected}\n`);
  if (options.json) return printJson({ ...result, backup: result.backup.id });
  process.stdout.write(
    `restored ${result.backup.id} from repository ${result.repository} into ${result.directory}: ${result.fileCount} files, ${formatBytes(result.fileBytes)} in ${formatDuration(result.durationMs)}\n`,
  );
}

/** Rejects --force and --files, which belong to file-set restores, in another kind of restore. */
function rejectFilesOptions(options: RestoreOptions, restore: string): void {
  if (options.to === undefined && !options.force && options.files === undefined) return;
  let flag = '--files';
  if (options.force) flag = '--force';
  if (options.to !== undefined) flag = '--to';
  throw new UsageError(`${flag} applies to file-set restores and cannot be used with ${restore}`, {
    code: 'usage.target',
    hint: 'Add --to DIR, without --pitr, to extract a file-set backup into a directory.',
  });
}

/** Rejects the options that only --pitr takes, and a missing backup id. */
function rejectPitrOptions(backup: string | undefined, options: RestoreOptions): asserts backup is string {
  // --no-archive sets archive to false; commander sets it to true otherwise.
  const stray = PITR_ONLY_OPTIONS.find(([key]) => (key === 'archive' ? options.archive === false : options[key] !== undefined));
  if (stray) {
    throw new UsageError(`${stray[1]} is valid only with --pitr`, { code: 'usage.pitr', object: stray[1], hint: `Add --pitr for a point-in-time restore from a physical backup, or drop ${stray[1]}.` });
  }
  if (backup === undefined) {
    throw new UsageError('restore needs a backup id, or "latest"', { code: 'usage.backup', hint: 'Run `drplan list` to see the backups, or use --pitr to recover to a point in time.' });
  }
}
