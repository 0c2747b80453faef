/**
 * Memory and CPU sampling of running processes from Linux /proc, for the
 * benchmark: the peak resident set size of one process, the same for each of
 * its descendants grouped by program name, and the CPU time of a PostgreSQL
 * server with all its backends.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Peak memory and CPU time of one process. */
export interface ProcessUsage {
  /** VmHWM: the kernel's own high-water mark of the resident set, in bytes. */
  peakRssBytes: number;
  /** The largest VmRSS seen by the sampler, in bytes, which is never above `peakRssBytes`. */
  maxSampledRssBytes: number;
  /** User plus system CPU time in seconds, as of the last sample. */
  cpuSeconds: number;
}

/** Usage of the descendants that ran one program (`comm`), such as all pg_restore workers. */
export interface ProgramUsage {
  program: string;
  processes: number;
  /** The largest VmHWM among these processes, in bytes. */
  peakRssBytes: number;
  /** CPU seconds summed over these processes, as of each one's last sample. */
  cpuSeconds: number;
}

export interface TreeUsage {
  root: ProcessUsage;
  descendants: ProgramUsage[];
  samples: number;
}

interface StatFields {
  comm: string;
  ppid: number;
  /** utime + stime of the process itself, in clock ticks. */
  ownTicks: number;
  /** cutime + cstime: CPU of children it has waited for, in clock ticks. */
  reapedChildTicks: number;
}

interface Seen {
  comm: string;
  peakRssBytes: number;
  maxSampledRssBytes: number;
  ticks: number;
}

/**
 * Samples a process and its descendants every `intervalMs` until `stop()`.
 *
 * NOTE: values come from the last sample before a process exits, so CPU time
 * of a descendant misses up to one interval, and a peak reached within the
 * last interval of the root process is missed as well.
 */
export class ProcessTreeSampler {
  private readonly seen = new Map<number, Seen>();
  private timer?: NodeJS.Timeout;
  private samples = 0;

  constructor(
    private readonly rootPid: number,
    private readonly clockTicks: number,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  /** Stops sampling and returns what was seen. */
  stop(): TreeUsage {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const rootSeen = this.seen.get(this.rootPid);
    const root: ProcessUsage = {
      peakRssBytes: rootSeen?.peakRssBytes ?? 0,
      maxSampledRssBytes: rootSeen?.maxSampledRssBytes ?? 0,
      cpuSeconds: (rootSeen?.ticks ?? 0) / this.clockTicks,
    };
    const byProgram = new Map<string, ProgramUsage>();
    for (const [pid, entry] of this.seen) {
      if (pid === this.rootPid) continue;
      const usage = byProgram.get(entry.comm) ?? { program: entry.comm, processes: 0, peakRssBytes: 0, cpuSeconds: 0 };
      usage.processes += 1;
      usage.peakRssBytes = Math.max(usage.peakRssBytes, entry.peakRssBytes);
      usage.cpuSeconds += entry.ticks / this.clockTicks;
      byProgram.set(entry.comm, usage);
    }
    const descendants = [...byProgram.values()].sort((a, b) => b.cpuSeconds - a.cpuSeconds);
    return { root, descendants, samples: this.samples };
  }

  private sample(): void {
    this.samples += 1;
    const pids = [this.rootPid, ...descendantsOf(this.rootPid, readAllStats())];
    for (const pid of pids) {
      const stat = readStat(pid);
      const memory = readMemory(pid);
      // The process exited between listing and reading, so its earlier sample stays.
      if (!stat || !memory) continue;
      const previous = this.seen.get(pid);
      this.seen.set(pid, {
        comm: stat.comm,
        peakRssBytes: Math.max(previous?.peakRssBytes ?? 0, memory.hwmBytes),
        maxSampledRssBytes: Math.max(previous?.maxSampledRssBytes ?? 0, memory.rssBytes),
        ticks: Math.max(previous?.ticks ?? 0, stat.ownTicks),
      });
    }
  }
}

/**
 * Returns the CPU time in clock ticks used so far by the process `pid` and
 * all its descendants, including those that have already exited and been
 * waited for. For a PostgreSQL postmaster this is the whole server: every
 * backend is its direct child. The difference of two readings is the CPU the
 * server spent in between.
 */
export function treeCpuTicks(pid: number): number {
  const stats = readAllStats();
  const rootStat = stats.get(pid);
  if (!rootStat) throw new Error(`process ${pid} not found in /proc`);
  let ticks = rootStat.ownTicks + rootStat.reapedChildTicks;
  for (const child of descendantsOf(pid, stats)) ticks += stats.get(child)!.ownTicks;
  return ticks;
}

/**
 * Returns the busy CPU time of the whole machine in clock ticks, summed over
 * all CPUs: user, nice, system, irq, softirq and steal from the first line of
 * /proc/stat. Guest time is already part of user time.
 */
export function machineBusyTicks(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return user + nice + system + irq + softirq + steal;
}

function descendantsOf(rootPid: number, stats: Map<number, StatFields>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, stat] of stats) {
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const found: number[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

// /proc/PID/task/TID/children exists only in kernels built with
// CONFIG_PROC_CHILDREN, so the process tree is rebuilt from the parent id of
// every process at each sample.
function readAllStats(): Map<number, StatFields> {
  const stats = new Map<number, StatFields>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) stats.set(Number(name), stat);
  }
  return stats;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The program name is in parentheses and may itself contain spaces or
  // parentheses, so the numeric fields are counted from the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 of proc(5) (state), so field N is fields[N - 3].
  const field = (n: number) => Number(fields[n - 3]);
  return {
    comm: text.slice(open + 1, close),
    ppid: field(4),
    ownTicks: field(14) + field(15),
    reapedChildTicks: field(16) + field(17),
  };
}

function readMemory(pid: number): { hwmBytes: number; rssBytes: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { hwmBytes: kib('VmHWM'), rssBytes: kib('VmRSS') };
}
