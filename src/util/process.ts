/**
 * Child processes, all started here: never through a shell, with an abort
 * signal, an optional timeout, and stderr kept so that a failure names the
 * program, its exit code and the last lines it printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { AbortedError, ToolError } from '../errors.js';

const STDERR_KEEP_BYTES = 16 * 1024;
const STDERR_TAIL_LINES = 8;

export interface ProcessOptions {
  /** Extra environment variables; passwords go here, never into argv. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  /** Kill the process after this many milliseconds. */
  timeoutMs?: number;
  /** Run as this user id and group id (used to start PostgreSQL as `postgres` when root). */
  uid?: number;
  gid?: number;
  /** Standard input: a stream to pipe, 'pipe' to write `child.stdin` yourself, or 'ignore' (the default). */
  stdin?: NodeJS.ReadableStream | 'ignore' | 'pipe';
  /** The operation drplan was doing, for the error message. */
  operation: string;
}

/** A started child process with its stdout and a promise for its completion. */
export interface RunningProcess {
  child: ChildProcess;
  stdout: NodeJS.ReadableStream;
  /** Resolves when the process exits with status 0; rejects with a ToolError otherwise. */
  done: Promise<void>;
  /** The last part of stderr seen so far. */
  stderrTail(): string;
}

/** Starts `program` with `args` and returns its stdout stream and completion promise. */
export function startProcess(program: string, args: string[], options: ProcessOptions): RunningProcess {
  const child = spawn(program, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: [options.stdin === undefined || options.stdin === 'ignore' ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    // Children stay in drplan's process group, so Ctrl-C on a terminal reaches
    // them too. The abort signal covers a SIGINT sent to drplan alone.
    uid: options.uid,
    gid: options.gid,
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP_BYTES);
  });
  if (options.stdin && options.stdin !== 'ignore' && options.stdin !== 'pipe') {
    // A failed input must end the child's input, or the child waits for more forever.
    options.stdin.once('error', () => child.stdin!.destroy());
    options.stdin.pipe(child.stdin!);
    // The child may exit before it reads all input, for example on an error.
    // Its exit status reports that, so a broken pipe here is not a second error.
    child.stdin!.on('error', () => undefined);
  }
  const stderrTail = () => lastLines(stderr, STDERR_TAIL_LINES);
  const done = waitForExit(child, program, options, stderrTail);
  return { child, stdout: child.stdout!, done, stderrTail };
}

/** Runs a program to completion and returns its stdout as text. */
export async function runProcess(program: string, args: string[], options: ProcessOptions): Promise<string> {
  const running = startProcess(program, args, options);
  let out = '';
  running.stdout.setEncoding('utf8');
  running.stdout.on('data', (chunk: string) => {
    out += chunk;
  });
  await running.done;
  return out;
}

function waitForExit(
  child: ChildProcess,
  program: string,
  options: ProcessOptions,
  stderrTail: () => string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let reason: 'aborted' | 'timeout' | undefined;
    const kill = (cause: 'aborted' | 'timeout') => {
      reason = cause;
      child.kill('SIGTERM');
      // A process that ignores SIGTERM must still not outlive drplan.
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000).unref();
    };
    const onAbort = () => kill('aborted');
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = options.timeoutMs ? setTimeout(() => kill('timeout'), options.timeoutMs) : undefined;

    child.once('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      reject(
        new ToolError(`${options.operation} failed: cannot start ${program}: ${err.message}`, {
          code: 'process.start',
          operation: options.operation,
          object: program,
          hint: err.code === 'ENOENT' ? `Install ${program} or put it on PATH.` : undefined,
          cause: err,
        }),
      );
    });
    child.once('close', (status, signal) => {
      cleanup();
      if (status === 0 && reason === undefined) return resolve();
      if (reason === 'aborted') {
        return reject(new AbortedError(`${options.operation} interrupted; ${program} stopped`, { code: 'process.aborted', operation: options.operation, object: program }));
      }
      let outcome = `exited with status ${status}`;
      if (signal) outcome = `was killed by ${signal}`;
      if (reason === 'timeout') outcome = `timed out after ${options.timeoutMs} ms`;
      const tail = stderrTail();
      reject(
        new ToolError(`${options.operation} failed: ${program} ${outcome}${tail ? `:\n${tail}` : ''}`, {
          code: 'process.failed',
          operation: options.operation,
          object: program,
        }),
      );
    });
    function cleanup() {
      options.signal?.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
    }
  });
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/**
 * Starts `program` in its own session, with stdout and stderr appended to
 * `logFile`, and does not wait for it: it outlives drplan. For background
 * workers such as the WAL uploader, which must keep running after the
 * archive_command that started it has returned.
 */
export function startDetached(program: string, args: string[], options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string }): number | undefined {
  const fd = openSync(options.logFile, 'a', 0o600);
  try {
    const child = spawn(program, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', fd, fd], detached: true });
    // A failed start is reported by the missing pid; the error event must not crash the caller.
    child.once('error', () => undefined);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
