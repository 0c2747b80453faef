/**
 * File-set backups through the CLI, against a file repository and the local
 * S3 server: backup, restore, verify, list and prune. No PostgreSQL is
 * needed; the plan's database URL points at a closed loopback port and is
 * never used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess } from '../../src/util/process.js';
import { runCli } from '../helpers/cli.js';
import { fileRepository, s3Env, s3Repository, writePlan, type TestRepository } from '../helpers/plan.js';
import { startS3Server, type S3TestServer } from '../helpers/s3.js';

const DATABASE_URL = 'postgres://app@127.0.0.1:1/app';
const LONG_NAME = `${'long-file-name-'.repeat(12)}end.bin`;
const DEPLOY_LABEL = 'deploy-1234';

interface FilesMeta {
  id: string;
  kind: string;
  fileset: string;
  label?: string;
  paths: string[];
  fileCount: number;
  fileBytes: number;
  entries: string[];
  archive: { key: string; bytes: number; sha256: string };
}

/** One file system entry as compared after a restore. */
interface Snapshot {
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  mtimeSeconds: number;
  sha256?: string;
  target?: string;
}

/** Describes every entry under `root` by its path relative to `root`. */
async function snapshotTree(root: string): Promise<Record<string, Snapshot>> {
  const result: Record<string, Snapshot> = {};
  for (const relative of await readdir(root, { recursive: true })) {
    const file = path.join(root, relative);
    const info = await lstat(file);
    const common = { mode: info.mode & 0o7777, mtimeSeconds: Math.floor(info.mtimeMs / 1000) };
    if (info.isSymbolicLink()) result[relative] = { type: 'symlink', mode: 0, mtimeSeconds: common.mtimeSeconds, target: await readlink(file) };
    else if (info.isDirectory()) result[relative] = { type: 'directory', ...common };
    else result[relative] = { type: 'file', ...common, sha256: createHash('sha256').update(await readFile(file)).digest('hex') };
  }
  return result;
}

/** Builds the source tree: binary and empty files, nested directories, a link, a long name, a few MB of random bytes, and files to exclude. */
async function buildSource(root: string): Promise<{ data: string; config: string }> {
  const data = path.join(root, 'srv', 'data');
  const config = path.join(root, 'etc', 'app');
  await mkdir(path.join(data, 'nested', 'deeper'), { recursive: true });
  await mkdir(path.join(data, 'cache'), { recursive: true });
  await mkdir(config, { recursive: true });
  await writeFile(path.join(data, 'image.bin'), randomBytes(70_000));
  await writeFile(path.join(data, 'empty'), '');
  await writeFile(path.join(data, 'nested', 'deeper', 'notes.txt'), 'nested text\n');
  await writeFile(path.join(data, 'nested', LONG_NAME), randomBytes(1234));
  await writeFile(path.join(data, 'large.bin'), randomBytes(3 * 1024 * 1024 + 17));
  await writeFile(path.join(data, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(data, 'run.sh'), 0o750);
  await writeFile(path.join(data, 'secret.key'), randomBytes(32));
  await chmod(path.join(data, 'secret.key'), 0o600);
  await symlink('nested/deeper/notes.txt', path.join(data, 'notes-link'));
  await writeFile(path.join(data, 'upload.tmp'), 'partial upload');
  await writeFile(path.join(data, 'cache', 'blob'), randomBytes(100));
  await writeFile(path.join(config, 'app.yaml'), 'port: 8080\n');
  // Fixed times in the past show that restore sets them rather than keeping "now".
  const old = new Date('2024-03-05T06:07:08Z');
  for (const file of ['image.bin', 'empty', 'large.bin', 'run.sh', path.join('nested', 'deeper', 'notes.txt')]) await utimes(path.join(data, file), old, old);
  await utimes(path.join(data, 'nested', 'deeper'), old, old);
  await chmod(path.join(data, 'nested'), 0o700);
  return { data, config };
}

/** Lists the archive with the standard tools: `zstd -dc FILE | tar -t`. */
async function listWithStandardTools(file: string): Promise<string[]> {
  const zstd = startProcess('zstd', ['-dc', file], { operation: 'zstd -dc' });
  const tar = startProcess('tar', ['-t'], { stdin: zstd.stdout, operation: 'tar -t' });
  let output = '';
  tar.stdout.setEncoding('utf8');
  tar.stdout.on('data', (chunk: string) => {
    output += chunk;
  });
  await Promise.all([zstd.done, tar.done]);
  return output.split('\n').filter((line) => line !== '');
}

describe('file-set backups', () => {
  let s3: S3TestServer;
  let local: TestRepository & { dir: string };
  let planFile: string;
  let env: Record<string, string>;
  let work: string;
  let source: { data: string; config: string };
  let meta: FilesMeta;

  beforeAll(async () => {
    s3 = await startS3Server();
    await s3.createBucket('file-sets');
    local = await fileRepository('local');
    work = await mkdtemp(path.join(tmpdir(), 'drplan-files-'));
    source = await buildSource(path.join(work, 'source'));
    env = s3Env(s3);
    planFile = await writePlan({
      databases: [{ name: 'app', url: DATABASE_URL }],
      repositories: [local, s3Repository('offsite', s3, 'file-sets')],
      files: [
        { name: 'data', paths: [source.data, source.config], exclude: ['*.tmp', 'cache'] },
        { name: 'missing', paths: [path.join(work, 'no-such-dir')] },
      ],
    });
    const backup = await runCli(['--config', planFile, 'backup', '--files', 'data', '--label', DEPLOY_LABEL, '--json'], { env });
    expect(backup.stderr).not.toContain('error');
    expect(backup.code).toBe(0);
    meta = JSON.parse(backup.stdout) as FilesMeta;
  });

  afterAll(async () => {
    await s3?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('backup records label, paths and entries', () => {
    const dataEntry = source.data.slice(1);
    expect(meta.kind).toBe('files');
    expect(meta.fileset).toBe('data');
    expect(meta.label).toBe(DEPLOY_LABEL);
    expect(meta.paths).toEqual([source.data, source.config]);
    expect(meta.archive.key).toBe(`files/data/${meta.id}.tar.zst`);
    expect(meta.fileCount).toBe(8);
    expect(meta.fileBytes).toBe(70_000 + 12 + 1234 + 3 * 1024 * 1024 + 17 + 18 + 32 + 11);
    expect(meta.entries).toContain(`${dataEntry}/nested/${LONG_NAME}`);
    expect(meta.entries).toContain(`${dataEntry}/notes-link`);
    expect(meta.entries).toContain(`${source.config.slice(1)}/app.yaml`);
    expect(meta.entries.filter((e) => e.includes('upload.tmp') || e.includes('cache'))).toEqual([]);
  });

  it('archive reads with zstd and tar', async () => {
    const listed = await listWithStandardTools(path.join(local.dir, ...meta.archive.key.split('/')));
    expect(listed).toEqual(meta.entries);
  });

  it('restore round trip keeps bytes, mode and mtime', async () => {
    const target = path.join(work, 'restored');
    const result = await runCli(['--config', planFile, 'restore', meta.id, '--to', target], { env });
    expect(result.stderr).not.toContain('error');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`restored ${meta.id} from repository local into ${target}: 8 files`);

    const expected = await snapshotTree(source.data);
    delete expected['upload.tmp'];
    delete expected['cache'];
    delete expected[path.join('cache', 'blob')];
    expect(await snapshotTree(path.join(target, source.data))).toEqual(expected);
    expect(await snapshotTree(path.join(target, source.config))).toEqual(await snapshotTree(source.config));
  });

  it('restore into non-empty directory is refused', async () => {
    const target = path.join(work, 'occupied');
    await mkdir(target);
    await writeFile(path.join(target, 'keep.txt'), 'mine');
    const result = await runCli(['--config', planFile, 'restore', meta.id, '--to', target], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--to ${target} is not empty`);
    expect(result.stderr).toContain('--force');
    expect(await readdir(target)).toEqual(['keep.txt']);
  });

  it('restore with --force overwrites and keeps others', async () => {
    const target = path.join(work, 'forced');
    const first = await runCli(['--config', planFile, 'restore', meta.id, '--to', target], { env });
    expect(first.code).toBe(0);
    const restoredConfig = path.join(target, source.config, 'app.yaml');
    await writeFile(restoredConfig, 'port: 1\n');
    await writeFile(path.join(target, 'keep.txt'), 'mine');

    const forced = await runCli(['--config', planFile, 'restore', meta.id, '--to', target, '--force'], { env });
    expect(forced.stderr).not.toContain('error');
    expect(forced.code).toBe(0);
    expect(await readFile(restoredConfig, 'utf8')).toBe('port: 8080\n');
    expect(await readFile(path.join(target, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('verify --deep extracts and compares', async () => {
    const result = await runCli(['--config', planFile, 'verify', meta.id, '--deep', '--json'], { env });
    expect(result.code).toBe(0);
    const record = JSON.parse(result.stdout) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    expect(record.ok).toBe(true);
    expect(record.checks).toContainEqual({ name: 'extract', ok: true, detail: `8 files, ${meta.fileBytes} bytes extracted, as the metadata records` });
  });

  it('database options with a file-set backup fail', async () => {
    const withTarget = await runCli(['--config', planFile, 'restore', meta.id, '--target-database', 'copy'], { env });
    expect(withTarget.code).toBe(2);
    expect(withTarget.stderr).toContain(`backup ${meta.id} is a backup of file set data, not of a database`);
    expect(withTarget.stderr).toContain('--to DIR');

    const mixed = await runCli(['--config', planFile, 'restore', meta.id, '--to', path.join(work, 'x'), '--in-place'], { env });
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('--to restores a file-set backup and takes no database option (--in-place)');
  });

  it('backup with --files and --database fails', async () => {
    const result = await runCli(['--config', planFile, 'backup', '--files', 'data', '--database', 'app'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--files and --database cannot be used together');
  });

  it('invalid label is rejected', async () => {
    const result = await runCli(['--config', planFile, 'backup', '--files', 'data', '--label', 'deploy 12; rm'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid --label "deploy 12; rm"');
  });

  it('missing configured path is a config error', async () => {
    const missing = path.join(work, 'no-such-dir');
    const result = await runCli(['--config', planFile, 'backup', '--files', 'missing'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`files[missing].paths[0]: path ${missing} of file set missing does not exist`);
    expect(await readdir(path.join(local.dir, 'files'))).toEqual(['data']);
  });

  it('flipped byte fails verify and restore falls back', async () => {
    const stored = path.join(local.dir, ...meta.archive.key.split('/'));
    const bytes = await readFile(stored);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(stored, bytes);

    const verify = await runCli(['--config', planFile, 'verify', meta.id], { env });
    expect(verify.code).toBe(4);
    expect(verify.stdout).toContain(`FAIL local ${meta.archive.key}`);
    expect(verify.stdout).toContain(`ok   offsite ${meta.archive.key}`);
    expect(verify.stderr).toContain('SHA-256 mismatch');

    const target = path.join(work, 'fallback');
    const restore = await runCli(['--config', planFile, 'restore', meta.id, '--to', target], { env });
    expect(restore.code).toBe(0);
    expect(restore.stderr).toContain('warning: copy rejected, used the next repository: local:');
    expect(restore.stdout).toContain(`from repository offsite into ${target}`);
    const large = await readFile(path.join(target, source.data, 'large.bin'));
    expect(large.equals(await readFile(path.join(source.data, 'large.bin')))).toBe(true);
  });
});
