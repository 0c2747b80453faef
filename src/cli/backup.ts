/** `drplan backup`: take a logical or physical backup of one database, or a backup of one file set, to every repository. */
import type { Command } from 'commander';
import { runFilesBackup } from '../backup/files-backup.js';
import { runLogicalBackup } from '../backup/logical-backup.js';
import { runPhysicalBackup } from '../backup/physical-backup.js';
import { selectDatabase, type PlanContext } from '../context.js';
import { UsageError } from '../errors.js';
import { formatBytes, formatDuration, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';
import { startProgress } from './progress.js';

interface BackupOptions {
  kind: string;
  database?: string;
  files?: string;
  label?: string;
  name?: string;
  json?: boolean;
}

const KINDS = ['logical', 'physical'];

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('take a backup and store it on every repository: logical (pg_dump, custom format), physical (pg_basebackup of the whole cluster) or, with --files, a tar archive of a file set')
    .option('--kind <kind>', 'logical: pg_dump of one database; physical: base backup of its whole cluster, for point-in-time recovery with the archived WAL', 'logical')
    .option('--database <name>', 'database from the plan (required when the plan has several)')
    .option('--files <name>', 'back up this file set of the plan (`files:`) instead of a database')
    .option('--label <label>', 'a tag recorded in the metadata of a file-set backup, for example deploy-1234')
    .option('--name <name>', 'a chosen backup name, for example emergency_backup_20261204_031500 (default: backup_YYYYMMDD_HHMMSS, or files_YYYYMMDD_HHMMSS for a file set, UTC)')
    .option('--json', 'print the committed metadata as one JSON object')
    .action(async (options: BackupOptions, command: Command) => {
      checkOptions(options);
      // A file-set backup never connects to a database, so an unset password variable must not stop it.
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: options.files !== undefined });
      if (options.files !== undefined) return backupFiles(context, options.files, options);
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

function checkOptions(options: BackupOptions): void {
  if (!KINDS.includes(options.kind)) {
    throw new UsageError(`invalid --kind ${JSON.stringify(options.kind)}`, { code: 'usage.kind', object: options.kind, hint: 'Use --kind logical or --kind physical.' });
  }
  if (options.files !== undefined && options.kind !== 'logical') {
    throw new UsageError('--kind applies to database backups, not to --files', {
      code: 'usage.backup',
      hint: 'Drop --kind for a file-set backup.',
    });
  }
  if (options.files !== undefined && options.database !== undefined) {
    throw new UsageError('--files and --database cannot be used together', {
      code: 'usage.backup',
      hint: 'Run one backup with --database NAME and another with --files NAME.',
    });
  }
  if (options.label !== undefined && options.files === undefined) {
    throw new UsageError('--label is recorded for file-set backups only', {
      code: 'usage.backup',
      hint: 'Add --files NAME, or drop --label for a database backup.',
    });
  }
}

async function backupFiles(context: PlanContext, fileset: string, options: BackupOptions): Promise<void> {
  const meta = await runFilesBackup(context, { fileset, label: options.label, name: options.name, signal: interruptSignal() });
  if (options.json) return printJson(meta);
  process.stdout.write(`${meta.id}\n`);
  process.stderr.write(
    `committed ${meta.id}: ${meta.fileCount} files, ${formatBytes(meta.fileBytes)} archived, ${formatBytes(meta.storedBytes)} stored on ${meta.repositories.join(', ')} in ${formatDuration(meta.durationMs)}\n`,
  );
}
