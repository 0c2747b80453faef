/** `drplan prune`: apply retention rules on every repository. */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { runPrune, type PruneReport } from '../retention/prune.js';
import { withRepositoryPrefix } from '../storage/storage.js';
import { formatBytes, interruptSignal, loadContext, printJson, type GlobalOptions } from './common.js';

interface PruneOptions {
  dryRun?: boolean;
  json?: boolean;
  now?: string;
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('delete backups that the retention rules of each repository no longer keep, and partial objects')
    .option('--dry-run', 'print what would be deleted and by which rule, and delete nothing')
    .option('--json', 'print the decisions as JSON')
    .option('--now <time>', 'evaluate the rules as of this ISO 8601 time instead of now (for what-if runs)')
    .action(async (options: PruneOptions, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const report = await runPrune(context, { dryRun: options.dryRun ?? false, now: parseNow(options.now), signal: interruptSignal() });
      if (options.json) printJson(report);
      else printReport(report);
      for (const repo of report.repositories) {
        for (const warning of repo.warnings) process.stderr.write(`warning: ${withRepositoryPrefix(repo.repository, warning)}\n`);
      }
    });
}

function parseNow(value: string | undefined): Date {
  if (value === undefined) return new Date();
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime()) || !/(Z|[+-]\d\d:?\d\d)$/.test(value)) {
    throw new UsageError(`--now must be an ISO 8601 time with a time zone, got ${JSON.stringify(value)}`, { code: 'usage.now', hint: 'For example --now 2026-12-04T02:00:00Z.' });
  }
  return parsed;
}

function printReport(report: PruneReport): void {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  for (const repo of report.repositories) {
    const deleted = repo.decisions.filter((d) => d.delete);
    const inGrace = repo.partialsInGrace.length > 0 ? `; kept ${repo.partialsInGrace.length} partial objects within retention.partialGrace` : '';
    process.stdout.write(`repository ${repo.repository}: ${verb} ${deleted.length} of ${repo.decisions.length} backups, ${repo.partials.length} partial objects${inGrace}\n`);
    for (const d of repo.decisions) {
      const subject = d.fileset ? `file set ${d.database}` : d.database;
      process.stdout.write(`  ${d.delete ? (report.dryRun ? 'would delete' : 'deleted') : 'keep'} ${subject}/${d.id} (${d.kind}, ${d.class}): ${d.rule}\n`);
    }
    for (const p of repo.partials) process.stdout.write(`  ${verb} partial object ${p.key} (${formatBytes(p.size)}, modified ${p.modified})\n`);
    for (const p of repo.partialsInGrace) {
      process.stdout.write(`  keep partial object ${p.key} (${formatBytes(p.size)}, modified ${p.modified}): within retention.partialGrace, removable after ${p.removableAt}\n`);
    }
    for (const w of repo.incomplete) process.stdout.write(`  ${report.dryRun ? 'would remove' : 'removed'} incomplete write ${w.key} (started ${w.started})\n`);
    for (const w of repo.wal.filter((item) => item.files > 0)) {
      process.stdout.write(`  ${verb} ${w.files} archived WAL files of ${w.database} before ${w.keepFrom} (${formatBytes(w.bytes)})\n`);
    }
  }
}
