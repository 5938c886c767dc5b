import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { approveUpdate } from '../../src/shared/messages';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { useWorker } from '../harness';
import { withTransientFailures, type ChaosLog } from '../helpers/chaos';
import {
  queryDb,
  releaseHistory,
  shopPlan,
  snapshotPath,
  startDeploy,
  startRollback,
  waitingAt,
} from './deploy-fixture';
import { startDrill } from './drill-fixture';

/**
 * Issue 16 (chaos, transient failures): with 30% of the activities' first attempts failing (half before they run,
 * half after they ran, their completion lost), a deploy, a rollback that restores the database and a drill still reach
 * their outcomes, and each side effect happens once: one snapshot per deploy, each migration once, one release
 * history row per runbook, one drill row, no scratch database left.
 */
describe('30% transient activity failures (real stack)', function () {
  this.timeout(600_000);
  const log: ChaosLog = { before: [], after: [] };
  const { taskQueue } = useWorker('chaos', () => ({
    wrapActivities: (activities) =>
      withTransientFailures(activities, 0.3, log, process.env.RUNBOOK_TEST_CHAOS_SEED ?? 'chaos'),
  }));

  const rows = async (database: string, sql: string) => Number((await queryDb<{ n: string }>(database, sql))[0]?.n);

  it('deploy v1 and v2, a rollback with a database restore, and a drill: right outcomes, every side effect once', async () => {
    const base = await shopPlan();
    const plan: ResolvedService = {
      ...base,
      rollback: {
        ...base.rollback,
        dbRestoreApprovers: ['alice', 'bob'],
        approvals: { ...base.rollback.approvals, timeoutMs: 120_000 },
      },
    };
    const database = plan.database!.name;

    const v1 = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(v1.outcome, 'succeeded', v1.reason);
    const v2 = await (await startDeploy(taskQueue, plan, 'v2')).result();
    assert.equal(v2.outcome, 'succeeded', v2.reason);
    assert.equal(await rows(database, 'SELECT count(*) AS n FROM pgmigrations'), 2, 'each migration once');
    const snapshots = () =>
      readdirSync(snapshotPath(plan))
        .filter((f) => f.endsWith('.dump'))
        .sort();
    assert.equal(snapshots().length, 2, `one snapshot per deploy: ${snapshots().join(', ')}`);

    const rollback = await startRollback(taskQueue, plan, { restoreSnapshotId: v2.snapshotId!, toVersion: 'v1' });
    await waitingAt(rollback, 'restore-database', 120_000);
    await rollback.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'chaos' }] });
    const rolledBack = await rollback.result();
    assert.equal(rolledBack.outcome, 'succeeded', rolledBack.reason);
    assert.equal(rolledBack.state.restore?.verified, true);
    assert.equal(snapshots().length, 3, 'and one safety snapshot before the restore');
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.headers.get('x-app-version'), 'v1');

    const drill = await startDrill(taskQueue, plan);
    const drilled = await drill.result();
    assert.equal(drilled.outcome, 'passed', drilled.reason);
    assert.equal(
      await rows(ORCHESTRATOR_DB, `SELECT count(*) AS n FROM drill_runs WHERE workflow_id = '${drill.workflowId}'`),
      1,
      'one drill row',
    );
    assert.equal(
      await rows('postgres', `SELECT count(*) AS n FROM pg_database WHERE datname LIKE '${database}_drill_%'`),
      0,
      'no scratch database left',
    );

    const history = await releaseHistory(plan.service);
    assert.deepEqual(
      history.map((h) => [h.version, h.outcome]),
      [
        ['v1', 'succeeded'],
        ['v2', 'succeeded'],
        ['v1', 'succeeded'],
      ],
      'one release history row per deploy and rollback',
    );
    // The chaos happened: both kinds, on many activities.
    assert.ok(log.before.length >= 3 && log.after.length >= 3, JSON.stringify(log));
  });
});
