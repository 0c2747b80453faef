/**
 * WAL archiving against a real cluster whose archive_command is the real
 * `drplan wal push`, then fetch, conflicts, gaps and S3.
 */
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThrowawayCluster, type ThrowawayCluster } from '../../src/postgres/cluster.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { writeFakePhysicalBackup, writeObject } from '../helpers/fake-repository.js';
import { query } from '../helpers/pg.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { startS3Server, type S3TestServer } from '../helpers/s3.js';

const DRPLAN = path.join(repoRoot, 'bin', 'drplan.js');

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Makes the plan's directory readable by the server user, which runs archive_command. */
async function shareWithServer(planFile: string, repositoryDir: string): Promise<void> {
  await chmod(path.dirname(planFile), 0o755);
  await chmod(planFile, 0o644);
  await chmod(repositoryDir, 0o777);
}

/** Switches to a new segment and waits until the archiver has stored the old one; returns its name and bytes. */
async function switchAndArchive(cluster: ThrowawayCluster, note: string): Promise<{ name: string; bytes: Buffer }> {
  await query(cluster.url(), 'INSERT INTO notes (body) SELECT $1 || g FROM generate_series(1, 500) g', [note]);
  const [row] = await query<{ name: string }>(cluster.url(), 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  const name = row!.name;
  // The segment is still in pg_wal until a checkpoint recycles it, so read it while the archiver works.
  const bytes = await readFile(path.join(cluster.dataDir, 'pg_wal', name));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [stats] = await query<{ last: string | null; failed: string }>(cluster.url(), 'SELECT last_archived_wal AS last, failed_count::text AS failed FROM pg_stat_archiver');
    if (stats!.last !== null && stats!.last >= name) break;
    if (Date.now() > deadline) throw new Error(`segment ${name} not archived within 30 s (failed attempts: ${stats!.failed}); see ${cluster.dataDir}/../server.log`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { name, bytes };
}

/** Returns a port on 127.0.0.1 that nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('wal archiving', () => {
  let cluster: ThrowawayCluster;
  let repo: TestRepository & { dir: string };
  let planFile: string;
  let work: string;
  const archived: { name: string; bytes: Buffer }[] = [];

  beforeAll(async () => {
    repo = await fileRepository('local');
    planFile = await writePlan({ databases: [{ name: 'main', url: 'postgres://postgres@127.0.0.1:1/postgres' }], repositories: [repo] });
    await shareWithServer(planFile, repo.dir);
    const archiveCommand = `'${process.execPath}' '${DRPLAN}' --config '${planFile}' wal push --database main %p`;
    cluster = await startThrowawayCluster({ settings: { archive_mode: 'on', archive_command: archiveCommand, wal_level: 'replica' } });
    await query(cluster.url(), 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
    for (const note of ['first', 'second', 'third']) archived.push(await switchAndArchive(cluster, note));
    work = await mkdtemp(path.join(tmpdir(), 'drplan-wal-'));
  });

  afterAll(async () => {
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('archive_command stores zstd files', async () => {
    const stored = await readdir(path.join(repo.dir, 'wal', 'main'));
    for (const { name } of archived) {
      expect(stored).toContain(`${name}.zst`);
      expect(stored).toContain(`${name}.zst.sum`);
    }
    const checksum = JSON.parse(await readFile(path.join(repo.dir, 'wal', 'main', `${archived[0]!.name}.zst.sum`), 'utf8')) as { sha256: string; bytes: number };
    expect(checksum.sha256).toBe(sha256(archived[0]!.bytes));
    expect(checksum.bytes).toBe(16 * 1024 * 1024);
  });

  it('fetch returns identical bytes', async () => {
    const { name, bytes } = archived[1]!;
    const result = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', name, 'pg_wal/RECOVERYXLOG'], { cwd: await dataDirLike(work) });
    expect(result.code, result.stderr).toBe(0);
    const restored = await readFile(path.join(work, 'data', 'pg_wal', 'RECOVERYXLOG'));
    expect(sha256(restored)).toBe(sha256(bytes));
    const leftovers = (await readdir(path.join(work, 'data', 'pg_wal'))).filter((f) => f.includes('drplan-tmp'));
    expect(leftovers).toEqual([]);
  });

  it('re-push of identical content succeeds', async () => {
    const { name, bytes } = archived[0]!;
    const cwd = await dataDirLike(work);
    await writeFile(path.join(cwd, 'pg_wal', name), bytes);
    const result = await runCli(['--config', planFile, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('already archived with identical content');
  });

  it('re-push of different content fails with exit 4', async () => {
    const { name, bytes } = archived[0]!;
    const cwd = await dataDirLike(work);
    const changed = Buffer.from(bytes);
    changed[8192] = changed[8192]! ^ 0xff;
    await writeFile(path.join(cwd, 'pg_wal', name), changed);
    const result = await runCli(['--config', planFile, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd });
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`WAL file ${name} is already archived in repository local with different content`);
    expect(result.stderr).toContain(`archived sha256 ${sha256(bytes)}`);
    expect(result.stderr).toContain(`pushed sha256 ${sha256(changed)}`);
    const fetched = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', name, path.join(work, 'check')]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(sha256(await readFile(path.join(work, 'check')))).toBe(sha256(bytes));
  });

  it('history, partial and backup files round-trip', async () => {
    const cwd = await dataDirLike(work);
    const files: [string, Buffer][] = [
      // Timeline 2 branches off after the segments archived here, so the chain checked below stays on timeline 1.
      ['00000002.history', Buffer.from('1\t0/FF000000\tno recovery target specified\n')],
      [`${archived[2]!.name}.partial`, archived[2]!.bytes],
      ['000000020000000000000004.00000028.backup', Buffer.from('START WAL LOCATION: 0/4000028 (file 000000020000000000000004)\n')],
    ];
    for (const [name, bytes] of files) {
      await writeFile(path.join(cwd, 'pg_wal', name), bytes);
      const pushed = await runCli(['--config', planFile, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd });
      expect(pushed.code, pushed.stderr).toBe(0);
      const fetched = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', name, 'pg_wal/RECOVERYHISTORY'], { cwd });
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(sha256(await readFile(path.join(cwd, 'pg_wal', 'RECOVERYHISTORY'))), name).toBe(sha256(bytes));
    }
    const status = await runCli(['--config', planFile, 'wal', 'status', '--database', 'main', '--json']);
    const [result] = JSON.parse(status.stdout) as { files: number; timelines: { timeline: number }[] }[];
    expect(result!.files).toBe(archived.length + files.length);
    expect(result!.timelines.map((t) => t.timeline)).toEqual([1]);
  });

  it('file name that is not WAL is rejected', async () => {
    const cwd = await dataDirLike(work);
    await writeFile(path.join(cwd, 'pg_wal', 'notes.txt'), 'x');
    const result = await runCli(['--config', planFile, 'wal', 'push', '--database', 'main', 'pg_wal/notes.txt'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"notes.txt" is not a WAL file name');
  });

  it('missing file exits 5 with one line', async () => {
    const result = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', '00000009.history', path.join(work, 'history')]);
    expect(result.code).toBe(5);
    expect(result.stderr).toBe('drplan: WAL file 00000009.history not found in any repository\n');

    // A missing file is the normal end of the archive for recovery, so --abort-on-error keeps exit 5.
    const aborting = await runCli(['--config', planFile, 'wal', 'fetch', '--abort-on-error', '--database', 'main', '00000009.history', path.join(work, 'history')]);
    expect(aborting.code).toBe(5);
  });

  it('corrupt copy falls back to the next repository', async () => {
    const { name, bytes } = archived[2]!;
    const second = await fileRepository('second');
    const stored = await readFile(path.join(repo.dir, 'wal', 'main', `${name}.zst`));
    const damaged = Buffer.from(stored);
    damaged[damaged.length - 10] = damaged[damaged.length - 10]! ^ 0xff;
    await writeObject(second.dir, `wal/main/${name}.zst`, damaged);
    await writeObject(second.dir, `wal/main/${name}.zst.sum`, await readFile(path.join(repo.dir, 'wal', 'main', `${name}.zst.sum`)));
    const both = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [second, repo] });
    const result = await runCli(['--config', both, 'wal', 'fetch', '--database', 'main', name, path.join(work, 'fallback')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('archived WAL copy is damaged; trying the next repository');
    expect(sha256(await readFile(path.join(work, 'fallback')))).toBe(sha256(bytes));

    const onlyDamaged = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [second] });
    const failed = await runCli(['--config', onlyDamaged, 'wal', 'fetch', '--database', 'main', name, path.join(work, 'damaged')]);
    expect(failed.code).toBe(4);
    expect(failed.stderr).toContain(`WAL file ${name} of database main is damaged in every repository that has a copy: second`);

    const aborted = await runCli(['--config', onlyDamaged, 'wal', 'fetch', '--abort-on-error', '--database', 'main', name, path.join(work, 'damaged')]);
    expect(aborted.code).toBe(200);
    expect(aborted.stderr).toContain(`WAL file ${name} of database main is damaged in every repository that has a copy: second`);
    expect(aborted.stderr).toContain('recovery is aborted rather than ended at this point');
  });

  it('unreachable S3 repository exits 3', async () => {
    const port = await closedPort();
    const dead = { name: 'offsite', url: 's3://wal-bucket/drplan', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true };
    const plan = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [dead] });
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
    const fetched = await runCli(['--config', plan, 'wal', 'fetch', '--database', 'main', archived[0]!.name, path.join(work, 'unreachable')], { env });
    expect(fetched.code).toBe(3);
    expect(fetched.stderr).toContain('repository offsite');
    expect(fetched.stderr).not.toContain('repository offsite: repository offsite');
    const aborted = await runCli(['--config', plan, 'wal', 'fetch', '--abort-on-error', '--database', 'main', archived[0]!.name, path.join(work, 'unreachable')], { env });
    expect(aborted.code).toBe(200);
    expect(aborted.stderr).toContain('repository offsite');

    const both = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [repo, dead] });
    const cwd = await dataDirLike(work);
    await writeFile(path.join(cwd, 'pg_wal', archived[1]!.name), archived[1]!.bytes);
    const pushed = await runCli(['--config', both, 'wal', 'push', '--database', 'main', `pg_wal/${archived[1]!.name}`], { cwd, env });
    expect(pushed.code).toBe(3);
    expect(pushed.stderr).toContain('offsite');
  });

  it('S3 and file repositories both hold pushed files', async () => {
    const s3: S3TestServer = await startS3Server();
    try {
      await s3.createBucket('wal-bucket');
      const bucket = s3Repository('offsite', s3, 'wal-bucket');
      const both = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [repo, bucket] });
      const onlyS3 = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [bucket] });
      const cwd = await dataDirLike(work);
      for (const { name, bytes } of archived) {
        await writeFile(path.join(cwd, 'pg_wal', name), bytes);
        const pushed = await runCli(['--config', both, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd, env: s3Env(s3) });
        expect(pushed.code, pushed.stderr).toBe(0);
      }
      const { name, bytes } = archived[2]!;
      const fetched = await runCli(['--config', onlyS3, 'wal', 'fetch', '--database', 'main', name, path.join(work, 'from-s3')], { env: s3Env(s3) });
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(sha256(await readFile(path.join(work, 'from-s3')))).toBe(sha256(bytes));

      const changed = Buffer.from(bytes);
      changed[0] = changed[0]! ^ 0xff;
      await writeFile(path.join(cwd, 'pg_wal', name), changed);
      const conflict = await runCli(['--config', onlyS3, 'wal', 'push', '--database', 'main', `pg_wal/${name}`], { cwd, env: s3Env(s3) });
      expect(conflict.code).toBe(4);
      expect(conflict.stderr).toContain('already archived in repository offsite with different content');
    } finally {
      await s3.stop();
    }
  });

  it('reports a segment missing from one repository', async () => {
    const [, middle] = archived;
    const copy = await fileRepository('copy');
    await cp(repo.dir, copy.dir, { recursive: true });
    await unlink(path.join(copy.dir, 'wal', 'main', `${middle!.name}.zst`));
    const both = await writePlan({ databases: [{ name: 'main', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [repo, copy] });

    // The union still has every segment, so recovery works and wal status succeeds, with a warning.
    const status = await runCli(['--config', both, 'wal', 'status', '--database', 'main']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('gap:');
    expect(status.stdout).toContain(`warning: repository copy lacks ${middle!.name}, which another repository holds`);
    const json = await runCli(['--config', both, 'wal', 'status', '--database', 'main', '--json']);
    const [report] = JSON.parse(json.stdout) as { repositoryGaps: unknown[] }[];
    expect(report!.repositoryGaps).toEqual([{ repository: 'copy', timeline: 1, first: middle!.name, last: middle!.name, count: 1 }]);

    const check = await runCli(['--config', both, 'repo', 'check']);
    expect(check.code).toBe(4);
    expect(check.stdout).toContain(`copy: missing WAL segment: wal/main/${middle!.name}: database main: segment ${middle!.name} missing here but held by another repository`);
    expect(check.stdout).not.toContain('local:');
  });

  it('status names a deleted middle segment', async () => {
    const [first, middle, last] = archived;
    // A physical base backup's metadata, written directly: its first segment is the first one archived here.
    await writeFakePhysicalBackup(repo.dir, { id: 'base1', database: 'main', startedAt: new Date(Date.now() - 60_000), firstSegment: first!.name });

    const before = await runCli(['--config', planFile, 'wal', 'status', '--database', 'main', '--json']);
    expect(before.code, before.stderr).toBe(0);
    const healthy = JSON.parse(before.stdout) as { chains: { ok: boolean; until: string }[]; rpoSeconds: number }[];
    expect(healthy[0]!.chains[0]!.ok).toBe(true);
    expect(healthy[0]!.chains[0]!.until >= last!.name).toBe(true);
    expect(healthy[0]!.rpoSeconds).toBeLessThan(600);

    await unlink(path.join(repo.dir, 'wal', 'main', `${middle!.name}.zst`));
    const after = await runCli(['--config', planFile, 'wal', 'status', '--database', 'main']);
    expect(after.code).toBe(4);
    expect(after.stdout).toContain(`gap: ${middle!.name}`);
    expect(after.stderr).toContain(`base backup base1 cannot be recovered to the newest WAL: ${middle!.name} missing on timeline 1`);

    const status = await runCli(['--config', planFile, 'status', '--json']);
    const report = JSON.parse(status.stdout) as { ok: boolean; databases: { wal: { timelines: { gaps: { first: string }[] }[]; ok: boolean; broken: boolean } }[] };
    expect(status.code).toBe(4);
    expect(report.ok).toBe(false);
    expect(report.databases[0]!.wal.ok).toBe(false);
    expect(report.databases[0]!.wal.broken).toBe(true);
    expect(report.databases[0]!.wal.timelines[0]!.gaps[0]!.first).toBe(middle!.name);
    expect(status.stderr).toContain(`archived WAL has a gap that breaks point-in-time recovery: main (base backup base1, first missing ${middle!.name})`);

    const text = await runCli(['--config', planFile, 'status']);
    expect(text.code).toBe(4);
    expect(text.stdout).toContain('ARCHIVED WAL BROKEN');
    expect(text.stdout).toContain(`gaps: ${middle!.name}, BROKEN chain of the newest base backup base1`);
  });
});

/** Creates `<work>/data/pg_wal`, the layout PostgreSQL runs archive and restore commands in. */
async function dataDirLike(work: string): Promise<string> {
  const dir = path.join(work, 'data');
  await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
  return dir;
}
