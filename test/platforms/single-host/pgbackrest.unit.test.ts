import assert from 'node:assert/strict';
import type { BaseBackup } from '../../../src/platforms/continuous-backups';
import { backupsAllExpire, backupsToExpire } from '../../../src/platforms/single-host/pgbackrest';

const DAY = 86_400_000;
const NOW = 100 * DAY;

/** A backup that stopped `daysAgo` days before NOW. */
const b = (label: string, type: BaseBackup['type'], daysAgo: number, prior?: string): BaseBackup => ({
  label,
  type,
  ...(prior ? { prior } : {}),
  startedAtMs: NOW - daysAgo * DAY - 1_000,
  stoppedAtMs: NOW - daysAgo * DAY,
  bytes: 1,
  repoBytes: 1,
});

// Three weekly fulls, each with diffs, and an incr on the newest diff.
const backups = [
  b('F1', 'full', 21),
  b('F1_D1', 'diff', 18, 'F1'),
  b('F2', 'full', 14),
  b('F2_D1', 'diff', 11, 'F2'),
  b('F3', 'full', 7),
  b('F3_D1', 'diff', 4, 'F3'),
  b('F3_D2', 'diff', 2, 'F3'),
  b('F3_D2_I1', 'incr', 1, 'F3_D2'),
];

describe('pgBackRest retention (which backups expire)', () => {
  it('full: N keeps the N newest fulls with their chains', () => {
    assert.deepEqual(backupsToExpire(backups, { full: 2 }, [], NOW), ['F1', 'F1_D1']);
    assert.deepEqual(backupsToExpire(backups, { full: 1 }, [], NOW), ['F1', 'F1_D1', 'F2', 'F2_D1']);
  });

  it('days: N expires a full once its whole chain is older than N days; the newest full always stays', () => {
    assert.deepEqual(backupsToExpire(backups, { days: 12 }, [], NOW), ['F1', 'F1_D1']);
    assert.deepEqual(backupsToExpire(backups, { days: 10 }, [], NOW), ['F1', 'F1_D1', 'F2', 'F2_D1']);
    assert.deepEqual(backupsToExpire(backups, { days: 0.5 }, [], NOW), ['F1', 'F1_D1', 'F2', 'F2_D1']);
  });

  it('diff: N keeps the N newest diffs, with the incrs that depend on them', () => {
    assert.deepEqual(backupsToExpire(backups, { diff: 1 }, [], NOW), ['F1_D1', 'F2_D1', 'F3_D1']);
  });

  it('never expires a backup that is kept (a running restore needs it), nor what it depends on', () => {
    assert.deepEqual(backupsToExpire(backups, { full: 1 }, ['F1_D1'], NOW), ['F2', 'F2_D1']);
  });

  it('with several services on the cluster, a backup goes only when every policy lets it go', () => {
    // shop keeps 1 full, billing keeps 12 days: only what both would expire
    assert.deepEqual(backupsAllExpire(backups, [{ full: 1 }, { days: 12 }], [], NOW), ['F1', 'F1_D1']);
    assert.deepEqual(backupsAllExpire(backups, [{ full: 1 }, { full: 3 }], [], NOW), []);
    assert.deepEqual(backupsAllExpire(backups, [], [], NOW), []);
  });
});
