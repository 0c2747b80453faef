import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pack as createPack } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, UsageError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';
import { extractArchive, safeRelativeName } from '../../src/restore/files-extract.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink'; body?: string; linkname?: string; mode?: number };

/** Builds a tar archive in memory from `entries`, the way a hand-made or altered archive could look. */
async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = createPack();
  for (const entry of entries) {
    const { body, ...header } = entry;
    pack.entry({ mode: 0o644, ...header }, body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('extractArchive', () => {
  let work: string;
  let target: string;

  beforeEach(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'drplan-extract-'));
    target = path.join(work, 'target');
    await mkdir(target);
  });

  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function extract(entries: Entry[], overwrite = false) {
    return extractArchive(Readable.from([await tarOf(entries)]), target, { overwrite, log: silentLogger });
  }

  it('rejects a ".." entry', async () => {
    const error = await extract([{ name: '../escaped.txt', body: 'x' }]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toBe('archive entry "../escaped.txt" would be written outside the target directory');
    expect(await readdir(work)).toEqual(['target']);
  });

  it('rejects an absolute entry', async () => {
    const error = await extract([{ name: '/tmp/absolute.txt', body: 'x' }]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toContain('"/tmp/absolute.txt" would be written outside');
  });

  it('rejects a write through an archived link', async () => {
    const outside = path.join(work, 'outside');
    await mkdir(outside);
    const error = await extract([
      { name: 'link', type: 'symlink', linkname: outside },
      { name: 'link/planted.txt', body: 'x' },
    ]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toBe(`archive entry link/planted.txt would be written through the symbolic link ${path.join(target, 'link')}`);
    expect(await readdir(outside)).toEqual([]);
    expect(await readlink(path.join(target, 'link'))).toBe(outside);
  });

  it('replaces a link with --force, never follows it', async () => {
    const outside = path.join(work, 'victim.txt');
    await writeFile(outside, 'keep me');
    await symlink(outside, path.join(target, 'file.txt'));
    const refused = await extract([{ name: 'file.txt', body: 'new' }]).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(UsageError);

    await extract([{ name: 'file.txt', body: 'new' }], true);
    expect(await readFile(outside, 'utf8')).toBe('keep me');
    expect((await lstat(path.join(target, 'file.txt'))).isFile()).toBe(true);
    expect(await readFile(path.join(target, 'file.txt'), 'utf8')).toBe('new');
  });

  it('counts entries, files and bytes', async () => {
    const summary = await extract([
      { name: 'dir/', type: 'directory', mode: 0o750 },
      { name: 'dir/a.txt', body: 'abc', mode: 0o600 },
      { name: 'dir/empty', body: '' },
      { name: 'dir/to-a', type: 'symlink', linkname: 'a.txt' },
    ]);
    expect(summary).toEqual({ entries: 4, fileCount: 2, fileBytes: 3 });
    expect((await lstat(path.join(target, 'dir'))).mode & 0o7777).toBe(0o750);
    expect((await lstat(path.join(target, 'dir', 'a.txt'))).mode & 0o7777).toBe(0o600);
  });
});

describe('safeRelativeName', () => {
  it('normalizes harmless names', () => {
    expect(safeRelativeName('srv/data/')).toBe('srv/data');
    expect(safeRelativeName('./srv//data/a')).toBe('srv/data/a');
  });

  it('rejects escaping names', () => {
    for (const name of ['..', 'a/../../b', '/etc/passwd', '', './']) {
      expect(() => safeRelativeName(name), name).toThrow(IntegrityError);
    }
  });
});
