/**
 * `drplan restore`: restore a backup side by side, or in place after a safety
 * backup. With --pitr it recovers a physical backup and the archived WAL to a
 * point in time, into a new data directory or, for single tables, into a side
 * database.
 */
import type { Command } from 'commander';
import { defaultDatabaseName, selectDatabase } from '../context.js';
import { UsageError } from '../errors.js';
import { planRestore, runRestore, type RestoreRequest } from '../restore/restore-backup.js';
import { formatDuration, interruptSignal, loadContext, positiveInt, printJson, type GlobalOptions } from './common.js';
import { confirmDestructive } from './confirm.js';
import { PITR_ONLY_OPTIONS, restorePointInTime, type PitrOptions } from './restore-pitr.js';

interface RestoreOptions extends PitrOptions {
  database?: string;
  targetDatabase?: string;
  targetUrl?: string;
  inPlace?: boolean;
  clean?: boolean;
  table: string[];
  jobs: number;
  globals: boolean;
  yes?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a backup into a new database (--target-database) or over the configured one (--in-place); with --pitr, recover to a point in time')
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
    .option('--pitr', 'point-in-time recovery from a physical base backup and the archived WAL')
    .option('--target-time <time>', 'with --pitr: recover to this moment, such as "2026-12-04 14:30:00+01:00"; without an offset it is local time of this machine (TZ)')
    .option('--target-lsn <lsn>', 'with --pitr: recover to this WAL location, such as 0/3000028')
    .option('--target-xid <xid>', 'with --pitr: recover to this transaction id')
    .option('--target <name>', 'with --pitr: "latest" replays all archived WAL')
    .option('--exclusive', 'with --pitr: stop just before the target instead of just after it')
    .option('--data-dir <dir>', 'with --pitr: new or empty directory for the recovered cluster')
    .option('--port <port>', 'with --pitr: port of the recovered server on 127.0.0.1 (default with --start: a free port)', positiveInt('--port'))
    .option('--start', 'with --pitr: start the server, wait until recovery has ended and leave it running')
    .option('--timeout <duration>', 'with --pitr --start: how long to wait for recovery to end, such as 30m or 2h (default: 1h)')
    .option('--no-archive', 'with --pitr: turn WAL archiving off in the recovered server, for a test restore beside a live primary')
    .action(async (backup: string | undefined, options: RestoreOptions, command: Command) => {
      if (options.pitr) return restorePointInTime(backup, options, command);
      rejectPitrOptions(backup, options);
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      const databaseName = defaultDatabaseName(context.plan, options.database);
      // A database that left the plan can still be restored elsewhere with --target-url.
      const inPlan = databaseName !== undefined && context.plan.databases.some((d) => d.name === databaseName);
      const database = inPlan ? selectDatabase(context.plan, databaseName) : undefined;
      const request: RestoreRequest = {
        backup: backup!,
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

/** Rejects the options that only --pitr takes, and a missing backup id. */
function rejectPitrOptions(backup: string | undefined, options: RestoreOptions): void {
  // --no-archive sets archive to false; commander sets it to true otherwise.
  const stray = PITR_ONLY_OPTIONS.find(([key]) => (key === 'archive' ? options.archive === false : options[key] !== undefined));
  if (stray) {
    throw new UsageError(`${stray[1]} needs --pitr`, { code: 'usage.pitr', object: stray[1], hint: `Add --pitr for a point-in-time restore from a physical backup, or drop ${stray[1]}.` });
  }
  if (backup === undefined) {
    throw new UsageError('restore needs a backup id, or "latest"', { code: 'usage.backup', hint: 'Run `drplan list` to see the backups, or use --pitr to recover to a point in time.' });
  }
}
