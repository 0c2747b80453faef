/**
 * Checks of archived WAL on hand-written file repositories, without
 * PostgreSQL: which segment counts as newest for the WAL RPO, what
 * `repo check` reports about WAL objects and checksum objects, and the
 * warning of `wal fetch` for a copy without checksum object.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressBuffer, sha256 } from '../../src/wal/codec.js';
import { runCli } from '../helpers/cli.js';
import { writeFakePhysicalBackup, writeObject } from '../helpers/fake-repository.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

const DATABASE_URL = 'postgres://x@127.0.0.1:1/x';
const SEGMENTS = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004'];

/** Writes one zstd-compressed segment and, unless `withChecksum` is false, its checksum object; returns the original bytes. */
async function writeSegment(dir: string, name: string, archivedAt: Date, withChecksum = true): Promise<Buffer> {
  const original = randomBytes(4096);
  const stored = await compressBuffer(original, 'zstd', 3);
  const key = `wal/main/${name}.zst`;
  await writeObject(dir, key, stored);
  if (withChecksum) {
    const checksum = { formatVersion: 1, file: name, sha256: sha256(original), bytes: original.length, compression: 'zstd', storedBytes: stored.length, archivedAt: archivedAt.toISOString() };
    await writeObject(dir, `${key}.sum`, `${JSON.stringify(checksum)}\n`);
  }
  return original;
}

/** A file repository with SEGMENTS archived one hour apart, the last one hour ago, plus a plan naming it. */
async function archiveRepository(options: { withBackup?: boolean } = {}): Promise<{ dir: string; planFile: string }> {
  const repo = await fileRepository('local');
  const lastArchived = Date.now() - 3_600_000;
  for (const [index, name] of SEGMENTS.entries()) {
    const archivedAt = new Date(lastArchived - (SEGMENTS.length - 1 - index) * 3_600_000);
    await writeSegment(repo.dir, name, archivedAt);
    const file = segmentPath(repo.dir, name);
    await utimes(file, archivedAt, archivedAt);
  }
  if (options.withBackup) {
    await writeFakePhysicalBackup(repo.dir, { id: 'base1', database: 'main', startedAt: new Date(lastArchived - 5 * 3_600_000), firstSegment: SEGMENTS[0]!, withObjects: true });
  }
  const planFile = await writePlan({ databases: [{ name: 'main', url: DATABASE_URL }], repositories: [repo] });
  return { dir: repo.dir, planFile };
}

function segmentPath(dir: string, name: string): string {
  return path.join(dir, 'wal', 'main', `${name}.zst`);
}

interface StatusJson {
  newest: { name: string; archivedAt: string; modified: string } | null;
  rpoSeconds: number | null;
}

async function walStatus(planFile: string): Promise<StatusJson> {
  const result = await runCli(['--config', planFile, 'wal', 'status', '--database', 'main', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as StatusJson[])[0]!;
}

interface ProblemJson {
  repository: string;
  kind: string;
  key: string;
  detail: string;
}

async function repoCheck(planFile: string, ...extra: string[]): Promise<{ code: number; problems: ProblemJson[]; stderr: string }> {
  const result = await runCli(['--config', planFile, 'repo', 'check', '--json', ...extra]);
  return { code: result.code, problems: JSON.parse(result.stdout) as ProblemJson[], stderr: result.stderr };
}

describe('newest WAL segment', () => {
  it('touched old segment is not newest', async () => {
    const { dir, planFile } = await archiveRepository();
    const now = new Date();
    await utimes(segmentPath(dir, SEGMENTS[0]!), now, now);

    const status = await walStatus(planFile);

    expect(status.newest?.name).toBe(SEGMENTS.at(-1));
    expect(status.rpoSeconds).toBeGreaterThanOrEqual(3_590);
    expect(status.rpoSeconds).toBeLessThan(3_700);
  });

  it('archivedAt wins over modification time', async () => {
    const { dir, planFile } = await archiveRepository();
    const now = new Date();
    await utimes(segmentPath(dir, SEGMENTS.at(-1)!), now, now);

    const status = await walStatus(planFile);

    expect(status.newest?.name).toBe(SEGMENTS.at(-1));
    expect(status.rpoSeconds).toBeGreaterThanOrEqual(3_590);
    expect(status.newest?.modified).toBe(now.toISOString());
  });

  it('modification time without checksum object', async () => {
    const { dir, planFile } = await archiveRepository();
    const last = segmentPath(dir, SEGMENTS.at(-1)!);
    await unlink(`${last}.sum`);
    const twoHoursAgo = new Date(Date.now() - 7_200_000);
    await utimes(last, twoHoursAgo, twoHoursAgo);

    const status = await walStatus(planFile);

    expect(status.newest?.name).toBe(SEGMENTS.at(-1));
    expect(status.rpoSeconds).toBeGreaterThanOrEqual(7_190);
    expect(status.rpoSeconds).toBeLessThan(7_300);
  });

  it('higher timeline is newer', async () => {
    const { dir, planFile } = await archiveRepository();
    await writeSegment(dir, '000000020000000000000002', new Date(Date.now() - 600_000));
    await writeObject(dir, 'wal/main/00000002.history.zst', await compressBuffer(Buffer.from('1\t0/2000000\tno recovery target specified\n'), 'zstd', 3));

    const status = await walStatus(planFile);

    expect(status.newest?.name).toBe('000000020000000000000002');
    expect(status.rpoSeconds).toBeLessThan(700);
  });
});

describe('repo check of archived WAL', () => {
  let fetchDir: string;

  beforeAll(async () => {
    fetchDir = await mkdtemp(path.join(tmpdir(), 'drplan-wal-audit-'));
  });

  afterAll(async () => {
    await rm(fetchDir, { recursive: true, force: true });
  });

  it('intact archive has no problems', async () => {
    const { planFile } = await archiveRepository({ withBackup: true });

    const result = await repoCheck(planFile, '--wal-content');

    expect(result.code, result.stderr).toBe(0);
    expect(result.problems).toEqual([]);
  });

  it('resized segment is size mismatch', async () => {
    const { dir, planFile } = await archiveRepository();
    const file = segmentPath(dir, SEGMENTS[1]!);
    const stored = (await readFile(file)).length;
    await truncate(file, stored - 10);

    const result = await repoCheck(planFile);

    expect(result.code).toBe(4);
    expect(result.problems).toEqual([
      { repository: 'local', kind: 'size mismatch', key: `wal/main/${SEGMENTS[1]}.zst`, detail: `stored ${stored - 10} bytes, checksum object says ${stored}` },
    ]);
  });

  it('segment without checksum object', async () => {
    const { dir, planFile } = await archiveRepository();
    await unlink(`${segmentPath(dir, SEGMENTS[2]!)}.sum`);

    const result = await repoCheck(planFile);

    expect(result.code).toBe(4);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]!.kind).toBe('missing checksum object');
    expect(result.problems[0]!.key).toBe(`wal/main/${SEGMENTS[2]}.zst`);
  });

  it('checksum object without segment', async () => {
    const { dir, planFile } = await archiveRepository();
    await writeObject(dir, 'wal/main/000000010000000000000009.zst.sum', '{}\n');

    const result = await repoCheck(planFile);

    expect(result.code).toBe(4);
    expect(result.problems).toEqual([
      { repository: 'local', kind: 'checksum without WAL object', key: 'wal/main/000000010000000000000009.zst.sum', detail: 'wal/main/000000010000000000000009.zst does not exist' },
    ]);
  });

  it('gap breaking a chain', async () => {
    const { dir, planFile } = await archiveRepository({ withBackup: true });
    await unlink(`${segmentPath(dir, SEGMENTS[1]!)}.sum`);
    await unlink(segmentPath(dir, SEGMENTS[1]!));

    const result = await runCli(['--config', planFile, 'repo', 'check']);

    expect(result.code).toBe(4);
    expect(result.stdout).toBe(
      `all repositories: WAL gap: wal/main/${SEGMENTS[1]}: database main: ${SEGMENTS[1]} missing on timeline 1 in every repository; base backup base1 cannot be recovered past it\n`,
    );
  });

  it('same-size damage needs --wal-content', async () => {
    const { dir, planFile } = await archiveRepository({ withBackup: true });
    const file = segmentPath(dir, SEGMENTS[2]!);
    const damaged = await compressBuffer(randomBytes(4096), 'zstd', 3);
    const stored = await readFile(file);
    // Random input does not compress, so every stored copy has the same size.
    expect(damaged.length).toBe(stored.length);
    await writeFile(file, damaged);

    const sizesOnly = await repoCheck(planFile);
    const withContent = await repoCheck(planFile, '--wal-content');

    expect(sizesOnly.code, sizesOnly.stderr).toBe(0);
    expect(withContent.code).toBe(4);
    expect(withContent.problems).toHaveLength(1);
    expect(withContent.problems[0]!.kind).toBe('damaged WAL object');
    expect(withContent.problems[0]!.key).toBe(`wal/main/${SEGMENTS[2]}.zst`);
    expect(withContent.problems[0]!.detail).toContain('checksum object says');
  });

  it('fetch warns about missing checksum object', async () => {
    const { dir, planFile } = await archiveRepository();
    const original = await writeSegment(dir, '000000010000000000000005', new Date(), false);
    const destination = path.join(fetchDir, 'segment');

    const result = await runCli(['--config', planFile, 'wal', 'fetch', '--database', 'main', '000000010000000000000005', destination]);

    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(destination)).toEqual(original);
    const warning = result.stderr.split('\n').find((line) => line.includes('has no checksum object'));
    expect(warning).toBeDefined();
    const entry = JSON.parse(warning!) as { level: number; repository: string; file: string };
    expect(entry.level).toBe(40);
    expect(entry.repository).toBe('local');
    expect(entry.file).toBe('000000010000000000000005');
  });
});
