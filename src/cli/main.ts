/**
 * The drplan command line: a thin layer that parses arguments and calls the
 * library, one file per command.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode } from '../errors.js';
import { DRPLAN_VERSION } from '../version.js';
import { registerBackup } from './backup.js';
import { reportError } from './common.js';
import { registerInit } from './init.js';
import { registerList } from './list.js';
import { registerPrune } from './prune.js';
import { registerRepo } from './repo.js';
import { registerStatus } from './status.js';
import { registerRestore } from './restore.js';
import { registerVerify } from './verify.js';
import { registerWal } from './wal.js';

export function buildProgram(): Command {
  const program = new Command('drplan')
    .description('disaster recovery for PostgreSQL-backed services')
    .version(DRPLAN_VERSION)
    .option('-c, --config <file>', 'plan file (default: $DRPLAN_CONFIG, else ./drplan.yaml)')
    .option('--log-level <level>', 'log level: fatal, error, warn, info, debug, trace (default: $DRPLAN_LOG_LEVEL, else info)')
    .exitOverride()
    .showHelpAfterError();
  registerInit(program);
  registerBackup(program);
  registerList(program);
  registerVerify(program);
  registerRestore(program);
  registerPrune(program);
  registerStatus(program);
  registerRepo(program);
  registerWal(program);
  return program;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // `drplan list | head` closes stdout early; that ends the output, not the program with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    await buildProgram().parseAsync(argv);
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return ExitCode.ok;
      return ExitCode.usage;
    }
    return reportError(error);
  }
}
