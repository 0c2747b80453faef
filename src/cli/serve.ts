/** `drplan serve`: the scheduler and HTTP API, or with --once one job in the foreground. */
import type { Command } from 'commander';
import { ExitCode } from '../errors.js';
import { runOnce, startDaemon } from '../serve/daemon.js';
import { interruptSignal, loadContext, reportError, type GlobalOptions } from './common.js';

interface ServeOptions {
  listen?: string;
  once?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the jobs of the plan on their schedules and serve /health, /ready, /metrics and /api; stops cleanly on SIGTERM or SIGINT')
    .option('--listen <host:port>', 'address of the HTTP API (default: server.listen of the plan, else 127.0.0.1:9187)')
    .option('--once <job>', 'run this job once in the foreground and exit with its exit code (for cron)')
    .action(async (options: ServeOptions, command: Command) => {
      const context = await loadContext(command.optsWithGlobals<GlobalOptions>());
      if (options.once !== undefined) return serveOnce(context, options.once);
      const daemon = await startDaemon(context, options.listen ?? context.plan.server.listen);
      await untilStopSignal(daemon);
    });
}

async function serveOnce(context: Awaited<ReturnType<typeof loadContext>>, job: string): Promise<void> {
  const end = await runOnce(context, job, interruptSignal());
  if (end.run.result === 'succeeded') {
    process.stderr.write(`job ${job} succeeded: ${end.run.summary}\n`);
    return;
  }
  // The run's error carries the hint and the exit code of its class.
  throw end.error;
}

/**
 * Resolves once the daemon has stopped after SIGTERM or SIGINT. A second
 * signal aborts running jobs at once instead of waiting for the timeout. The
 * exit code stays 0, because the aborted jobs still clean up before exit.
 */
function untilStopSignal(daemon: Awaited<ReturnType<typeof startDaemon>>): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const onSignal = (name: NodeJS.Signals) => {
      received += 1;
      if (received === 1) {
        process.stderr.write(`${name} received: finishing running jobs, then stopping\n`);
        daemon.stop().then(resolve, reject);
      } else {
        process.stderr.write(`${name} received again: aborting running jobs\n`);
        daemon.abortNow().catch((err: unknown) => process.exit(reportError(err) || ExitCode.unexpected));
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
