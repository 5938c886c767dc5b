import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { spawnChildWorker, uniqueName } from '../harness';
import { queryDb, shopPlan, snapshotPath, startDeploy } from './deploy-fixture';

const { PendingActivityState } = temporal.api.enums.v1;

/** The identities of the workers that started the activities of a run (from its history), in order. */
async function activityWorkers(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => e.activityTaskStartedEventAttributes?.identity ?? []);
}

/**
 * Issue 16 (several workers): three worker processes (src/worker.ts) on one task queue. A worker SIGKILLed in the
 * middle of a migration hands the activity over to another process, and the deploy succeeds with each migration
 * once; two deploys of one service started at once on these workers: the service lock lets one through and the
 * other fails naming it, and the migrations run once.
 */
describe('three worker processes on one task queue (real stack)', function () {
  this.timeout(600_000);
  const taskQueue = uniqueName('three-workers');
  let workers: Array<ReturnType<typeof spawnChildWorker>> = [];

  before(() => {
    workers = [0, 1, 2].map(() => spawnChildWorker(taskQueue));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.kill()));
  });

  it('a worker killed mid-migration hands the migration over to another process; each migration once', async () => {
    const base = await shopPlan();
    const plan = {
      ...base,
      database: { ...base.database!, migrationsDir: path.join(__dirname, '../fixtures/migrations-slow') },
    };
    const handle = await startDeploy(taskQueue, plan, 'v1');
    let holder: string | undefined;
    for (let i = 0; i < 900 && !holder; i++) {
      const { raw } = await handle.describe();
      const pending = raw.pendingActivities?.find((a) => a.activityType?.name === 'migrateDatabase');
      if (pending?.lastWorkerIdentity && pending.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED)
        holder = pending.lastWorkerIdentity;
      else await sleep(100);
    }
    assert.ok(holder, 'the migration started on a worker');
    const pid = Number(holder.split('@')[0]);
    const doomed = workers.find((w) => w.process.pid === pid);
    assert.ok(doomed, `the migration runs on one of the three worker processes (${holder})`);
    const killedAt = Date.now();
    await doomed.kill();
    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const history = await handle.fetchHistory();
    const scheduled = history.events?.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'migrateDatabase',
    );
    const started = history.events?.find(
      (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '') === String(scheduled?.eventId),
    );
    const again = started?.activityTaskStartedEventAttributes;
    assert.ok(again && (again.attempt ?? 1) >= 2, 'the migration ran again');
    assert.notEqual(again.identity, holder, 'on another worker process');
    const at = Number(started!.eventTime?.seconds ?? 0) * 1000 + Math.floor((started!.eventTime?.nanos ?? 0) / 1e6);
    console.log(
      `    hand-over of migrateDatabase from ${holder} to ${again.identity}: ${((at - killedAt) / 1000).toFixed(1)} s`,
    );
    const applied = await queryDb<{ name: string }>(plan.database.name, 'SELECT name FROM pgmigrations ORDER BY id');
    assert.deepEqual(
      applied.map((r) => r.name),
      ['1700000000000_create-items', '1700000100000_add-items-price-cents', '1700000200000_slow-backfill'],
    );
    assert.equal(readdirSync(snapshotPath(plan)).filter((f) => f.endsWith('.dump')).length, 1, 'one snapshot');
    workers = [...workers.filter((w) => w !== doomed), spawnChildWorker(taskQueue)];
  });

  it('two deploys of one service at once on the workers: the lock lets one through, the migrations run once', async () => {
    const plan = await shopPlan();
    const [a, b] = await Promise.all([startDeploy(taskQueue, plan, 'v1'), startDeploy(taskQueue, plan, 'v1')]);
    const results = await Promise.all([a.result(), b.result()]);
    const outcomes = results.map((r) => r.outcome).sort();
    assert.deepEqual(outcomes, ['failed', 'succeeded'], JSON.stringify(results.map((r) => r.reason)));
    const winner = results[0]!.outcome === 'succeeded' ? a : b;
    const loser = results[0]!.outcome === 'succeeded' ? results[1]! : results[0]!;
    assert.match(
      loser.reason ?? '',
      new RegExp(winner.workflowId),
      'the refused deploy names the one holding the lock',
    );
    const rows = await queryDb<{ n: string }>(plan.database!.name, 'SELECT count(*) AS n FROM pgmigrations');
    assert.equal(Number(rows[0]?.n), 2, 'each migration once');
    const who = new Set([...(await activityWorkers(a)), ...(await activityWorkers(b))]);
    console.log(`    the two deploys' activities ran on ${who.size} worker process(es): ${[...who].join(', ')}`);
  });
});
