/**
 * `drplan wal push|fetch|status`: PostgreSQL's archive_command and
 * restore_command, and the state of the archive. PostgreSQL starts push once
 * per WAL file, so the library loads only when a subcommand runs.
 */
import type { Command } from 'commander';
import path from 'node:path';
import { resolveConfigPath } from '../config/load.js';
import { createContext, selectDatabase } from '../context.js';
import { DrplanError, ExitCode, NotFoundError, RecoveryAbortError, UsageError } from '../errors.js';
import { withRepositoryPrefix } from '../storage/storage.js';
import type { WalAnalysis } from '../wal/analyze.js';
import { interruptSignal, loadContext, loadPlanOnly, logger, printJson, type GlobalOptions } from './common.js';

export function registerWal(program: Command): void {
  const wal = program.command('wal').description('continuous WAL archiving for point-in-time recovery');

  wal
    .command('push')
    .description('archive one WAL file on every repository (archive_command: drplan wal push --database NAME %p); exits 0 only when every repository has stored it')
    .requiredOption('--database <name>', 'database of the plan whose server produced the file')
    .option('--drain', 'upload the files queued in the spool directory (asynchronous mode), then exit')
    .argument('[path]', 'the WAL file, relative to the data directory (%p)')
    .action(async (file: string | undefined, options: { database: string; drain?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const plan = await loadPlanOnly(globals);
      const database = selectDatabase(plan, options.database).name;
      if (plan.wal.async && !options.drain && file !== undefined) {
        // Queuing opens no repository, so an S3 repository's SDK is not even loaded.
        const { spoolWalFile } = await import('../wal/spool.js');
        const { walSourceName } = await import('../wal/push.js');
        await spoolWalFile({ plan, log: logger(globals) }, database, path.resolve(file), await walSourceName(file), uploaderCommand(globals, database));
        return;
      }
      const context = await createContext(plan, logger(globals));
      if (options.drain) {
        const { drainSpool } = await import('../wal/spool.js');
        await drainSpool(context, database, interruptSignal());
        return;
      }
      if (file === undefined) {
        throw new UsageError('wal push needs the path of the WAL file, or --drain', { code: 'usage.wal_path', hint: "In postgresql.conf: archive_command = 'drplan wal push --database NAME %p'." });
      }
      const { readWalFile } = await import('../wal/push.js');
      const { fileName, bytes } = await readWalFile(file);
      const { archiveWalFile } = await import('../wal/archive.js');
      await archiveWalFile(context, database, fileName, bytes);
    });

  wal
    .command('fetch')
    .description('restore one archived WAL file (restore_command: drplan wal fetch --database NAME %f %p); exits 5 when no repository has it')
    .requiredOption('--database <name>', 'database of the plan whose archive to read')
    .option(
      '--abort-on-error',
      `exit ${ExitCode.recoveryAbort} instead of 2, 3 or 4 on any failure other than a missing file, so that PostgreSQL aborts recovery rather than ending it early and promoting (restore_command of drplan restore --pitr)`,
    )
    .argument('<file>', 'WAL file name (%f)')
    .argument('<destination>', 'where to write it, relative to the data directory (%p)')
    .action(async (file: string, destination: string, options: { database: string; abortOnError?: boolean }, command: Command) => {
      try {
        const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
        const database = selectDatabase(context.plan, options.database).name;
        const { fetchWalFile } = await import('../wal/fetch.js');
        await fetchWalFile(context, database, file, destination);
      } catch (error) {
        if (!options.abortOnError || error instanceof NotFoundError) throw error;
        throw abortRecovery(error);
      }
    });

  wal
    .command('status')
    .description('archived WAL per timeline, gaps, each base backup\'s chain and the WAL RPO; exits 4 when a gap breaks a chain')
    .option('--database <name>', 'only this database')
    .option('--json', 'print the result as JSON')
    .action(async (options: { database?: string; json?: boolean }, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const databases = options.database ? [selectDatabase(context.plan, options.database).name] : context.plan.databases.map((d) => d.name);
      const { analyzeWal, assertWalHealthy } = await import('../wal/analyze.js');
      const { readCatalog } = await import('../backup/catalog.js');
      const catalog = await readCatalog(context);
      const results: WalAnalysis[] = [];
      for (const database of databases) results.push(await analyzeWal(context, database, { catalog }));
      if (options.json) printJson(results);
      else for (const result of results) printAnalysis(result);
      assertWalHealthy(results);
    });
}

/**
 * Wraps a fetch failure so that drplan exits with ExitCode.recoveryAbort.
 * PostgreSQL 15 (RestoreArchivedFile in xlogarchive.c) treats a
 * restore_command exit status above 125 as fatal and stops the server, where
 * any lower non-zero status means "not in the archive": recovery would then
 * end at the segment before and promote, losing every later commit.
 */
function abortRecovery(error: unknown): RecoveryAbortError {
  const message = error instanceof Error ? error.message : String(error);
  return new RecoveryAbortError(`${message}; recovery is aborted rather than ended at this point`, {
    code: error instanceof DrplanError ? error.code : 'wal.fetch_failed',
    object: error instanceof DrplanError ? error.object : undefined,
    hint: error instanceof DrplanError ? error.hint : undefined,
    cause: error,
  });
}

/** Returns the command line of the background uploader for one database. */
function uploaderCommand(globals: GlobalOptions, database: string) {
  const args = [path.resolve(process.argv[1]!), '--config', path.resolve(resolveConfigPath(globals.config))];
  if (globals.logLevel) args.push('--log-level', globals.logLevel);
  args.push('wal', 'push', '--database', database, '--drain');
  return { program: process.execPath, args };
}

function printAnalysis(result: WalAnalysis): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`database ${result.database}: ${result.files} archived WAL files`);
  for (const t of result.timelines) {
    out(`  timeline ${t.timeline}: ${t.first} to ${t.last} (${t.segments} segments)`);
    for (const gap of t.gaps) out(`    gap: ${gapText(gap)}`);
  }
  if (result.newest) out(`  newest: ${result.newest.name} archived ${result.newest.archivedAt} (WAL RPO ${result.rpoSeconds} s)`);
  else out('  no segment archived yet');
  if (result.chains.length === 0) out('  no physical base backup');
  for (const chain of result.chains) {
    const state = chain.ok ? 'continuous' : `BROKEN, missing ${chain.gaps.map(gapText).join(', ')}`;
    out(`  base backup ${chain.backupId}: ${chain.firstSegment} to ${chain.until} on timelines ${chain.timelines.join(', ')}: ${state}`);
  }
  for (const problem of result.problems) out(`  ${withRepositoryPrefix(problem.repository, problem.error)}`);
  for (const gap of result.repositoryGaps) out(`  warning: repository ${gap.repository} lacks ${gapText(gap)}, which another repository holds`);
}

function gapText(gap: { first: string; last: string; count: number }): string {
  return gap.count === 1 ? gap.first : `${gap.first} to ${gap.last} (${gap.count} segments)`;
}
