/**
 * `drplan prune` on fabricated file repositories: metadata and objects are
 * written directly, so no PostgreSQL is needed. The clock is fixed with
 * `--now` at Friday 2026-12-04 12:00 UTC, with one scheduled backup a day at
 * 02:00 UTC going back 100 days.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/config/load.js';
import { silentLogger } from '../../src/logging.js';
import { runPrune } from '../../src/retention/prune.js';
import { FileStorage } from '../../src/storage/file.js';
import type { Storage } from '../../src/storage/storage.js';
import { runCli } from '../helpers/cli.js';
import { fileRepository } from '../helpers/plan.js';
import { sha256, writeFakeBackup, writeFakePhysicalBackup, writeObject, type FakeBackup, type Origin } from '../helpers/fake-repository.js';

const NOW = '2026-12-04T12:00:00Z';
const NOW_MS = Date.parse(NOW);

interface FakeRepository {
  name: string;
  url: string;
  dir: string;
  /** Every key written for each backup id, metadata first. */
  keys: Map<string, string[]>;
}

interface Decision {
  id: string;
  database: string;
  delete: boolean;
  rule: string;
  class: Origin;
  kind: 'logical' | 'physical' | 'files';
  warning?: string;
}

interface Report {
  dryRun: boolean;
  at: string;
  repositories: {
    repository: string;
    decisions: Decision[];
    partials: { key: string; size: number; modified: string }[];
    partialsInGrace: { key: string; size: number; modified: string; removableAt: string }[];
    warnings: string[];
  }[];
}

/** Returns the scheduled backup of the day `daysBack` days before NOW, taken at 02:00 UTC. */
function scheduled(daysBack: number): FakeBackup {
  const startedAt = new Date(Date.UTC(2026, 11, 4 - daysBack, 2));
  const day = startedAt.toISOString().slice(0, 10).replace(/-/g, '');
  return { id: `backup_${day}_020000`, origin: 'scheduled', startedAt };
}

function scheduledRange(from: number, to: number): FakeBackup[] {
  const backups: FakeBackup[] = [];
  for (let daysBack = from; daysBack <= to; daysBack++) backups.push(scheduled(daysBack));
  return backups;
}

/** Writes a dump object without metadata, last modified at `modified`, as an interrupted backup leaves it. */
async function writePartial(dir: string, key: string, modified: Date): Promise<void> {
  await writeObject(dir, key, randomBytes(48));
  await utimes(path.join(dir, ...key.split('/')), modified, modified);
}

async function fabricate(backups: FakeBackup[]): Promise<FakeRepository> {
  const repo = await fileRepository('local');
  const keys = new Map<string, string[]>();
  for (const backup of backups) keys.set(backup.id, await writeFakeBackup(repo.dir, backup));
  return { ...repo, keys };
}

let databaseUrl = '';
/** Plan directories made here. The plan helper removes the repositories it creates. */
const planDirs: string[] = [];

/** Writes a plan with one file repository and the given retention rules. `extra` adds top-level sections such as compliance. */
async function writeRetentionPlan(repo: FakeRepository, retention: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'drplan-plan-'));
  planDirs.push(dir);
  const file = path.join(dir, 'drplan.yaml');
  const plan = { databases: [{ name: 'app', url: databaseUrl }], repositories: [{ name: repo.name, url: repo.url, retention }], ...extra };
  await writeFile(file, stringify(plan));
  return file;
}

/** Reads the size, mtime and content hash of every file under `dir`, keyed by slash-separated relative path. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    result[path.relative(dir, file).split(path.sep).join('/')] = `${info.size} ${info.mtimeMs} ${sha256(await readFile(file))}`;
  }
  return result;
}

/** Lists the keys of the files in the backup areas (`backups/` and `manual/`), sorted. */
async function backupFiles(dir: string): Promise<string[]> {
  return Object.keys(await snapshot(dir))
    .filter((key) => key.startsWith('backups/') || key.startsWith('manual/'))
    .sort();
}

function deletions(report: Report): [string, string, string][] {
  return report.repositories[0]!.decisions.filter((d) => d.delete).map((d): [string, string, string] => [d.class, d.id, d.rule]).sort();
}

function parseReport(stdout: string): Report {
  return JSON.parse(stdout) as Report;
}

// A TCP listener on loopback takes the place of the database, and prune must never open a connection to it.
let fakeDatabase: net.Server;
let databaseConnections = 0;

beforeAll(async () => {
  fakeDatabase = net.createServer((socket) => {
    databaseConnections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => fakeDatabase.listen(0, '127.0.0.1', resolve));
  const { port } = fakeDatabase.address() as net.AddressInfo;
  databaseUrl = `postgres://app:app-password@127.0.0.1:${port}/app`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => fakeDatabase.close(() => resolve()));
  await Promise.all(planDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const MAIN_RULES = { keepLast: 5, keepDays: 14, maxAgeDays: 90 };
const OLD_PARTIAL = 'backups/app/backup_20261201_030000.dump.zst';
const FRESH_PARTIAL = 'backups/app/backup_20261204_110000.dump.zst';
const MANUAL: FakeBackup = { id: 'before_migration', origin: 'manual', startedAt: new Date('2026-10-25T09:30:00Z') };
const PRE_RESTORE: FakeBackup = { id: 'pre_restore_20261202_101500', origin: 'pre_restore', startedAt: new Date('2026-12-02T10:15:00Z') };

/** Builds 100 scheduled backups, with verification records on the newest and on one that the rules delete, plus one manual and one pre_restore backup. */
function mainBackups(): FakeBackup[] {
  const backups = scheduledRange(0, 99);
  backups[0] = { ...backups[0]!, verified: true };
  backups[20] = { ...backups[20]!, verified: true };
  return [...backups, MANUAL, PRE_RESTORE];
}

/** Returns what MAIN_RULES delete from mainBackups(). Days 14-89 are outside keepLast and keepDays, days 90-99 are older than the cap. */
function mainDeletions(): [string, string, string][] {
  const expected: [string, string, string][] = [];
  for (let daysBack = 14; daysBack <= 89; daysBack++) expected.push(['scheduled', scheduled(daysBack).id, 'not selected']);
  for (let daysBack = 90; daysBack <= 99; daysBack++) expected.push(['scheduled', scheduled(daysBack).id, 'maxAgeDays']);
  return expected.sort();
}

async function fabricateMain(): Promise<FakeRepository> {
  const repo = await fabricate(mainBackups());
  await writePartial(repo.dir, OLD_PARTIAL, new Date('2026-12-01T03:05:00Z'));
  await writePartial(repo.dir, FRESH_PARTIAL, new Date(NOW_MS - 3_600_000));
  return repo;
}

describe('prune dry run then real run', () => {
  let repo: FakeRepository;
  let before: Record<string, string>;
  let afterDryRun: Record<string, string>;
  let dry: { code: number; stdout: string; stderr: string };
  let real: { code: number; stdout: string; stderr: string };
  let dryReport: Report;
  let realReport: Report;

  beforeAll(async () => {
    repo = await fabricateMain();
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);
    before = await snapshot(repo.dir);
    dry = await runCli(['--config', planFile, 'prune', '--dry-run', '--now', NOW, '--json']);
    afterDryRun = await snapshot(repo.dir);
    real = await runCli(['--config', planFile, 'prune', '--now', NOW, '--json']);
    dryReport = parseReport(dry.stdout);
    realReport = parseReport(real.stdout);
  });

  it('dry run exits 0', () => {
    expect(dry.code).toBe(0);
    expect(dryReport.dryRun).toBe(true);
    expect(dryReport.at).toBe('2026-12-04T12:00:00.000Z');
  });

  it('dry run changes no file', () => {
    expect(afterDryRun).toEqual(before);
  });

  it('dry run lists deletions with rules', () => {
    expect(dryReport.repositories.length).toBe(1);
    expect(dryReport.repositories[0]!.repository).toBe('local');
    expect(deletions(dryReport)).toEqual(mainDeletions());
  });

  it('dry run keeps newest per class', () => {
    const decisions = dryReport.repositories[0]!.decisions;

    expect(decisions.length).toBe(102);
    expect(decisions.find((d) => d.id === scheduled(0).id)).toEqual({ id: scheduled(0).id, database: 'app', delete: false, rule: 'newest good', class: 'scheduled', kind: 'logical' });
    expect(decisions.find((d) => d.id === scheduled(4).id)?.rule).toBe('keepLast');
    expect(decisions.find((d) => d.id === scheduled(13).id)?.rule).toBe('keepDays');
    expect(decisions.find((d) => d.id === MANUAL.id)).toEqual({ id: MANUAL.id, database: 'app', delete: false, rule: 'newest good', class: 'manual', kind: 'logical' });
    expect(decisions.find((d) => d.id === PRE_RESTORE.id)).toEqual({ id: PRE_RESTORE.id, database: 'app', delete: false, rule: 'newest good', class: 'pre_restore', kind: 'logical' });
    expect(dryReport.repositories[0]!.warnings).toEqual([]);
  });

  it('dry run lists only old partial', () => {
    expect(dryReport.repositories[0]!.partials).toEqual([{ key: OLD_PARTIAL, size: 48, modified: '2026-12-01T03:05:00.000Z' }]);
  });

  it('dry run lists partial in grace', () => {
    // The fresh partial is within partialGrace (24h), so prune keeps it, while repo check reports it.
    expect(dryReport.repositories[0]!.partialsInGrace).toEqual([{ key: FRESH_PARTIAL, size: 48, modified: '2026-12-04T11:00:00.000Z', removableAt: '2026-12-05T11:00:00.000Z' }]);
  });

  it('real run deletes dry-run set', () => {
    expect(real.code).toBe(0);
    expect(realReport.dryRun).toBe(false);
    expect(deletions(realReport)).toEqual(deletions(dryReport));
    expect(realReport.repositories[0]!.partials).toEqual(dryReport.repositories[0]!.partials);
  });

  it('real run removes every object', async () => {
    const remaining = new Set(await backupFiles(repo.dir));
    const deletedIds = deletions(realReport).map(([, id]) => id);

    for (const id of deletedIds) {
      for (const key of repo.keys.get(id)!) expect(remaining.has(key), key).toBe(false);
    }
    expect(repo.keys.get(scheduled(20).id)!.some((key) => key.includes('.verify-'))).toBe(true);
  });

  it('real run leaves kept backups', async () => {
    const deletedIds = new Set(deletions(realReport).map(([, id]) => id));
    const expected = [...repo.keys].filter(([id]) => !deletedIds.has(id)).flatMap(([, keys]) => keys);

    expect(await backupFiles(repo.dir)).toEqual([...expected, FRESH_PARTIAL].sort());
    expect(expected.length).toBe(16 * 3 + 1);
  });

  it('real run keeps object bytes', async () => {
    const after = await snapshot(repo.dir);
    const deletedIds = new Set(deletions(realReport).map(([, id]) => id));

    for (const [id, keys] of repo.keys) {
      if (deletedIds.has(id)) continue;
      for (const key of keys) expect(after[key], key).toBe(before[key]);
    }
    expect(after[FRESH_PARTIAL]).toBe(before[FRESH_PARTIAL]);
  });

  it('real run writes prune record', async () => {
    const names = await readdir(path.join(repo.dir, 'prune'));

    expect(names.length).toBe(1);
    expect(names[0]).toMatch(/^\d{8}T\d{9}Z\.json$/);
    const record = JSON.parse(await readFile(path.join(repo.dir, 'prune', names[0]!), 'utf8')) as {
      formatVersion: number;
      deleted: Decision[];
      partials: { key: string }[];
      warnings: string[];
    };
    expect(record.formatVersion).toBe(1);
    expect(record.deleted.map((d): [string, string, string] => [d.class, d.id, d.rule]).sort()).toEqual(mainDeletions());
    expect(record.partials.map((p) => p.key)).toEqual([OLD_PARTIAL]);
    expect(record.warnings).toEqual([]);
  });

  it('real run releases lock', async () => {
    expect(await readdir(path.join(repo.dir, 'locks'))).toEqual([]);
  });

  it('no warnings on stderr', () => {
    expect(dry.stderr).not.toContain('warning:');
    expect(real.stderr).not.toContain('warning:');
  });
});

describe('prune', () => {
  it('deletes metadata before objects', async () => {
    const repo = await fabricateMain();
    const plan = await loadPlan(await writeRetentionPlan(repo, MAIN_RULES));
    const file = new FileStorage(repo.name, repo.url);
    const deleted: string[] = [];
    const recording: Storage = {
      name: file.name,
      url: file.url,
      put: (key, body, options) => file.put(key, body, options),
      putIfAbsent: (key, body) => file.putIfAbsent(key, body),
      get: (key) => file.get(key),
      stat: (key) => file.stat(key),
      list: (prefix) => file.list(prefix),
      delete: async (key) => {
        deleted.push(key);
        await file.delete(key);
      },
      check: () => file.check(),
      listIncomplete: () => file.listIncomplete(),
      abortIncomplete: (write) => file.abortIncomplete(write),
    };

    await runPrune({ plan, storages: [recording], log: silentLogger }, { dryRun: false, now: new Date(NOW) });

    for (const [, id] of mainDeletions()) {
      const keys = repo.keys.get(id)!;
      const order = keys.map((key) => deleted.indexOf(key));
      expect(order.every((index) => index >= 0), id).toBe(true);
      expect(Math.min(...order), id).toBe(order[0]);
    }
    const withRecord = repo.keys.get(scheduled(20).id)!;
    expect(withRecord.length).toBe(4);
    expect(deleted.indexOf(withRecord[3]!)).toBeGreaterThan(deleted.indexOf(withRecord[0]!));
  });

  it('flagged backups do not count', async () => {
    // Days 0, 1 and 4 are flagged by the size checks, and day 6 failed its verification.
    const flags = [{ code: 'size.small', message: 'stored size 64 bytes is below 0.5 x the median 4096 bytes of the last 7 backups' }];
    const backups = scheduledRange(0, 19).map((backup, daysBack) => {
      if ([0, 1, 4].includes(daysBack)) return { ...backup, flags };
      if (daysBack === 6) return { ...backup, verified: false };
      return backup;
    });
    const repo = await fabricate(backups);
    const planFile = await writeRetentionPlan(repo, { keepLast: 5 });

    const result = await runCli(['--config', planFile, 'prune', '--dry-run', '--now', NOW, '--json']);

    expect(result.code).toBe(0);
    const decisions = parseReport(result.stdout).repositories[0]!.decisions;
    const keptRules = decisions
      .filter((d) => !d.delete)
      .map((d) => [d.id, d.rule])
      .sort();
    expect(keptRules).toEqual(
      [
        [scheduled(0).id, 'bad, newest'],
        [scheduled(1).id, 'bad, newest'],
        [scheduled(2).id, 'newest good'],
        [scheduled(3).id, 'keepLast'],
        [scheduled(5).id, 'keepLast'],
        [scheduled(7).id, 'keepLast'],
        [scheduled(8).id, 'keepLast'],
      ].sort(),
    );
    expect(decisions.find((d) => d.id === scheduled(4).id)?.rule).toBe('bad, superseded');
    expect(decisions.find((d) => d.id === scheduled(6).id)?.rule).toBe('bad, superseded');
    expect(decisions.filter((d) => d.rule === 'not selected').length).toBe(11);
  });

  it('keepLast counts each kind', async () => {
    const repo = await fabricate(scheduledRange(0, 3));
    const physical = [0, 1, 2, 3].map((daysBack) => ({ id: `base_${scheduled(daysBack).id}`, database: 'app', startedAt: new Date(scheduled(daysBack).startedAt.getTime() + 3_600_000) }));
    const twoDaysAgo = new Date(NOW_MS - 2 * 86_400_000);
    for (const backup of physical) {
      await writeFakePhysicalBackup(repo.dir, { ...backup, firstSegment: '000000010000000000000001', withObjects: true });
      for (const suffix of ['.base.tar.zst', '.manifest.zst']) await utimes(path.join(repo.dir, 'backups', 'app', `${backup.id}${suffix}`), twoDaysAgo, twoDaysAgo);
    }
    const planFile = await writeRetentionPlan(repo, { keepLast: 2, partialGrace: '1h' });

    const result = await runCli(['--config', planFile, 'prune', '--now', NOW, '--json']);

    expect(result.code, result.stderr).toBe(0);
    const report = parseReport(result.stdout).repositories[0]!;
    const deleted = report.decisions.filter((d) => d.delete).map((d) => [d.kind, d.id, d.rule]);
    expect(deleted.sort()).toEqual(
      [
        ['logical', scheduled(2).id, 'not selected'],
        ['logical', scheduled(3).id, 'not selected'],
        ['physical', physical[2]!.id, 'not selected'],
        ['physical', physical[3]!.id, 'not selected'],
      ].sort(),
    );
    // Committed base backup objects are old enough to count as partial, so only their metadata keeps them.
    expect(report.partials).toEqual([]);
    const kept = (await backupFiles(repo.dir)).filter((key) => key.includes('base_'));
    expect(kept).toEqual(
      [physical[0]!, physical[1]!].flatMap((b) => [`backups/app/${b.id}.base.tar.zst`, `backups/app/${b.id}.manifest.zst`, `backups/app/${b.id}.meta.json`]).sort(),
    );
  });

  it('compliance cap applies alone', async () => {
    const repo = await fabricate(scheduledRange(0, 99));
    const planFile = await writeRetentionPlan(repo, { keepLast: 5, keepDays: 14 }, { compliance: { maxRetentionDays: 60 } });

    const result = await runCli(['--config', planFile, 'prune', '--dry-run', '--now', NOW, '--json']);

    expect(result.code).toBe(0);
    const expected: [string, string, string][] = [];
    for (let daysBack = 14; daysBack <= 59; daysBack++) expected.push(['scheduled', scheduled(daysBack).id, 'not selected']);
    for (let daysBack = 60; daysBack <= 99; daysBack++) expected.push(['scheduled', scheduled(daysBack).id, 'maxAgeDays']);
    expect(deletions(parseReport(result.stdout))).toEqual(expected.sort());
  });

  it('cap on newest good warns', async () => {
    const repo = await fabricate(scheduledRange(91, 99));
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);

    const result = await runCli(['--config', planFile, 'prune', '--now', NOW, '--json']);

    const warning = 'the compliance cap of 90 days deletes backup_20260904_020000, the newest good backup of app; no good backup remains';
    expect(result.code).toBe(0);
    expect(result.stderr.split('\n').filter((line) => line.startsWith('warning: '))).toEqual([`warning: repository local: ${warning}`]);
    expect(parseReport(result.stdout).repositories[0]!.warnings).toEqual([warning]);
    expect(await backupFiles(repo.dir)).toEqual([]);
  });

  it('old manual backup not last', async () => {
    // The cap deletes the only manual backup, but scheduled backups of app remain, so no warning is due.
    const oldManual: FakeBackup = { id: 'before_migration', origin: 'manual', startedAt: new Date('2026-08-31T09:30:00Z') };
    const repo = await fabricate([...scheduledRange(0, 20), oldManual]);
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);

    const result = await runCli(['--config', planFile, 'prune', '--dry-run', '--now', NOW, '--json']);

    expect(result.code).toBe(0);
    const report = parseReport(result.stdout);
    expect(report.repositories[0]!.decisions.find((d) => d.id === oldManual.id)).toEqual({ id: oldManual.id, database: 'app', delete: true, rule: 'maxAgeDays', class: 'manual', kind: 'logical' });
    expect(report.repositories[0]!.warnings).toEqual([]);
    expect(result.stderr).not.toContain('warning:');
  });

  it('text output names rules', async () => {
    const repo = await fabricateMain();
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);

    const result = await runCli(['--config', planFile, 'prune', '--now', NOW]);

    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('repository local: deleted 86 of 102 backups, 1 partial objects; kept 1 partial objects within retention.partialGrace');
    for (const [origin, id, rule] of mainDeletions()) expect(lines).toContain(`  deleted app/${id} (logical, ${origin}): ${rule}`);
    expect(lines).toContain(`  keep app/${scheduled(0).id} (logical, scheduled): newest good`);
    expect(lines).toContain(`  keep app/${MANUAL.id} (logical, manual): newest good`);
    expect(lines).toContain(`  deleted partial object ${OLD_PARTIAL} (48 B, modified 2026-12-01T03:05:00.000Z)`);
    expect(lines).toContain(`  keep partial object ${FRESH_PARTIAL} (48 B, modified 2026-12-04T11:00:00.000Z): within retention.partialGrace, removable after 2026-12-05T11:00:00.000Z`);
    expect(lines.filter((line) => line.startsWith('  deleted ')).length).toBe(87);
  });

  it('never connects to database', async () => {
    const repo = await fabricateMain();
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);
    const connectionsBefore = databaseConnections;

    const result = await runCli(['--config', planFile, 'prune', '--now', NOW, '--json']);

    expect(result.code).toBe(0);
    expect(databaseConnections).toBe(connectionsBefore);
    expect(databaseConnections).toBe(0);
  });

  it('invalid --now exits 2', async () => {
    const repo = await fabricateMain();
    const planFile = await writeRetentionPlan(repo, MAIN_RULES);
    const before = await snapshot(repo.dir);

    const result = await runCli(['--config', planFile, 'prune', '--now', 'garbage']);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('drplan: error: --now must be an ISO 8601 time with a time zone, got "garbage"');
    expect(result.stdout).toBe('');
    expect(await snapshot(repo.dir)).toEqual(before);
  });
});
