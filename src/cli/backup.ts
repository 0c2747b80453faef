/** `drplan backup`: take a logical backup of one database to every repository. */
import type { Command } from 'commander';
import { runLogicalBackup } from '../backup/logical-backup.js';
import { selectDatabase } from '../context.js';
import { formatBytes, formatDuration, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';
import { startProgress } from './progress.js';

interface BackupOptions {
  database?: string;
  name?: string;
  json?: boolean;
}

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('take a logical backup (pg_dump, custom format) and store it on every repository')
    .option('--database <name>', 'database from the plan (required when the plan has several)')
    .option('--name <name>', 'a chosen backup name, for example emergency_backup_20261204_031500 (default: backup_YYYYMMDD_HHMMSS, UTC)')
    .option('--json', 'print the committed metadata as one JSON object')
    .action(async (options: BackupOptions, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      const database = selectDatabase(context.plan, options.database);
      const progress = startProgress(`backup ${database.name}`);
      const meta = await runLogicalBackup(context, { database, name: options.name, signal: interruptSignal(), onProgress: (b) => progress.update(b) }).finally(() =>
        progress.stop(),
      );
      if (options.json) return printJson(meta);
      process.stdout.write(`${meta.id}\n`);
      process.stderr.write(
        `committed ${meta.id}: ${formatBytes(meta.rawBytes)} dumped, ${formatBytes(meta.storedBytes)} stored on ${meta.repositories.join(', ')} in ${formatDuration(meta.durationMs)}\n`,
      );
    });
}
