import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/errors.js';
import type { RecoveryPoint } from '../../src/postgres/recovery-server.js';
import type { PitrPlan } from '../../src/restore/pitr-plan.js';
import { assertReachedArchiveEnd } from '../../src/restore/pitr.js';
import { parseRecoveryTarget } from '../../src/restore/pitr-target.js';
import { buildInventory, checkRecoveryChain } from '../../src/wal/continuity.js';
import { DEFAULT_WAL_SEGMENT_SIZE, segmentName } from '../../src/wal/segment.js';

/** Returns a plan for a backup in segments 2 to 3 of timeline 1 with WAL archived up to segment 9. Only the fields the check reads are real. */
function plan(target = parseRecoveryTarget({ target: 'latest' })): PitrPlan {
  const names = Array.from({ length: 8 }, (_, i) => segmentName({ timeline: 1, segno: BigInt(i + 2) }));
  const inventory = buildInventory(names, new Map(), DEFAULT_WAL_SEGMENT_SIZE);
  const chain = checkRecoveryChain(inventory, { backupId: 'base1', timeline: 1, firstSegment: names[0]!, lastSegment: names[1]! }, { timeline: 1 });
  return { target, timeline: 1, chain, inventory, meta: { wal: { walSegmentSize: DEFAULT_WAL_SEGMENT_SIZE } } } as unknown as PitrPlan;
}

const point = (lsn: string): RecoveryPoint => ({ lastTransactionTime: null, lastReplayedLsn: lsn, timeline: 2 });

describe('reached archive end', () => {
  it('accepts the newest segment', () => {
    expect(() => assertReachedArchiveEnd(plan(), point('0/9000028'), '/data/log/drplan-recovery.log')).not.toThrow();
  });

  it('rejects a recovery that stopped early', () => {
    const check = () => assertReachedArchiveEnd(plan(), point('0/5FFFF80'), '/data/log/drplan-recovery.log');
    expect(check).toThrow(IntegrityError);
    expect(check).toThrow(
      'recovery to the latest archived WAL stopped early: the last replayed LSN 0/5FFFF80 lies in segment 000000010000000000000005, but the archive holds WAL up to 000000010000000000000009',
    );
    expect(check).toThrow(expect.objectContaining({ hint: expect.stringContaining('/data/log/drplan-recovery.log') }) as Error);
  });

  it('ignores targets before the end', () => {
    const lsnTarget = plan(parseRecoveryTarget({ targetLsn: '0/5000000' }));
    expect(() => assertReachedArchiveEnd(lsnTarget, point('0/5000000'), '/data/log/drplan-recovery.log')).not.toThrow();
  });
});
