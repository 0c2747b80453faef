/**
 * The drplan command line: a thin layer that parses arguments and calls the
 * library, one file per command.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode } from '../errors.js';
import { DRPLAN_VERSION } from '../version.js';
import { reportError } from './common.js';

type Register = (program: Command) => void;

/** Every command in help order, each module loaded only when the program is built. */
const COMMANDS: [string, () => Promise<Register>][] = [
  ['init', async () => (await import('./init.js')).registerInit],
  ['backup', async () => (await import('./backup.js')).registerBackup],
  ['list', async () => (await import('./list.js')).registerList],
  ['verify', async () => (await import('./verify.js')).registerVerify],
  ['restore', async () => (await import('./restore.js')).registerRestore],
  ['prune', async () => (await import('./prune.js')).registerPrune],
  ['status', async () => (await import('./status.js')).registerStatus],
  ['repo', async () => (await import('./repo.js')).registerRepo],
  ['wal', async () => (await import('./wal.js')).registerWal],
];

/** Global options that take a value, so the command name is found after them. */
const VALUE_OPTIONS = new Set(['-c', '--config', '--log-level']);

/**
 * Builds the program. With `onlyWal`, only the `wal` command is registered:
 * PostgreSQL starts `wal push` once per WAL segment, and loading the other
 * commands (pg among them) would add to every segment's archiving time.
 */
export async function buildProgram(onlyWal = false): Promise<Command> {
  const program = new Command('drplan')
    .description('disaster recovery for PostgreSQL-backed services')
    .version(DRPLAN_VERSION)
    .option('-c, --config <file>', 'plan file (default: $DRPLAN_CONFIG, else ./drplan.yaml)')
    .option('--log-level <level>', 'log level: fatal, error, warn, info, debug, trace (default: $DRPLAN_LOG_LEVEL, else info)')
    .exitOverride()
    .showHelpAfterError();
  for (const [name, load] of COMMANDS) {
    if (!onlyWal || name === 'wal') (await load())(program);
  }
  return program;
}

/** Returns the first argument that is neither an option nor a global option's value. */
function commandName(argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (VALUE_OPTIONS.has(arg)) i += 1;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // `drplan list | head` closes stdout early; that ends the output, not the program with a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  try {
    await (await buildProgram(commandName(argv) === 'wal')).parseAsync(argv);
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return ExitCode.ok;
      return ExitCode.usage;
    }
    return reportError(error);
  }
}
