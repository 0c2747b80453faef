/**
 * WAL push throughput of the physical benchmark: real 16 MiB segments,
 * written by the benchmark cluster and copied aside, are pushed one program
 * run per segment, in order, as PostgreSQL's archiver calls an
 * archive_command: with pgBackRest, with drplan, and with drplan in
 * asynchronous mode. Every run pushes segments that no repository has yet,
 * so no push is a cheap "already archived" check.
 */
import { chown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runProcess } from '../src/util/process.js';
import { withClient } from './bench-data.js';
import { log } from './bench-run.js';
import { pgBackRestArgs } from './bench-pgbackrest.js';
import { DATABASE, drplanArgs, drplanEnv, writePlan, type PhysicalContext } from './bench-physical-setup.js';
import type { Tool } from './bench-physical-steps.js';

/** One timed sequence of pushes. */
export interface WalPushRun {
  tool: Tool;
  /** sync: one `wal push` stores each file before it returns; async: push queues it in the spool and a background uploader stores it. */
  mode: 'sync' | 'async';
  round: number;
  segments: number;
  durationMs: number;
  segmentsPerSecond: number;
  /** async only: when the last push returned, before the uploader finished. */
  acceptedMs?: number;
}

export interface WalPushResult {
  segmentBytes: number;
  runs: WalPushRun[];
  /** Reasons for any tool or mode that was not measured. */
  notes: string[];
}

const SEGMENT_NAME = /^[0-9A-F]{24}$/;
/** A queued file in drplan's spool directory: arrival stamp, dash, WAL file name. */
const SPOOL_ENTRY = /^\d{15}-/;

type PushKind = Tool | 'drplan async';
const ROUNDS = 2;

export async function measureWalPush(context: PhysicalContext, segmentsPerRound: number): Promise<WalPushResult> {
  const notes: string[] = [];
  if (!context.features.walPush) notes.push('drplan wal push is not in this build, so only pgBackRest was measured');
  const kinds: PushKind[] = context.features.walPush ? ['pgBackRest', 'drplan', 'drplan async'] : ['pgBackRest'];
  const segments = await generateSegments(context, segmentsPerRound * ROUNDS * kinds.length);
  const asyncPlan = context.features.walPush ? await writeAsyncPlan(context) : undefined;
  const runs: WalPushRun[] = [];
  let next = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of round % 2 === 1 ? kinds : [...kinds].reverse()) {
      const batch = segments.slice(next, next + segmentsPerRound);
      next += segmentsPerRound;
      if (kind === 'drplan async') runs.push(await pushAsync(context, round, batch, asyncPlan!));
      else runs.push(await pushAll(context, kind, round, batch));
    }
  }
  notes.push('pgBackRest archive-push was run synchronously; its asynchronous mode works only from a live archive_command (it reads the archive status of the data directory), so it was not measured');
  return { segmentBytes: 16 * 1024 * 1024, runs, notes };
}

/**
 * Makes the cluster write `count` new WAL segments of random text rows and
 * returns their copies, oldest first. The archive_command copies them aside
 * meanwhile, and is set back to the two-tool script afterwards.
 */
async function generateSegments(context: PhysicalContext, count: number): Promise<string[]> {
  const dir = join(context.workDir, 'wal-segments');
  await mkdir(dir);
  await chown(dir, context.owner.uid, context.owner.gid);
  const url = context.cluster.url(DATABASE);
  log(`writing ${count} WAL segments for the push throughput`);
  await setArchiveCommand(url, `test ! -f '${dir}/%f' && cp "%p" '${dir}/%f'`);
  await withClient(url, async (client) => {
    await client.query('CREATE TABLE wal_fill (id bigint, payload text)');
    const start = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
    const target = `pg_wal_lsn_diff(pg_current_wal_lsn(), '${start}') < ${(count + 1) * 16 * 1024 * 1024}`;
    while ((await client.query<{ more: boolean }>(`SELECT ${target} AS more`)).rows[0]!.more) {
      if (context.signal.aborted) throw context.signal.reason;
      // md5 text, like the benchmark's tables: compressible about as much as real row data.
      await client.query("INSERT INTO wal_fill SELECT g, repeat(md5(random()::text), 4) || ' ' || md5(g::text) FROM generate_series(1, 50000) AS g");
    }
    await client.query('SELECT pg_switch_wal()');
  });
  const names = await waitForSegments(dir, count, context.signal);
  await setArchiveCommand(url, `${context.archiveScript} "%p"`);
  await withClient(url, (client) => client.query('DROP TABLE wal_fill'));
  return names.slice(0, count).map((name) => join(dir, name));
}

async function setArchiveCommand(url: string, command: string): Promise<void> {
  await withClient(url, async (client) => {
    await client.query(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
    await client.query('SELECT pg_reload_conf()');
  });
}

async function waitForSegments(dir: string, count: number, signal: AbortSignal): Promise<string[]> {
  const deadline = performance.now() + 300_000;
  for (;;) {
    const names = (await readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
    if (names.length >= count) return names;
    if (signal.aborted) throw signal.reason;
    if (performance.now() > deadline) throw new Error(`only ${names.length} of ${count} WAL segments were archived into ${dir} after 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function pushAll(context: PhysicalContext, tool: Tool, round: number, segments: string[]): Promise<WalPushRun> {
  log(`pushing ${segments.length} segments with ${tool} (round ${round})`);
  const started = performance.now();
  for (const segment of segments) {
    if (tool === 'drplan') {
      await runProcess(process.execPath, drplanArgs(context, ['wal', 'push', '--database', DATABASE, segment]), {
        env: { ...drplanEnv(context), DRPLAN_LOG_LEVEL: 'warn' },
        signal: context.signal,
        operation: 'drplan wal push',
        ...context.owner,
      });
    } else {
      const setup = context.pgBackRest;
      await runProcess('pgbackrest', [...pgBackRestArgs(setup, 'archive-push'), segment], { env: setup.env, uid: setup.uid, gid: setup.gid, signal: context.signal, operation: 'pgbackrest archive-push' });
    }
  }
  const durationMs = performance.now() - started;
  const segmentsPerSecond = segments.length / (durationMs / 1000);
  log(`${tool}: ${segments.length} segments in ${(durationMs / 1000).toFixed(1)} s, ${segmentsPerSecond.toFixed(2)} segments/s`);
  return { tool, mode: 'sync', round, segments: segments.length, durationMs, segmentsPerSecond };
}

/** Writes a second plan, the same but with asynchronous archiving, and returns its path and spool directory. */
async function writeAsyncPlan(context: PhysicalContext): Promise<{ planFile: string; spoolDir: string }> {
  const planFile = join(context.workDir, 'drplan-async.yaml');
  const spoolDir = join(context.workDir, 'spool');
  await mkdir(spoolDir);
  await chown(spoolDir, context.owner.uid, context.owner.gid);
  await writePlan(context, planFile, spoolDir);
  await chown(planFile, context.owner.uid, context.owner.gid);
  return { planFile, spoolDir };
}

/**
 * Pushes each segment with the asynchronous plan (each push returns once
 * the file is durably in the spool) and waits until the background uploader
 * has emptied the spool: the throughput counts until every file is stored.
 */
async function pushAsync(context: PhysicalContext, round: number, segments: string[], asyncPlan: { planFile: string; spoolDir: string }): Promise<WalPushRun> {
  log(`pushing ${segments.length} segments with drplan, asynchronous (round ${round})`);
  const queueDir = join(asyncPlan.spoolDir, DATABASE);
  const started = performance.now();
  for (const segment of segments) {
    await runProcess(process.execPath, drplanArgs(context, ['wal', 'push', '--database', DATABASE, segment], asyncPlan.planFile), {
      env: { ...drplanEnv(context), DRPLAN_LOG_LEVEL: 'warn' },
      signal: context.signal,
      operation: 'drplan wal push (asynchronous)',
      ...context.owner,
    });
  }
  const acceptedMs = performance.now() - started;
  const deadline = performance.now() + 300_000;
  for (;;) {
    const queued = (await readdir(queueDir).catch(() => [] as string[])).filter((name) => SPOOL_ENTRY.test(name));
    if (queued.length === 0) break;
    if (context.signal.aborted) throw context.signal.reason;
    if (performance.now() > deadline) throw new Error(`drplan's spool ${queueDir} still contains ${queued.length} files after 300 s: the uploader timed out`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const durationMs = performance.now() - started;
  const segmentsPerSecond = segments.length / (durationMs / 1000);
  log(`drplan async: ${segments.length} segments accepted in ${(acceptedMs / 1000).toFixed(1)} s, stored in ${(durationMs / 1000).toFixed(1)} s, ${segmentsPerSecond.toFixed(2)} segments/s`);
  return { tool: 'drplan', mode: 'async', round, segments: segments.length, durationMs, segmentsPerSecond, acceptedMs };
}
