/** `drplan list`: every committed backup on every repository, newest first. */
import type { Command } from 'commander';
import { lastVerificationOf, readCatalog } from '../backup/catalog.js';
import { NotFoundError, StorageError } from '../errors.js';
import { formatBytes, formatDuration, loadContext, printJson, type GlobalOptions } from './common.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list committed backups from the repositories themselves (no local catalog)')
    .option('--database <name>', 'only backups of this database')
    .option('--json', 'print a JSON array')
    .action(async (options: { database?: string; json?: boolean }, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const catalog = await readCatalog(context, options.database);
      const known = options.database === undefined || context.plan.databases.some((d) => d.name === options.database) || catalog.entries.length > 0;
      if (!known) {
        throw new NotFoundError(`database ${JSON.stringify(options.database)} is not in the plan and has no backups`, {
          code: 'plan.database',
          object: options.database,
          hint: `Known databases: ${context.plan.databases.map((d) => d.name).join(', ')}.`,
        });
      }
      const rows = catalog.entries.map((entry) => ({
        id: entry.id,
        database: entry.database,
        kind: entry.meta.kind,
        origin: entry.meta.origin,
        finishedAt: entry.meta.finishedAt,
        storedBytes: entry.meta.storedBytes,
        rawBytes: entry.meta.rawBytes,
        repositories: entry.copies.map((c) => c.storage.name),
        flags: entry.meta.flags ?? [],
        lastVerification: summarizeVerification(entry),
      }));
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

function summarizeVerification(entry: Parameters<typeof lastVerificationOf>[0]) {
  const record = lastVerificationOf(entry);
  if (!record) return null;
  return { kind: record.kind, ok: record.ok, finishedAt: record.finishedAt, restoreMs: record.restoreMs ?? null };
}

function verificationText(v: ReturnType<typeof summarizeVerification>): string {
  if (!v) return 'never';
  const restore = v.restoreMs !== null ? ` ${formatDuration(v.restoreMs)}` : '';
  return `${v.ok ? 'passed' : 'FAILED'} ${v.kind}${restore} ${v.finishedAt.slice(0, 16).replace('T', ' ')}`;
}

function printTable(
  rows: { id: string; database: string; kind: string; finishedAt: string; storedBytes: number; repositories: string[]; flags: { code: string }[]; lastVerification: ReturnType<typeof summarizeVerification> }[],
): void {
  if (rows.length === 0) {
    process.stdout.write('no backups\n');
    return;
  }
  const lines = [['ID', 'DATABASE', 'KIND', 'FINISHED (UTC)', 'SIZE', 'REPOSITORIES', 'LAST VERIFICATION', 'FLAGS']];
  for (const row of rows) {
    const flags = row.flags.map((f) => f.code).join(',');
    lines.push([row.id, row.database, row.kind, row.finishedAt.replace('T', ' ').slice(0, 19), formatBytes(row.storedBytes), row.repositories.join(','), verificationText(row.lastVerification), flags]);
  }
  const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  for (const line of lines) process.stdout.write(`${line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
}
