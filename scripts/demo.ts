/**
 * `npm run demo`: drplan's main job on an embedded default. It starts a
 * throwaway PostgreSQL cluster, loads the Chinook sample database, takes a
 * backup to a local repository, verifies it, restores it into a new database,
 * compares every table, and prints sizes, times and row counts. Everything it
 * creates lives in temp directories that are removed at the end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startThrowawayCluster, type ThrowawayCluster } from '../src/postgres/cluster.js';
import { runProcess } from '../src/util/process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const chinookSql = path.join(root, 'testdata', 'chinook', 'chinook.sql');
const drplanBin = path.join(root, 'bin', 'drplan.js');

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'drplan-demo-'));
  let cluster: ThrowawayCluster | undefined;
  try {
    step('starting a throwaway PostgreSQL cluster');
    cluster = await startThrowawayCluster();
    step(`loading the Chinook sample database into ${cluster.host}:${cluster.port}`);
    await loadChinook(cluster);

    const planFile = await writeDemoPlan(work, cluster);
    const env = { DEMO_DB_PASSWORD: cluster.password, DRPLAN_LOG_LEVEL: 'warn' };
    step(`plan written to ${planFile}`);

    const backup = await timed(() => drplan(['--config', planFile, 'backup', '--json'], env));
    const meta = JSON.parse(backup.value) as { id: string; rawBytes: number; storedBytes: number; sha256: string; tables: { schema: string; name: string; rows: number }[] };
    step(`backup ${meta.id} committed`);

    const verify = await timed(() => drplan(['--config', planFile, 'verify', meta.id, '--json'], env));
    step('backup verified: size, SHA-256 and archive readable on the repository');

    const restore = await timed(() => drplan(['--config', planFile, 'restore', meta.id, '--target-database', 'chinook_restored', '--jobs', '2', '--json'], env));
    const restored = await countRows(cluster.url('chinook_restored'), meta.tables);
    step('restored into database chinook_restored');

    printSummary(meta, restored, { backup: backup.ms, verify: verify.ms, restore: restore.ms });
    const mismatches = meta.tables.filter((t) => restored.get(`${t.schema}.${t.name}`) !== t.rows);
    if (mismatches.length > 0) throw new Error(`row counts differ after restore for: ${mismatches.map((t) => t.name).join(', ')}`);
    console.log('\nresult: every table restored with the row count recorded at backup time');
  } finally {
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function step(message: string): void {
  console.log(`- ${message}`);
}

async function loadChinook(cluster: ThrowawayCluster): Promise<void> {
  const url = new URL(cluster.url());
  url.password = '';
  await runProcess(path.join(cluster.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url.toString(), '-f', chinookSql], {
    env: { PGPASSWORD: cluster.password },
    operation: 'load Chinook',
  });
}

async function writeDemoPlan(work: string, cluster: ThrowawayCluster): Promise<string> {
  const file = path.join(work, 'drplan.yaml');
  const plan = [
    'databases:',
    '  - name: chinook',
    `    url: postgres://postgres:\${DEMO_DB_PASSWORD}@${cluster.host}:${cluster.port}/chinook`,
    'repositories:',
    '  - name: local',
    `    url: file://${path.join(work, 'repository')}`,
    '',
  ].join('\n');
  await writeFile(file, plan);
  return file;
}

function drplan(args: string[], env: Record<string, string>): Promise<string> {
  return runProcess(process.execPath, [drplanBin, ...args], { env, operation: `drplan ${args[2]}` });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: Math.round(performance.now() - started) };
}

async function countRows(url: string, tables: { schema: string; name: string }[]): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const counts = new Map<string, number>();
    for (const t of tables) {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "${t.schema}"."${t.name}"`);
      counts.set(`${t.schema}.${t.name}`, Number(rows[0]!.n));
    }
    return counts;
  } finally {
    await client.end();
  }
}

function printSummary(
  meta: { id: string; rawBytes: number; storedBytes: number; sha256: string; tables: { schema: string; name: string; rows: number }[] },
  restored: Map<string, number>,
  ms: { backup: number; verify: number; restore: number },
): void {
  console.log('\nsummary');
  console.log(`  backup id        ${meta.id}`);
  console.log(`  dump size        ${meta.rawBytes} bytes (pg_dump custom format)`);
  console.log(`  stored size      ${meta.storedBytes} bytes (zstd), ratio ${(meta.storedBytes / meta.rawBytes).toFixed(2)}`);
  console.log(`  sha256           ${meta.sha256}`);
  console.log(`  backup time      ${ms.backup} ms`);
  console.log(`  verify time      ${ms.verify} ms`);
  console.log(`  restore time     ${ms.restore} ms`);
  console.log('\n  table                     rows at backup   rows restored');
  for (const t of meta.tables) {
    const name = `${t.schema}.${t.name}`;
    console.log(`  ${name.padEnd(26)}${String(t.rows).padStart(14)}${String(restored.get(name)).padStart(16)}`);
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
