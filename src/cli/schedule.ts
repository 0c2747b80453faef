/** `drplan schedule install`: a systemd unit for `drplan serve`, or crontab lines for each job. */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadPlan, resolveConfigPath } from '../config/load.js';
import { UsageError } from '../errors.js';
import { crontabLines, systemdUnit, type InstallPaths } from '../serve/install.js';
import type { GlobalOptions } from './common.js';

interface InstallOptions {
  systemd?: boolean;
  cron?: boolean;
  output?: string;
  force?: boolean;
  user?: string;
}

export function registerSchedule(program: Command): void {
  const schedule = program.command('schedule').description('run the jobs of the plan from systemd or cron');
  schedule
    .command('install')
    .description('print (or write with --output) a systemd unit for `drplan serve`, or crontab lines running each job with `drplan serve --once`')
    .option('--systemd', 'a systemd service unit')
    .option('--cron', 'crontab lines, one per job')
    .option('--output <file>', 'write to this file instead of stdout; an existing file is kept unless --force is given')
    .option('--force', 'with --output, replace an existing file')
    .option('--user <name>', 'account the systemd unit runs as (default: root)')
    .action(async (options: InstallOptions, command: Command) => {
      if (options.systemd === options.cron) {
        throw new UsageError('choose exactly one of --systemd and --cron', { code: 'usage.schedule', hint: 'For example `drplan schedule install --systemd --output /etc/systemd/system/drplan.service`.' });
      }
      const global = command.optsWithGlobals<GlobalOptions>();
      const config = resolveConfigPath(global.config);
      const plan = await loadPlan(config, process.env, { deferDatabaseVariables: true });
      const paths: InstallPaths = { node: process.execPath, drplan: fileURLToPath(new URL('../../../bin/drplan.js', import.meta.url)), config };
      const text = options.systemd ? systemdUnit(plan, paths, options.user) : crontabLines(plan, paths);
      if (options.output === undefined) return void process.stdout.write(text);
      await writeOutput(options.output, text, options.force === true);
      process.stderr.write(`wrote ${options.output}\n`);
    });
}

/** Writes the file, raising a UsageError instead of replacing an existing one unless `force` is set. */
async function writeOutput(file: string, text: string, force: boolean): Promise<void> {
  try {
    await writeFile(file, text, { flag: force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new UsageError(`${file} already exists; drplan schedule install does not replace it`, {
      code: 'usage.output',
      object: file,
      hint: 'Compare it with the output of the same command without --output, then add --force to replace it.',
    });
  }
}
