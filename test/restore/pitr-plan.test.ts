/**
 * Choosing the base backup and checking the window, on a file repository
 * written by hand: two physical backups (metadata only) and archived WAL
 * names with chosen modification times. No PostgreSQL is needed, because
 * planning reads only the repository.
 */
import { rm, utimes } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { planSchema } from '../../src/config/schema.js';
import { createContext, type PlanContext } from '../../src/context.js';
import { IntegrityError, NotFoundError, UsageError } from '../../src/errors.js';
import { silentLogger } from '../../src/logging.js';
import { planPitr } from '../../src/restore/pitr-plan.js';
import { parseRecoveryTarget, type TargetOptions } from '../../src/restore/pitr-target.js';
import { compressBuffer } from '../../src/wal/codec.js';
import type { TimelineRequest } from '../../src/wal/continuity.js';
import { writeFakePhysicalBackup, writeObject } from '../helpers/fake-repository.js';
import { fileRepository } from '../helpers/plan.js';

const DATABASE = { name: 'app', url: 'postgres://app@127.0.0.1:5432/app' };
const segment = (timeline: number, segno: number) => `${timeline.toString(16).padStart(8, '0')}00000000${segno.toString(16).toUpperCase().padStart(8, '0')}`;

let dir: string;
let context: PlanContext;

async function writePhysical(id: string, finishedAt: string, firstSegno: number, stopLsn: string): Promise<void> {
  await writeFakePhysicalBackup(dir, {
    id,
    database: 'app',
    startedAt: new Date(Date.parse(finishedAt) - 60_000),
    firstSegment: segment(1, firstSegno),
    wal: { startLsn: `0/${firstSegno.toString(16).toUpperCase()}000028`, stopLsn, systemIdentifier: '7400000000000000001' },
  });
}

async function writeWal(name: string, modified: string): Promise<void> {
  const key = `wal/app/${name}.zst`;
  await writeObject(dir, key, await compressBuffer(Buffer.from(name), 'zstd', undefined));
  await utimes(path.join(dir, key), new Date(modified), new Date(modified));
}

async function writeHistory(timeline: number, text: string): Promise<void> {
  await writeObject(dir, `wal/app/${timeline.toString(16).padStart(8, '0')}.history.zst`, await compressBuffer(Buffer.from(text), 'zstd', undefined));
}

async function plan(options: TargetOptions, timeline: TimelineRequest = 'latest') {
  return planPitr(context, DATABASE, parseRecoveryTarget(options), timeline);
}

async function rejection(options: TargetOptions, timeline: TimelineRequest = 'latest'): Promise<Error> {
  return plan(options, timeline).then(
    () => {
      throw new Error('expected the plan to be rejected');
    },
    (error: Error) => error,
  );
}

beforeEach(async () => {
  const repo = await fileRepository('local');
  dir = repo.dir;
  context = await createContext(planSchema.parse({ databases: [DATABASE], repositories: [{ name: 'local', url: repo.url }] }), silentLogger);
  await writePhysical('backup_20261204_100000', '2026-12-04T10:01:00.000Z', 3, '0/3000100');
  await writePhysical('backup_20261204_120000', '2026-12-04T12:01:00.000Z', 6, '0/6000100');
  for (let segno = 3; segno <= 8; segno++) await writeWal(segment(1, segno), `2026-12-04T${String(7 + segno).padStart(2, '0')}:30:00.000Z`);
});

describe('planPitr', () => {
  it('picks the newest backup finished before a time', async () => {
    expect((await plan({ targetTime: '2026-12-04T11:00:00Z' })).entry.id).toBe('backup_20261204_100000');
    expect((await plan({ targetTime: '2026-12-04T12:30:00Z' })).entry.id).toBe('backup_20261204_120000');
  });

  it('picks by stop LSN for an LSN', async () => {
    expect((await plan({ targetLsn: '0/5000000' })).entry.id).toBe('backup_20261204_100000');
    expect((await plan({ targetLsn: '0/6000100' })).entry.id).toBe('backup_20261204_120000');
  });

  it('picks the newest for latest and xid', async () => {
    const latest = await plan({ target: 'latest' });
    expect(latest.entry.id).toBe('backup_20261204_120000');
    expect(latest.chain.until).toBe(segment(1, 8));
    expect((await plan({ targetXid: '1000' })).entry.id).toBe('backup_20261204_120000');
  });

  it('reports the window', async () => {
    const { window } = await plan({ target: 'latest' });
    expect(window).toEqual({
      oldestBackup: { id: 'backup_20261204_100000', finishedAt: '2026-12-04T10:01:00.000Z', stopLsn: '0/3000100' },
      newestWal: { name: segment(1, 8), archivedAt: '2026-12-04T15:30:00.000Z', endLsn: '0/9000000' },
    });
  });

  it('window ends at newest segment', async () => {
    // An old segment copied again later (a re-push, a restored repository) gets a new modification time.
    await utimes(path.join(dir, 'wal', 'app', `${segment(1, 4)}.zst`), new Date('2026-12-04T16:00:00.000Z'), new Date('2026-12-04T16:00:00.000Z'));
    const { window } = await plan({ target: 'latest' });
    expect(window.newestWal).toEqual({ name: segment(1, 8), archivedAt: '2026-12-04T15:30:00.000Z', endLsn: '0/9000000' });
    expect((await rejection({ targetTime: '2026-12-04T15:45:00Z' })).message).toContain('it is after the newest archived WAL');
  });

  it('window follows recovered timeline', async () => {
    // Timeline 3 branched off at the end of segment 8, after timeline 1 stopped; timeline 1 is not on the path of --target-timeline 3.
    await writeHistory(3, '1\t0/9000000\tno recovery target specified\n');
    await writeWal(segment(3, 9), '2026-12-04T16:30:00.000Z');
    expect((await plan({ target: 'latest' })).window.newestWal).toEqual({ name: segment(3, 9), archivedAt: '2026-12-04T16:30:00.000Z', endLsn: '0/A000000' });
    expect((await plan({ target: 'latest' })).timeline).toBe(3);
    expect((await plan({ target: 'latest' }, 1)).window.newestWal!.name).toBe(segment(1, 8));
  });

  it('refuses latest when the parent timeline went on after a fork', async () => {
    // A test restore promoted at 0/7000000 archived timeline 3, while timeline 1 went on to archive segments 7 and 8.
    await writeHistory(3, '1\t0/7000000\tno recovery target specified\n');
    await writeWal(segment(3, 7), '2026-12-04T14:45:00.000Z');
    for (const options of [{ target: 'latest' }, { targetTime: '2026-12-04T14:00:00Z' }] as TargetOptions[]) {
      const error = await rejection(options);
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toContain(
        `timeline 1 continued to ${segment(1, 8)}, so the archive contains two histories after that point: timeline 1 (newest archived ${segment(1, 8)}), timeline 3 (newest archived ${segment(3, 7)})`,
      );
    }
    const one = await plan({ target: 'latest' }, 1);
    expect([one.timeline, one.chain.until]).toEqual([1, segment(1, 8)]);
    const three = await plan({ target: 'latest' }, 3);
    expect([three.timeline, three.chain.until]).toEqual([3, segment(3, 7)]);
  });

  it('names a timeline without history for a time inside the window', async () => {
    // 11:00 is inside the window but before the newest backup finished, the only one the timeline check used to keep.
    const error = await rejection({ targetTime: '2026-12-04T11:00:00Z' }, 9);
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe('timeline 9 cannot be reached from base backup backup_20261204_120000 on timeline 1: no 00000009.history file is archived');
  });

  it('rejects a time before the oldest backup', async () => {
    const error = await rejection({ targetTime: '2026-12-04T10:00:00Z' });
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(
      'cannot recover database app to time 2026-12-04 10:00:00+00:00 (UTC): it is before the oldest base backup finished; ' +
        'the recoverable window is from 2026-12-04T10:01:00.000Z (base backup backup_20261204_100000 finished, LSN 0/3000100) ' +
        `to 2026-12-04T15:30:00.000Z (newest archived WAL ${segment(1, 8)} stored, ending at LSN 0/9000000), times in UTC`,
    );
  });

  it('rejects a time after the newest WAL', async () => {
    const error = await rejection({ targetTime: '2026-12-04T15:30:01Z' });
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toContain('it is after the newest archived WAL; the recoverable window is from 2026-12-04T10:01:00.000Z');
  });

  it('rejects LSNs outside the window', async () => {
    expect((await rejection({ targetLsn: '0/3000000' })).message).toContain('cannot recover database app to LSN 0/3000000: it is before the end of the oldest base backup');
    expect((await rejection({ targetLsn: '0/9000000' })).message).toContain('it is at or past the end of the newest archived WAL segment');
    expect((await plan({ targetLsn: '0/8FFFFFF' })).entry.id).toBe('backup_20261204_120000');
  });

  it('names a missing segment', async () => {
    await rm(path.join(dir, 'wal', 'app', `${segment(1, 7)}.zst`));
    const error = await rejection({ target: 'latest' });
    expect(error).toBeInstanceOf(IntegrityError);
    expect(error.message).toBe(`database app: WAL segment ${segment(1, 7)} is missing from the archive, so base backup backup_20261204_120000 cannot be recovered past it`);
    // An LSN target before the gap needs no segment after it.
    expect((await plan({ targetLsn: '0/6500000' })).chain.until).toBe(segment(1, 6));
  });

  it('skips a backup that failed verification', async () => {
    const record = {
      formatVersion: 1,
      backupId: 'backup_20261204_120000',
      database: 'app',
      kind: 'checksum',
      ok: false,
      startedAt: '2026-12-04T13:00:00.000Z',
      finishedAt: '2026-12-04T13:00:01.000Z',
      failures: ['backups/app/backup_20261204_120000.base.tar.zst: sha256 mismatch'],
      checks: [],
    };
    await writeObject(dir, 'backups/app/backup_20261204_120000.verify-20261204T130000000Z.json', JSON.stringify(record));
    expect((await plan({ target: 'latest' })).entry.id).toBe('backup_20261204_100000');
  });

  it('needs a physical backup', async () => {
    await rm(path.join(dir, 'backups'), { recursive: true });
    const error = await rejection({ target: 'latest' });
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toBe('no good physical base backup of database app in any repository');
  });

  it('needs archived WAL', async () => {
    await rm(path.join(dir, 'wal'), { recursive: true });
    const error = await rejection({ target: 'latest' });
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toContain('no WAL is archived; the recoverable window is from 2026-12-04T10:01:00.000Z (base backup backup_20261204_100000 finished, LSN 0/3000100) to nothing archived yet');
  });
});
