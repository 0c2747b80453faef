/**
 * Finds processes through /proc (Linux), to check which children drplan
 * started and what their command lines contain.
 */
import { readdir, readFile } from 'node:fs/promises';

export interface ProcessEntry {
  pid: number;
  ppid: number;
  argv: string[];
}

/** Lists every process visible in /proc. */
export async function listProcesses(): Promise<ProcessEntry[]> {
  const entries: ProcessEntry[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      entries.push({ pid: Number(name), ppid, argv });
    } catch {
      // The process ended while being read.
    }
  }
  return entries;
}

/**
 * Waits until a child of `parent` whose program name ends with `program` and
 * whose arguments include `argument` exists, and returns it. The argument
 * separates a real run from a version probe of the same program.
 */
export async function waitForChild(parent: number, program: string, argument: string, timeoutMs = 30_000): Promise<ProcessEntry> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = (await listProcesses()).find((p) => p.ppid === parent && p.argv[0]?.endsWith(`/${program}`) && p.argv.includes(argument));
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no ${program} child of process ${parent} appeared within ${timeoutMs} ms`);
}
