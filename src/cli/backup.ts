/** `drplan backup`: take a logical or physical backup of one database to every repository. */
import type { Command } from 'commander';
import { runLogicalBackup } from '../backup/logical-backup.js';
import { runPhysicalBackup } from '../backup/physical-backup.js';
import { selectDatabase } from '../context.js';
import { UsageError } from '../errors.js';
import { formatBytes, formatDuration, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';
import { startProgress } from './progress.js';

interface BackupOptions {
  kind: string;
  database?: string;
  name?: string;
  json?: boolean;
}

const KINDS = ['logical', 'physical'];

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('take a backup and store it on every repository: logical (pg_dump, custom format) or physical (pg_basebackup of the whole cluster)')
    .option('--kind <kind>', 'logical: pg_dump of one database; physical: base backup of its whole cluster, for point-in-time recovery with the archived WAL', 'logical')
    .option('--database <name>', 'database from the plan (required when the plan has several)')
    .option('--name <name>', 'a chosen backup name, for example emergency_backup_20261204_031500 (default: backup_YYYYMMDD_HHMMSS, UTC)')
    .option('--json', 'print the committed metadata as one JSON object')
    .action(async (options: BackupOptions, command: Command) => {
      if (!KINDS.includes(options.kind)) {
        throw new UsageError(`invalid --kind ${JSON.stringify(options.kind)}`, { code: 'usage.kind', object: options.kind, hint: 'Use --kind logical or --kind physical.' });
      }
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      const database = selectDatabase(context.plan, options.database);
      const progress = startProgress(`${options.kind} backup ${database.name}`);
      const run = options.kind === 'physical' ? runPhysicalBackup : runLogicalBackup;
      const meta = await run(context, { database, name: options.name, signal: interruptSignal(), onProgress: (b) => progress.update(b) }).finally(() => progress.stop());
      if (options.json) return printJson(meta);
      process.stdout.write(`${meta.id}\n`);
      const read = meta.kind === 'physical' ? 'read from the cluster' : 'dumped';
      process.stderr.write(
        `committed ${meta.kind} backup ${meta.id}: ${formatBytes(meta.rawBytes)} ${read}, ${formatBytes(meta.storedBytes)} stored on ${meta.repositories.join(', ')} in ${formatDuration(meta.durationMs)}\n`,
      );
    });
}
