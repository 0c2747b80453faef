/**
 * Throughput of `drplan wal push` as PostgreSQL's archive_command uses it:
 * one process per 16 MiB segment, pushed one after the other.
 *
 *   1. write DRPLAN_BENCH_WAL_SEGMENTS segment files (default 16) whose pages
 *      are part random bytes, part repeated row text and part zeros, so zstd
 *      compresses them about as much as real WAL of mixed updates,
 *   2. push them with the real CLI into a file repository (synchronous mode)
 *      and report segments per second,
 *   3. push them again under other names with `wal.async` on, report how fast
 *      push acknowledges, then wait for the background uploader to empty the
 *      spool and report the end-to-end rate.
 *
 * Run with `npm run bench:wal`. Temporary files are removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runProcess } from '../src/util/process.js';
import { segmentName } from '../src/wal/segment.js';

const DRPLAN_BIN = fileURLToPath(new URL('../../bin/drplan.js', import.meta.url));
const SEGMENT_BYTES = 16 * 1024 * 1024;
const PAGE_BYTES = 8192;
const THIRD = Math.floor(PAGE_BYTES / 3);
const DRAIN_TIMEOUT_MS = 600_000;

/** Returns one WAL-like page: a random third (new tuple data), a text third (repeated row images) and zeros. */
function page(seed: number): Buffer {
  const bytes = Buffer.alloc(PAGE_BYTES);
  randomBytes(THIRD).copy(bytes, 0);
  bytes.write(`row ${seed} status=active note=${'lorem ipsum '.repeat(40)}`.repeat(3).slice(0, THIRD), THIRD);
  return bytes;
}

function segment(index: number): Buffer {
  const pages: Buffer[] = [];
  for (let offset = 0; offset < SEGMENT_BYTES; offset += PAGE_BYTES) pages.push(page(index * 10_000 + offset / PAGE_BYTES));
  return Buffer.concat(pages);
}

async function writePlan(dir: string, repository: string, wal?: Record<string, unknown>): Promise<string> {
  const file = join(dir, wal ? 'async.yaml' : 'sync.yaml');
  const plan = { databases: [{ name: 'main', url: 'postgres://bench@127.0.0.1:1/bench' }], repositories: [{ name: 'local', url: `file://${repository}` }], ...(wal ? { wal } : {}) };
  await writeFile(file, stringify(plan));
  return file;
}

/** Pushes each file with a new drplan process, as the archiver does; returns the elapsed milliseconds. */
async function pushAll(plan: string, dataDir: string, names: string[]): Promise<number> {
  const started = performance.now();
  for (const name of names) {
    await runProcess(process.execPath, [DRPLAN_BIN, '--config', plan, '--log-level', 'warn', 'wal', 'push', '--database', 'main', `pg_wal/${name}`], {
      operation: `wal push ${name}`,
      cwd: dataDir,
    });
  }
  return performance.now() - started;
}

async function waitForEmptySpool(spool: string): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const entries = await readdir(join(spool, 'main')).catch(() => [] as string[]);
    if (!entries.some((e) => /^\d{15}-/.test(e) || e === 'uploader.pid')) return;
    if (Date.now() > deadline) throw new Error(`the spool ${spool} did not drain within ${DRAIN_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function rate(count: number, ms: number): string {
  return `${(count / (ms / 1000)).toFixed(2)} segments/s (${(ms / count).toFixed(0)} ms per segment)`;
}

async function main(): Promise<void> {
  const count = Number(process.env.DRPLAN_BENCH_WAL_SEGMENTS ?? 16);
  const root = await mkdtemp(join(tmpdir(), 'drplan-bench-wal-'));
  try {
    const dataDir = join(root, 'data');
    await mkdir(join(dataDir, 'pg_wal'), { recursive: true });
    const syncNames = Array.from({ length: count }, (_, i) => segmentName({ timeline: 1, segno: BigInt(i + 1) }));
    const asyncNames = Array.from({ length: count }, (_, i) => segmentName({ timeline: 2, segno: BigInt(i + 1) }));
    for (const [i, name] of [...syncNames, ...asyncNames].entries()) await writeFile(join(dataDir, 'pg_wal', name), segment(i));

    const syncPlan = await writePlan(root, join(root, 'repo-sync'));
    const syncMs = await pushAll(syncPlan, dataDir, syncNames);

    const spool = join(root, 'spool');
    const asyncPlan = await writePlan(root, join(root, 'repo-async'), { async: true, spoolDir: spool, maxQueue: count + 1 });
    const started = performance.now();
    const ackMs = await pushAll(asyncPlan, dataDir, asyncNames);
    await waitForEmptySpool(spool);
    const drainedMs = performance.now() - started;

    process.stdout.write(`wal push of ${count} segments of 16 MiB, file repository on ${tmpdir()}\n`);
    process.stdout.write(`  sync:                ${rate(count, syncMs)}\n`);
    process.stdout.write(`  async, acknowledged: ${rate(count, ackMs)}\n`);
    process.stdout.write(`  async, uploaded:     ${rate(count, drainedMs)}\n`);
    process.stdout.write(`${JSON.stringify({ segments: count, syncMs: Math.round(syncMs), asyncAckMs: Math.round(ackMs), asyncDrainedMs: Math.round(drainedMs) })}\n`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-wal failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
