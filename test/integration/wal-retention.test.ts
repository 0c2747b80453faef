/**
 * `drplan prune` removes archived WAL older than the oldest kept physical
 * base backup, keeps history files, and keeps everything without one.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { writeFakeBackup, writeFakePhysicalBackup, writeObject } from '../helpers/fake-repository.js';
import { fileRepository, writePlan } from '../helpers/plan.js';
import { segmentName } from '../../src/wal/segment.js';

const HOUR = 3_600_000;

/** Writes segments 1..15 of timeline 1 with checksum objects, a backup history file and a timeline history file. */
async function writeArchive(dir: string, database: string): Promise<void> {
  for (let segno = 1; segno <= 15; segno++) {
    const name = segmentName({ timeline: 1, segno: BigInt(segno) });
    await writeObject(dir, `wal/${database}/${name}.zst`, `segment ${segno}`);
    await writeObject(dir, `wal/${database}/${name}.zst.sum`, '{}');
  }
  await writeObject(dir, `wal/${database}/000000010000000000000003.00000028.backup.zst`, 'backup label');
  await writeObject(dir, `wal/${database}/00000002.history.zst`, 'history');
}

async function walFiles(dir: string, database: string): Promise<string[]> {
  return (await readdir(path.join(dir, 'wal', database))).sort();
}

interface PruneJson {
  repositories: { wal: { database: string; keepFrom: string | null; files: number }[] }[];
}

describe('WAL retention', () => {
  it('deletes WAL before the oldest kept base backup', async () => {
    const repo = await fileRepository('local');
    await writeFakePhysicalBackup(repo.dir, { id: 'base_old', database: 'app', startedAt: new Date(Date.now() - 48 * HOUR), firstSegment: '000000010000000000000005' });
    await writeFakePhysicalBackup(repo.dir, { id: 'base_new', database: 'app', startedAt: new Date(Date.now() - 2 * HOUR), firstSegment: '00000001000000000000000A' });
    await writeArchive(repo.dir, 'app');
    const all = await walFiles(repo.dir, 'app');
    const planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [{ ...repo, retention: { keepLast: 1 } }] });

    const dry = await runCli(['--config', planFile, 'prune', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect((JSON.parse(dry.stdout) as PruneJson).repositories[0]!.wal).toEqual([{ database: 'app', keepFrom: '00000001000000000000000A', files: 10, bytes: expect.any(Number) }]);
    expect(await walFiles(repo.dir, 'app')).toEqual(all);

    const real = await runCli(['--config', planFile, 'prune']);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain('deleted 10 archived WAL files of app before 00000001000000000000000A');
    expect(real.stderr).toContain('archived WAL deleted');
    const kept = await walFiles(repo.dir, 'app');
    const expected = ['00000002.history.zst'];
    for (let segno = 10; segno <= 15; segno++) {
      const name = segmentName({ timeline: 1, segno: BigInt(segno) });
      expected.push(`${name}.zst`, `${name}.zst.sum`);
    }
    expect(kept).toEqual(expected.sort());
  });

  it('keeps all WAL without a physical backup', async () => {
    const repo = await fileRepository('local');
    await writeFakeBackup(repo.dir, { id: 'backup_logical', origin: 'scheduled', startedAt: new Date(Date.now() - HOUR) });
    await writeArchive(repo.dir, 'app');
    const all = await walFiles(repo.dir, 'app');
    const planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://x@127.0.0.1:1/x' }], repositories: [{ ...repo, retention: { keepLast: 1 } }] });
    const real = await runCli(['--config', planFile, 'prune', '--json']);
    expect(real.code, real.stderr).toBe(0);
    expect((JSON.parse(real.stdout) as PruneJson).repositories[0]!.wal).toEqual([]);
    expect(await walFiles(repo.dir, 'app')).toEqual(all);
  });
});
