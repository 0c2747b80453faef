/**
 * Helpers shared by every subcommand: loading the plan, the interrupt signal,
 * output and the mapping from errors to messages and exit codes.
 */
import { loadPlan, resolveConfigPath } from '../config/load.js';
import type { Plan } from '../config/schema.js';
import { createContext, type PlanContext } from '../context.js';
import { DrplanError, ExitCode, exitCodeOf, UsageError } from '../errors.js';
import { createLogger, type Logger } from '../logging.js';

export interface GlobalOptions {
  config?: string;
  logLevel?: string;
}

let rootLogger: Logger | undefined;

/** Returns the process-wide logger, created on first use with the `--log-level` given. */
export function logger(options: GlobalOptions = {}): Logger {
  rootLogger ??= createLogger(options.logLevel);
  return rootLogger;
}

/**
 * Loads the plan named by `--config`/`DRPLAN_CONFIG` and opens its
 * repositories. Commands that never connect to the plan's databases pass
 * `repositoriesOnly`, so an unset password variable does not stop them.
 */
export async function loadContext(options: GlobalOptions, use: { repositoriesOnly?: boolean } = {}): Promise<PlanContext> {
  const plan = await loadPlan(resolveConfigPath(options.config), process.env, { deferDatabaseVariables: use.repositoriesOnly });
  return createContext(plan, logger(options));
}

/** Loads the plan without opening its repositories or resolving database passwords. */
export async function loadPlanOnly(options: GlobalOptions): Promise<Plan> {
  return loadPlan(resolveConfigPath(options.config), process.env, { deferDatabaseVariables: true });
}

/**
 * Returns an abort signal fired by the first SIGINT or SIGTERM, so that running
 * children are stopped and partial objects removed before exit. A second
 * signal exits at once.
 */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(ExitCode.interrupted);
    process.stderr.write(`\n${name} received: stopping and cleaning up\n`);
    // A stopped step that never settles lets Node exit when nothing is left
    // to run. The exit code must then report an interrupt, never success.
    process.exitCode = ExitCode.interrupted;
    controller.abort(new Error(`${name} received`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Writes one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints an error and its hint on stderr and returns the exit code for it. */
export function reportError(error: unknown): number {
  if (error instanceof DrplanError) {
    // Recovery requests files past the end of the archive on purpose (the next
    // timeline's history, the next segment); that answer lands in the server
    // log on every restore and must not read as a failure there.
    const expected = error.code === 'wal.missing';
    process.stderr.write(expected ? `drplan: ${error.message}\n` : `drplan: error: ${error.message}\n`);
    if (error.hint) process.stderr.write(`hint: ${error.hint}\n`);
  } else {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`drplan: unexpected error: ${message}\n`);
  }
  return exitCodeOf(error);
}

/** Parses a positive integer option such as `--jobs`. */
export function positiveInt(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1) {
      throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`, { code: 'usage.number', object: flag });
    }
    return parsed;
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}
