/** `drplan list`: every committed backup on every repository, newest first. */
import type { Command } from 'commander';
import { readCatalog } from '../backup/catalog.js';
import { backupRows, type BackupRow, type VerificationSummary } from '../backup/listing.js';
import { NotFoundError, StorageError, UsageError } from '../errors.js';
import { formatBytes, formatDuration, loadContext, printJson, type GlobalOptions } from './common.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list committed backups from the repositories themselves (no local catalog)')
    .option('--database <name>', 'only backups of this database')
    .option('--files <name>', 'only backups of this file set')
    .option('--json', 'print a JSON array')
    .action(async (options: { database?: string; files?: string; json?: boolean }, command: Command) => {
      if (options.database !== undefined && options.files !== undefined) {
        throw new UsageError('--files and --database cannot be used together', { code: 'usage.list', hint: 'Run `drplan list` without either to see everything.' });
      }
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const catalog = await readCatalog(context, options.files !== undefined ? { fileset: options.files } : options.database);
      if (options.files !== undefined && !(context.plan.files ?? []).some((f) => f.name === options.files) && catalog.entries.length === 0) {
        throw new NotFoundError(`file set ${JSON.stringify(options.files)} is not in the plan and has no backups`, {
          code: 'plan.fileset',
          object: options.files,
          hint: `Known file sets: ${(context.plan.files ?? []).map((f) => f.name).join(', ') || 'none'}.`,
        });
      }
      const known = options.database === undefined || context.plan.databases.some((d) => d.name === options.database) || catalog.entries.length > 0;
      if (!known) {
        throw new NotFoundError(`database ${JSON.stringify(options.database)} is not in the plan and has no backups`, {
          code: 'plan.database',
          object: options.database,
          hint: `Known databases: ${context.plan.databases.map((d) => d.name).join(', ')}.`,
        });
      }
      const rows = backupRows(catalog);
      if (options.json) printJson(rows);
      else printTable(rows);
      for (const problem of catalog.problems) process.stderr.write(`warning: ${problem.error.message}\n`);
      if (catalog.problems.length > 0) {
        throw new StorageError(`${catalog.problems.length} repository problem(s) while listing; the list above may be incomplete`, {
          code: 'list.incomplete',
          hint: 'Fix the repositories named above, then run `drplan list` again.',
        });
      }
    });
}

function verificationText(v: VerificationSummary | null): string {
  if (!v) return 'never';
  const restore = v.restoreMs !== null ? ` ${formatDuration(v.restoreMs)}` : '';
  return `${v.ok ? 'passed' : 'FAILED'} ${v.kind}${restore} ${v.finishedAt.slice(0, 16).replace('T', ' ')}`;
}

function printTable(rows: BackupRow[]): void {
  if (rows.length === 0) {
    process.stdout.write('no backups\n');
    return;
  }
  // For a file-set backup DATABASE contains the file set's name, and KIND distinguishes the two.
  const lines = [['ID', 'KIND', 'DATABASE', 'FINISHED (UTC)', 'SIZE', 'REPOSITORIES', 'LAST VERIFICATION', 'FLAGS']];
  for (const row of rows) {
    const flags = row.flags.map((f) => f.code).join(',');
    lines.push([row.id, row.kind, row.label ? `${row.database} (${row.label})` : row.database, row.finishedAt.replace('T', ' ').slice(0, 19), formatBytes(row.storedBytes), row.repositories.join(','), verificationText(row.lastVerification), flags]);
  }
  const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  for (const line of lines) process.stdout.write(`${line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
}
