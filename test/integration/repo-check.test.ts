/**
 * `drplan repo check` on a fabricated file repository: metadata and objects
 * are written directly, so no PostgreSQL is needed. Each case damages its
 * own copy of a consistent repository in one way and expects exactly that
 * one problem.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { writeFakeBackup, writeObject, type FakeBackup } from '../helpers/fake-repository.js';

const BACKUPS: FakeBackup[] = [
  { id: 'backup_20261204_020000', origin: 'scheduled', startedAt: new Date('2026-12-04T02:00:00.000Z'), verified: true },
  { id: 'backup_20261203_020000', origin: 'scheduled', startedAt: new Date('2026-12-03T02:00:00.000Z') },
  { id: 'backup_20261202_020000', origin: 'scheduled', startedAt: new Date('2026-12-02T02:00:00.000Z') },
  { id: 'before_migration', origin: 'manual', startedAt: new Date('2026-11-20T09:30:00.000Z') },
  { id: 'pre_restore_20261201_101500', origin: 'pre_restore', startedAt: new Date('2026-12-01T10:15:00.000Z') },
];

/** A loopback port that nothing listens on, because repo check must not need the database. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let template: string;
let databaseUrl: string;

beforeAll(async () => {
  databaseUrl = `postgres://app:app-password@127.0.0.1:${await closedPort()}/app`;
  template = await mkdtemp(path.join(tmpdir(), 'drplan-repo-template-'));
  for (const backup of BACKUPS) await writeFakeBackup(template, backup);
});

afterAll(async () => {
  await rm(template, { recursive: true, force: true });
});

/** Copies the consistent repository to a new directory and writes a plan that names it. */
async function freshRepository(): Promise<{ dir: string; planFile: string }> {
  const repo = await fileRepository('local');
  await cp(template, repo.dir, { recursive: true, preserveTimestamps: true });
  const planFile = await writePlan({ databases: [{ name: 'app', url: databaseUrl }], repositories: [repo] });
  return { dir: repo.dir, planFile };
}

function objectPath(dir: string, key: string): string {
  return path.join(dir, ...key.split('/'));
}

async function check(planFile: string, json = false): Promise<CliResult> {
  return runCli(['--config', planFile, 'repo', 'check', ...(json ? ['--json'] : [])]);
}

describe('repo check', () => {
  it('consistent repository exits 0', async () => {
    const { planFile } = await freshRepository();

    const result = await check(planFile);

    expect(result.code).toBe(0);
    expect(result.stdout).toBe('all 1 repositories are consistent\n');
  });

  it('consistent repository JSON empty', async () => {
    const { planFile } = await freshRepository();

    const result = await check(planFile, true);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([]);
  });

  it('deleted dump is missing object', async () => {
    const { dir, planFile } = await freshRepository();
    const key = 'backups/app/backup_20261202_020000.dump.zst';
    await unlink(objectPath(dir, key));
    const detail = `metadata backups/app/backup_20261202_020000.meta.json names ${key}, which does not exist`;

    const text = await check(planFile);
    const json = await check(planFile, true);

    expect(text.code).toBe(4);
    expect(text.stdout).toBe(`local: missing object: ${key}: ${detail}\n`);
    expect(text.stderr).toContain('drplan: error: 1 repository problem(s) found');
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toEqual([{ repository: 'local', kind: 'missing object', key, detail }]);
  });

  it('truncated dump is size mismatch', async () => {
    const { dir, planFile } = await freshRepository();
    const key = 'manual/app/before_migration.dump.zst';
    await truncate(objectPath(dir, key), 10);
    const detail = 'stored 10 bytes, metadata says 64';

    const text = await check(planFile);
    const json = await check(planFile, true);

    expect(text.code).toBe(4);
    expect(text.stdout).toBe(`local: size mismatch: ${key}: ${detail}\n`);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toEqual([{ repository: 'local', kind: 'size mismatch', key, detail }]);
  });

  it('orphan object without metadata', async () => {
    const { dir, planFile } = await freshRepository();
    const key = 'backups/app/backup_20261130_150000.dump.zst';
    const modified = new Date('2026-11-30T15:02:00Z');
    await writeObject(dir, key, randomBytes(48));
    await utimes(objectPath(dir, key), modified, modified);
    const detail = '48 bytes, modified 2026-11-30T15:02:00.000Z; a partial or uncommitted backup';

    const text = await check(planFile);
    const json = await check(planFile, true);

    expect(text.code).toBe(4);
    expect(text.stdout).toBe(`local: object without metadata: ${key}: ${detail}\n`);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toEqual([{ repository: 'local', kind: 'object without metadata', key, detail }]);
  });

  it('invalid JSON is unreadable metadata', async () => {
    const { dir, planFile } = await freshRepository();
    const key = 'backups/app/backup_20261203_020000.meta.json';
    await writeFile(objectPath(dir, key), '{not json');
    const detail = `repository local: metadata ${key} is not valid JSON`;

    const text = await check(planFile);
    const json = await check(planFile, true);

    expect(text.code).toBe(4);
    expect(text.stdout).toBe(`local: unreadable metadata: ${key}: ${detail}\n`);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toEqual([{ repository: 'local', kind: 'unreadable metadata', key, detail }]);
  });
});
