/**
 * Helpers that the benchmarks share: logging to stderr, removal of everything they
 * created, the interrupt handling of their main function, and timed runs of
 * one program with its memory and CPU sampled.
 */
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { runProcess, startProcess } from '../src/util/process.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startThrowawayCluster, type ClusterOptions, type ThrowawayCluster } from '../src/postgres/cluster.js';
import type { LogEvent, MachineFacts, StepResult } from './bench-report.js';
import { withClient } from './bench-data.js';
import { machineBusyTicks, ProcessTreeSampler, treeCpuTicks } from './bench-sampler.js';
import { formatSeconds } from './bench-report.js';

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Removes what the benchmark created, newest first, even when some removals fail. */
export class Cleanup {
  private readonly tasks: { label: string; run: () => Promise<unknown> }[] = [];

  add(label: string, run: () => Promise<unknown>): void {
    this.tasks.push({ label, run });
  }

  async runAll(): Promise<void> {
    // Tasks leave the list as they start, so describe() names only what is left.
    for (let task = this.tasks.pop(); task; task = this.tasks.pop()) {
      const label = task.label;
      await task.run().catch((err: unknown) => log(`cleanup failed: ${label}: ${(err as Error).message}`));
    }
  }

  /** Lists what has not been removed yet. */
  describe(): string {
    return this.tasks.map((t) => t.label).join(', ');
  }
}

/**
 * Runs a benchmark body and prints the report it returns. Exit status: 0
 * when every step ran, 1 when one failed, 130 when interrupted. A first
 * SIGINT or SIGTERM aborts the body and cleans up, and a second one exits at
 * once. Cleanup runs in every case.
 */
export async function runBenchMain(body: (cleanup: Cleanup, signal: AbortSignal) => Promise<string>): Promise<number> {
  const controller = new AbortController();
  const cleanup = new Cleanup();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log(`${name} received again: exiting without cleanup, left behind: ${cleanup.describe() || 'nothing'}`);
      process.exit(130);
    }
    log(`${name} received: stopping and cleaning up (send it again to exit at once)`);
    controller.abort(new Error(`${name} received`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    process.stdout.write(await body(cleanup, controller.signal));
    return 0;
  } catch (err) {
    if (controller.signal.aborted) {
      log('interrupted');
      return 130;
    }
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanup.runAll();
  }
}

/** The server that a timed run checkpoints and measures, and the abort signal. */
export interface RunContext {
  cluster: ThrowawayCluster;
  postmasterPid: number;
  clockTicks: number;
  signal: AbortSignal;
}

export interface RunOptions {
  label: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user and group, such as `postgres` for programs that must own the files they write. */
  uid?: number;
  gid?: number;
}

/**
 * Runs one program to completion with a CHECKPOINT before it, so no step
 * pays for writing out what the previous one left dirty. Samples the memory
 * and CPU of the process and its descendants, and the server's CPU.
 */
export async function timedRun(context: RunContext, program: string, args: string[], options: RunOptions): Promise<StepResult & { stdout: string }> {
  await withClient(context.cluster.url(), (client) => client.query('CHECKPOINT'));
  log(`running ${options.label}`);
  const serverTicksBefore = treeCpuTicks(context.postmasterPid);
  const machineTicksBefore = machineBusyTicks();
  const started = performance.now();
  const running = startProcess(program, args, { env: options.env, signal: context.signal, operation: options.label, uid: options.uid, gid: options.gid });
  const sampler = new ProcessTreeSampler(running.child.pid!, context.clockTicks).start();
  let stdout = '';
  running.stdout.setEncoding('utf8');
  running.stdout.on('data', (chunk: string) => {
    stdout += chunk;
  });
  const logEvents = collectLogEvents(running.child.stderr!, Date.now());
  let usage;
  try {
    await running.done;
  } finally {
    usage = sampler.stop();
  }
  const durationMs = performance.now() - started;
  const serverCpuSeconds = (treeCpuTicks(context.postmasterPid) - serverTicksBefore) / context.clockTicks;
  const machineCpuSeconds = (machineBusyTicks() - machineTicksBefore) / context.clockTicks;
  const stepCpuSeconds = usage.root.cpuSeconds + usage.descendants.reduce((total, child) => total + child.cpuSeconds, 0);
  const otherCpuSeconds = Math.max(0, machineCpuSeconds - stepCpuSeconds - serverCpuSeconds);
  log(`${options.label}: ${formatSeconds(durationMs)}`);
  return { label: options.label, durationMs, usage, serverCpuSeconds, otherCpuSeconds, logEvents, stdout };
}

/**
 * Collects the messages of drplan's JSON log lines (pino's `msg` and `time`
 * in epoch milliseconds) with their time since `startedAt`, which shows how
 * long each phase of a backup or restore took. Other lines are ignored.
 */
function collectLogEvents(stderr: NodeJS.ReadableStream, startedAt: number): LogEvent[] {
  const events: LogEvent[] = [];
  let partial = '';
  // startProcess has already set the encoding, so chunks are strings.
  stderr.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { msg?: unknown; time?: unknown };
        if (typeof entry.msg === 'string' && typeof entry.time === 'number') events.push({ message: entry.msg, atMs: entry.time - startedAt });
      } catch {
        // Not a log line after all.
      }
    }
  });
  return events;
}

/** Reads the machine and software versions that the report names. */
/** The benchmark's cluster, with what the CPU sampling needs. */
export interface BenchCluster {
  cluster: ThrowawayCluster;
  postmasterPid: number;
  clockTicks: number;
}

/** Starts the benchmark's throwaway cluster, registered for cleanup and stopped at once on an interrupt. */
export async function startBenchCluster(options: ClusterOptions, cleanup: Cleanup, signal: AbortSignal): Promise<BenchCluster> {
  const cluster = await startThrowawayCluster({ ...options, signal });
  cleanup.add(`cluster in ${cluster.dataDir}`, () => cluster.stop());
  // Stopping the server at once ends every running query, so an interrupt
  // does not wait for a long INSERT or index build to finish.
  const stopOnAbort = () => void cluster.stop().catch(() => undefined);
  if (signal.aborted) stopOnAbort();
  signal.addEventListener('abort', stopOnAbort, { once: true });

  const postmasterPid = Number((await readFile(join(cluster.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const clockTicks = Number((await runProcess('getconf', ['CLK_TCK'], { operation: 'read the clock tick rate', signal })).trim());
  return { cluster, postmasterPid, clockTicks };
}

export async function machineFacts(cluster: ThrowawayCluster, signal: AbortSignal): Promise<MachineFacts> {
  const postgres = await withClient(cluster.url(), async (client) => (await client.query<{ version: string }>('SELECT version()')).rows[0]!.version);
  const zstd = await runProcess('zstd', ['--version'], { operation: 'read the zstd version', signal });
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    postgres: postgres.split(' on ')[0]!,
    zstd: /v\d+\.\d+\.\d+/.exec(zstd)?.[0] ?? zstd.trim(),
    platform: `Linux ${release()}`,
  };
}
