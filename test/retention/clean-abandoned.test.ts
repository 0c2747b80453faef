/**
 * The start-up cleanup of `drplan serve`: leftovers of a subject whose lock is
 * free are removed whatever their age, and leftovers under a live lock stay.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadPlan } from '../../src/config/load.js';
import { createContext, type PlanContext } from '../../src/context.js';
import { acquireDatabaseLock } from '../../src/lock/database-lock.js';
import { silentLogger } from '../../src/logging.js';
import { cleanAbandoned } from '../../src/retention/prune.js';
import { writeFakeBackup, writeObject } from '../helpers/fake-repository.js';
import { fileRepository, writePlan } from '../helpers/plan.js';

describe('cleanAbandoned', () => {
  let dir: string;
  let context: PlanContext;

  beforeEach(async () => {
    const repository = await fileRepository('local');
    dir = repository.dir;
    const planFile = await writePlan({ databases: [{ name: 'app', url: 'postgres://app@127.0.0.1:1/app' }], repositories: [repository] });
    context = await createContext(await loadPlan(planFile, process.env), silentLogger);
  });

  it('removes fresh leftovers under a free lock', async () => {
    await writeObject(dir, 'backups/app/backup_20261204_020000.dump.zst', 'partial dump');
    await writeObject(dir, 'backups/app/backup_20261204_020000.globals.sql.zst', 'partial globals');

    const [result] = await cleanAbandoned(context);

    expect(result!.removed.sort()).toEqual(['backups/app/backup_20261204_020000.dump.zst', 'backups/app/backup_20261204_020000.globals.sql.zst']);
    expect(result!.busy).toEqual([]);
    expect(await readdir(path.join(dir, 'backups', 'app'))).toEqual([]);
  });

  it('keeps leftovers under a live lock', async () => {
    await writeObject(dir, 'backups/app/backup_20261204_020000.dump.zst', 'a running backup');
    const lock = await acquireDatabaseLock(context.storages, 'app', { purpose: 'backup', timeoutMs: 0, log: silentLogger });
    try {
      const [result] = await cleanAbandoned(context);

      expect(result!.removed).toEqual([]);
      expect(result!.busy).toEqual(['app']);
      expect(await readdir(path.join(dir, 'backups', 'app'))).toEqual(['backup_20261204_020000.dump.zst']);
    } finally {
      await lock.release();
    }
  });

  it('keeps committed backups', async () => {
    await writeFakeBackup(dir, { id: 'backup_20261204_020000', origin: 'scheduled', startedAt: new Date('2026-12-04T02:00:00Z') });

    const [result] = await cleanAbandoned(context);

    expect(result!.removed).toEqual([]);
    expect((await readdir(path.join(dir, 'backups', 'app'))).length).toBeGreaterThan(0);
  });
});
