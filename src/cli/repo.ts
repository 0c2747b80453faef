/** `drplan repo check`: audit the repositories. */
import type { Command } from 'commander';
import { IntegrityError } from '../errors.js';
import { checkRepositories } from '../repository/check.js';
import { loadContext, printJson, type GlobalOptions } from './common.js';

export function registerRepo(program: Command): void {
  const repo = program.command('repo').description('repository maintenance');
  repo
    .command('check')
    .description(
      'list metadata without objects, objects without metadata, size mismatches, unreadable metadata, and archived WAL files without checksum object, with a size other than their checksum object records, or missing (one repository, or a gap that breaks a base backup chain); exits 4 on any problem',
    )
    .option('--json', 'print the problems as JSON')
    .option('--wal-content', 'also download, decompress and hash every archived WAL file against its checksum object (reads the whole archive)')
    .action(async (options: { json?: boolean; walContent?: boolean }, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>(), { repositoriesOnly: true });
      const problems = await checkRepositories(context, { content: options.walContent === true });
      if (options.json) printJson(problems);
      else if (problems.length === 0) process.stdout.write(`all ${context.storages.length} repositories are consistent\n`);
      else for (const p of problems) process.stdout.write(`${p.repository}: ${p.kind}: ${p.key}: ${p.detail}\n`);
      if (problems.length > 0) {
        throw new IntegrityError(`${problems.length} repository problem(s) found`, {
          code: 'repo.inconsistent',
          hint: '`drplan prune` removes partial objects older than the grace period; a missing or resized object means that backup cannot be trusted, and a WAL gap or damaged WAL file limits point-in-time recovery to before it.',
        });
      }
    });
}
