/**
 * Runs the built drplan CLI (`node bin/drplan.js`) the way a user would, as a
 * separate process, so tests see real exit codes, output streams and signals.
 * bin/drplan.js loads the CLI from dist/, which `npm test` builds first.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { startProcess } from '../../src/util/process.js';

/** Repository root: this file is test/helpers/cli.ts. */
export const repoRoot = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const drplanBin = fileURLToPath(new URL('../../bin/drplan.js', import.meta.url));
const DEFAULT_TIMEOUT_MS = 60_000;

export interface CliOptions {
  /** Variables set over process.env. A value of `undefined` removes the variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Text written to standard input. Without it, standard input is /dev/null. */
  input?: string;
  /** Milliseconds after which the process is killed with SIGKILL and the result rejects. Defaults to 60 000. */
  timeoutMs?: number;
}

export interface CliResult {
  /** Exit status, or 128 + the signal number when a signal ended the process (as a shell reports it). */
  code: number;
  /** Signal that ended the process, if any. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartedCli {
  child: ChildProcess;
  result: Promise<CliResult>;
}

/** Runs drplan with `args` to completion. A non-zero exit resolves normally with its code. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).result;
}

/** Starts drplan with `args` and returns the child at once, so a test can signal it while it runs. */
export function startCli(args: string[], options: CliOptions = {}): StartedCli {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const running = startProcess(process.execPath, [drplanBin, ...args], {
    operation: `drplan ${args.join(' ')}`,
    env: options.env,
    cwd: options.cwd,
    stdin: options.input === undefined ? 'ignore' : Readable.from([options.input]),
  });
  const child = running.child;

  let stdout = '';
  let stderr = '';
  running.stdout.setEncoding('utf8');
  running.stdout.on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk: string | Buffer) => {
    stderr += chunk.toString();
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);

  // startProcess rejects on a non-zero exit, but for tests a non-zero exit is a result to check.
  const result = running.done
    .then(
      () => undefined,
      (error: unknown) => error,
    )
    .then((failure): CliResult => {
      clearTimeout(timer);
      const signal = child.signalCode;
      if (timedOut) {
        throw new Error(`drplan ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      }
      if (child.exitCode === null && signal === null) {
        throw new Error(`drplan ${args.join(' ')} failed to start: ${String(failure)}`, { cause: failure });
      }
      const code = child.exitCode ?? 128 + (signal ? constants.signals[signal] : 0);
      return { code, signal, stdout, stderr };
    });
  return { child, result };
}
