/** `drplan init`: write the commented example plan. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { resolveConfigPath } from '../config/load.js';
import { REFERENCE_PLAN } from '../config/reference-plan.js';
import { UsageError } from '../errors.js';
import type { GlobalOptions } from './common.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a commented example plan (drplan.yaml)')
    .option('--force', 'overwrite an existing file')
    .action(async (options: { force?: boolean }, command: Command) => {
      const file = resolveConfigPath(command.optsWithGlobals<GlobalOptions>().config);
      try {
        await writeFile(file, REFERENCE_PLAN, { flag: options.force ? 'w' : 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        throw new UsageError(`${file} already exists`, { code: 'init.exists', object: file, hint: 'Pass --force to overwrite it, or --config to write elsewhere.' });
      }
      process.stdout.write(`wrote ${file}\n`);
    });
}
