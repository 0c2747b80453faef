/** `drplan restore`: restore a backup side by side, or in place after a safety backup. */
import type { Command } from 'commander';
import { defaultDatabaseName, selectDatabase } from '../context.js';
import { planRestore, runRestore, type RestoreRequest } from '../restore/restore-backup.js';
import { formatDuration, interruptSignal, loadContext, positiveInt, printJson, type GlobalOptions } from './common.js';
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
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a backup into a new database (--target-database) or over the configured one (--in-place)')
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
    .action(async (backup: string, options: RestoreOptions, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
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
