/**
 * `drplan restore`: restore a database backup side by side, or in place after
 * a safety backup; or extract a file-set backup into a directory (--to).
 */
import type { Command } from 'commander';
import { readCatalog } from '../backup/catalog.js';
import { defaultDatabaseName, selectDatabase, type PlanContext } from '../context.js';
import { UsageError } from '../errors.js';
import { planRestore, runRestore, type RestoreRequest } from '../restore/restore-backup.js';
import { checkDestination, findFilesBackup, runFilesRestore } from '../restore/files-restore.js';
import { formatBytes, formatDuration, interruptSignal, loadContext, positiveInt, printJson, type GlobalOptions } from './common.js';
import { confirmDestructive } from './confirm.js';

interface RestoreOptions {
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
  to?: string;
  force?: boolean;
  files?: string;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a backup into a new database (--target-database) or over the configured one (--in-place); a file-set backup into a directory (--to)')
    .argument('<backup>', 'backup id, or "latest"')
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
    .action(async (backup: string, options: RestoreOptions, command: Command) => {
      if (options.to !== undefined) {
        checkFilesOptions(options, command);
        const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
        return restoreFiles(context, backup, options, options.to);
      }
      if (options.force || options.files !== undefined) {
        throw new UsageError(`${options.force ? '--force' : '--files'} applies to file-set restores, which need --to DIR`, {
          code: 'usage.target',
          hint: 'Add --to DIR to extract a file-set backup into a directory.',
        });
      }
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
