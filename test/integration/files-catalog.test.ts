/**
 * File-set backups in the catalog, `drplan list` and `drplan prune`, beside
 * fabricated database backups of a database with the same name, so that a
 * filter that mixed the two would show. No PostgreSQL is needed.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBackup, readCatalog } from '../../src/backup/catalog.js';
import { loadPlan } from '../../src/config/load.js';
import { createContext, type PlanContext } from '../../src/context.js';
import { silentLogger } from '../../src/logging.js';
import { runCli } from '../helpers/cli.js';
import { writeFakeBackup, writeObject } from '../helpers/fake-repository.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

const DATABASE_BACKUPS = [
  { id: 'backup_20261201_020000', origin: 'scheduled' as const, startedAt: new Date('2026-12-01T02:00:00Z') },
  { id: 'backup_20261202_020000', origin: 'scheduled' as const, startedAt: new Date('2026-12-02T02:00:00Z') },
];
const PARTIAL_KEY = 'files/app/files_20200101_000000.tar.zst';

interface ListRow {
  id: string;
  kind: string;
  database: string;
  label: string | null;
}

interface PruneReport {
  repositories: { decisions: { id: string; database: string; delete: boolean; class: string; fileset?: true }[]; partials: { key: string }[] }[];
}

describe('file sets in catalog, list and prune', () => {
  let repoDir: string;
  let planFile: string;
  let sourceDir: string;
  let context: PlanContext;
  const fileIds: string[] = [];

  beforeAll(async () => {
    const repo = await fileRepository('local');
    repoDir = repo.dir;
    sourceDir = await mkdtemp(path.join(tmpdir(), 'drplan-files-source-'));
    await mkdir(path.join(sourceDir, 'site'));
    await writeFile(path.join(sourceDir, 'site', 'index.html'), '<h1>shop</h1>\n');
    for (const backup of DATABASE_BACKUPS) await writeFakeBackup(repo.dir, backup);
    planFile = await writePlan({
      databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }],
      repositories: [{ ...repo, retention: { keepLast: 1, partialGrace: '1h' } }],
      files: [{ name: 'app', paths: [sourceDir] }],
    });
    // Two backups with default ids: the second waits for the next second to get its own id.
    for (let i = 0; i < 2; i++) {
      const result = await runCli(['--config', planFile, 'backup', '--files', 'app']);
      expect(result.code).toBe(0);
      fileIds.push(result.stdout.trim());
    }
    await writeObject(repo.dir, PARTIAL_KEY, 'left by an interrupted run');
    const old = new Date('2026-01-01T00:00:00Z');
    await utimes(path.join(repo.dir, ...PARTIAL_KEY.split('/')), old, old);
    context = await createContext(await loadPlan(planFile, process.env), silentLogger);
  });

  afterAll(async () => {
    if (sourceDir) await rm(sourceDir, { recursive: true, force: true });
  });

  it('catalog filters keep kinds apart', async () => {
    const all = await readCatalog(context);
    expect(all.entries.map((e) => e.id).sort()).toEqual([...DATABASE_BACKUPS.map((b) => b.id), ...fileIds].sort());

    const database = await readCatalog(context, 'app');
    expect(database.entries.map((e) => e.meta.kind)).toEqual(['logical', 'logical']);

    const fileset = await readCatalog(context, { fileset: 'app' });
    expect(fileset.entries.map((e) => e.id)).toEqual([...fileIds].reverse());
  });

  it('latest for a database skips file sets', async () => {
    const all = await readCatalog(context);
    // The file-set backups are newer than every database backup.
    expect(findBackup(all, 'latest', 'app').id).toBe('backup_20261202_020000');
    expect(findBackup(all, 'latest').id).toBe('backup_20261202_020000');
    expect(findBackup(all, 'latest', { fileset: 'app' }).id).toBe(fileIds[1]);
    expect(() => findBackup(all, fileIds[0]!, 'app')).toThrow(`backup ${fileIds[0]} not found for database app`);
  });

  it('list shows kinds and filters', async () => {
    const all = await runCli(['--config', planFile, 'list', '--json']);
    expect(all.code).toBe(0);
    const rows = JSON.parse(all.stdout) as ListRow[];
    expect(rows.map((r) => [r.kind, r.database, r.id])).toEqual([
      ['files', 'app', fileIds[1]],
      ['files', 'app', fileIds[0]],
      ['logical', 'app', 'backup_20261202_020000'],
      ['logical', 'app', 'backup_20261201_020000'],
    ]);

    const databaseOnly = JSON.parse((await runCli(['--config', planFile, 'list', '--database', 'app', '--json'])).stdout) as ListRow[];
    expect(databaseOnly.map((r) => r.kind)).toEqual(['logical', 'logical']);
    const filesOnly = JSON.parse((await runCli(['--config', planFile, 'list', '--files', 'app', '--json'])).stdout) as ListRow[];
    expect(filesOnly.map((r) => r.id)).toEqual([fileIds[1], fileIds[0]]);

    const table = await runCli(['--config', planFile, 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+KIND\s+DATABASE\s+FINISHED/);
    expect(table.stdout).toMatch(new RegExp(`${fileIds[1]}\\s+files\\s+app\\s`));
  });

  it('restore --to rejects a database backup', async () => {
    const target = path.join(sourceDir, 'never-created');
    const result = await runCli(['--config', planFile, 'restore', 'backup_20261202_020000', '--to', target]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('backup backup_20261202_020000 is a logical backup of database app; --to restores file-set backups only');
    expect(result.stderr).toContain('--target-database');

    const latest = await runCli(['--config', planFile, 'restore', 'latest', '--to', target]);
    expect(latest.code).toBe(2);
    expect(latest.stderr).toContain('"latest" needs the file set: pass --files NAME');
  });

  it('restore latest of a file set', async () => {
    const target = path.join(sourceDir, 'restored');
    const result = await runCli(['--config', planFile, 'restore', 'latest', '--files', 'app', '--to', target]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`restored ${fileIds[1]} from repository local into ${target}: 1 files`);
    expect(await readFile(path.join(target, sourceDir, 'site', 'index.html'), 'utf8')).toBe('<h1>shop</h1>\n');
  });

  it('prune applies retention per file set', async () => {
    const result = await runCli(['--config', planFile, 'prune', '--json']);
    expect(result.stderr).not.toContain('error');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as PruneReport;
    const decisions = report.repositories[0]!.decisions.map((d) => [d.fileset === true, d.id, d.delete]).sort();
    expect(decisions).toEqual(
      [
        [false, 'backup_20261201_020000', true],
        [false, 'backup_20261202_020000', false],
        [true, fileIds[0], true],
        [true, fileIds[1], false],
      ].sort(),
    );
    expect(report.repositories[0]!.partials.map((p) => p.key)).toEqual([PARTIAL_KEY]);

    expect((await readdir(path.join(repoDir, 'files', 'app'))).sort()).toEqual([`${fileIds[1]}.meta.json`, `${fileIds[1]}.tar.zst`]);
    expect((await readdir(path.join(repoDir, 'backups', 'app'))).sort()).toEqual([
      'backup_20261202_020000.dump.zst',
      'backup_20261202_020000.globals.sql.zst',
      'backup_20261202_020000.meta.json',
    ]);
    const locks = await readdir(path.join(repoDir, 'locks'), { recursive: true, withFileTypes: true });
    expect(locks.filter((l) => l.isFile()).map((l) => l.name)).toEqual([]);
  });
});
