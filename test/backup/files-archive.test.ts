import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { pack as createPack } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryName, excludeMatcher, packFileset } from '../../src/backup/files-archive.js';
import { IntegrityError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';

describe('excludeMatcher', () => {
  const root = '/srv/shop';
  const cases: [string[], string, boolean][] = [
    [['*.tmp'], 'upload.tmp', true],
    [['*.tmp'], 'nested/deep/upload.tmp', true],
    [['*.tmp'], 'upload.tmp.keep', false],
    [['cache'], 'cache', true],
    [['cache'], 'nested/cache', true],
    [['cache'], 'cached', false],
    [['logs/*.gz'], 'logs/app.gz', true],
    [['logs/*.gz'], 'other/logs/app.gz', false],
    [['build/**'], 'build/a/b.o', true],
    [['.*'], '.env', true],
    [['/srv/shop/private'], 'private', true],
    [['/srv/shop/private'], 'public/private', false],
    [[], 'anything', false],
  ];
  for (const [patterns, relative, excluded] of cases) {
    it(`${JSON.stringify(patterns)} on ${relative}`, () => {
      expect(excludeMatcher(patterns)(relative, path.join(root, relative))).toBe(excluded);
    });
  }

  it('never excludes the configured root by a relative pattern', () => {
    expect(excludeMatcher(['*'])('', root)).toBe(false);
  });
});

describe('entryName', () => {
  it('drops the leading slash', () => {
    expect(entryName('/srv/shop/uploads/a.png')).toBe('srv/shop/uploads/a.png');
    expect(entryName('/srv//shop/./uploads/')).toBe('srv/shop/uploads');
  });
});

describe('packFileset', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'drplan-pack-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fails when a file grows while read', async () => {
    const file = path.join(dir, 'growing.log');
    await writeFile(file, randomBytes(8 * 1024 * 1024));
    const pack = createPack();
    const walk = packFileset({ name: 'logs', paths: [dir] }, pack, silentLogger, new AbortController().signal);
    walk.catch(() => undefined);
    // The walker waits on the tar stream's back-pressure, so the file grows before it has read to the end.
    let appended = false;
    let received = 0;
    const consumed = (async () => {
      for await (const chunk of pack) {
        received += (chunk as Buffer).length;
        // Past the first megabytes the file is open and half read.
        if (appended || received < 2 * 1024 * 1024) continue;
        appended = true;
        await appendFile(file, 'one more line\n');
      }
    })().catch(() => undefined);
    const error = await walk.catch((err: unknown) => err);
    pack.destroy();
    await consumed;
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).code).toBe('files.changed');
    expect((error as IntegrityError).message).toContain(`file ${file} changed while it was archived`);
  });

  it('skips a file removed during the walk', async () => {
    await writeFile(path.join(dir, 'a-large.bin'), randomBytes(8 * 1024 * 1024));
    await writeFile(path.join(dir, 'b-removed.txt'), 'gone soon');
    const warnings: { path: string; msg: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { path: string; msg: string }) });
    const pack = createPack();
    let removed = false;
    let received = 0;
    const consumed = (async () => {
      for await (const chunk of pack) {
        received += (chunk as Buffer).length;
        // The directory was listed before the large file; the small one goes while the large one is read.
        if (removed || received < 2 * 1024 * 1024) continue;
        removed = true;
        await unlink(path.join(dir, 'b-removed.txt'));
      }
    })();
    const summary = await packFileset({ name: 'x', paths: [dir] }, pack, log, new AbortController().signal);
    await consumed;
    expect(removed).toBe(true);
    expect(summary.entries).toEqual([`${dir.slice(1)}/`, `${dir.slice(1)}/a-large.bin`]);
    expect(summary.fileCount).toBe(1);
    expect(warnings.map((w) => [w.path, w.msg])).toEqual([[path.join(dir, 'b-removed.txt'), 'skipped: removed while the backup ran']]);
  });

  it('counts files and lists entries in order', async () => {
    await mkdir(path.join(dir, 'b'));
    await writeFile(path.join(dir, 'b', 'two'), '22');
    await writeFile(path.join(dir, 'a'), '1');
    const pack = createPack();
    const consumed = (async () => {
      for await (const _chunk of pack) void _chunk;
    })();
    const summary = await packFileset({ name: 'x', paths: [dir, path.join(dir, 'b')] }, pack, silentLogger, new AbortController().signal);
    await consumed;
    const base = dir.slice(1);
    // The second configured path lies inside the first, so its entries are written once.
    expect(summary).toEqual({ fileCount: 2, fileBytes: 3, entries: [`${base}/`, `${base}/a`, `${base}/b/`, `${base}/b/two`] });
  });
});
