import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Activities } from '../../src/activities';
import type { deployService } from '../../src/workflows';
import { spawnChildWorker, uniqueName, useWorker } from '../harness';
import { queryDb, shopPlan, sideEffects, snapshotPath, startDeploy, startRollback } from './deploy-fixture';
import { startDrill } from './drill-fixture';

const { PendingActivityState } = temporal.api.enums.v1;

/** The identities of the workers that started the activities of a run (from its history), in order. */
async function activityWorkers(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => e.activityTaskStartedEventAttributes?.identity ?? []);
}

/** The activity types a run scheduled, in order (from its history). */
async function activityTypes(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

/**
 * Two deploys of v1 of one new service started at once on `taskQueue`; returns the promises of the service lock that
 * they broke, checked from their results, their histories and the real things ([] when the lock held): one succeeds
 * and the other fails on the lock naming the holder before it did anything (nothing scheduled after the lock but the
 * record of its outcome); one snapshot, each migration once, one release started and running, one release live.
 */
async function lockBrokenByTwoDeploys(taskQueue: string): Promise<string[]> {
  const plan = await shopPlan();
  const handles = await Promise.all([startDeploy(taskQueue, plan, 'v1'), startDeploy(taskQueue, plan, 'v1')]);
  const results = await Promise.all(handles.map((h) => h.result()));
  const broken: string[] = [];
  const won = handles.filter((_, i) => results[i]!.outcome === 'succeeded');
  if (won.length !== 1) broken.push(`${won.length} of the 2 deploys succeeded`);
  for (const [i, handle] of handles.entries()) {
    const { outcome, reason = '' } = results[i]!;
    if (outcome === 'succeeded') continue;
    const holder = won[0]?.workflowId ?? '(none)';
    if (!reason.includes(`is busy: deploy ${holder} is running`))
      broken.push(`the ${outcome} deploy does not name the holder ${holder}: ${reason}`);
    const types = await activityTypes(handle);
    const after = types.slice(types.indexOf('acquireServiceLock') + 1).filter((t) => t !== 'recordRelease');
    if (!types.includes('acquireServiceLock') || after.length > 0)
      broken.push(`the ${outcome} deploy ran past the lock: ${after.join(', ') || 'no acquireServiceLock'}`);
  }
  const seen = await sideEffects(plan);
  const expected = { migrations: 2, snapshots: 1, releasesStarted: 1, releasesRunning: 1, live: ['v1 succeeded'] };
  const actual = { ...seen, live: seen.history.filter((h) => h.endsWith('succeeded')), history: undefined };
  for (const [what, want] of Object.entries(expected)) {
    const got = actual[what as keyof typeof actual];
    if (JSON.stringify(got) !== JSON.stringify(want))
      broken.push(`${what}: ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`);
  }
  return broken;
}

/**
 * Issue 16 (several workers): three worker processes (src/worker.ts) on one task queue. Deploys, a rollback and a
 * drill started at once spread over them and all succeed; a worker SIGKILLed in the middle of a migration hands the
 * activity over to another process, and the deploy succeeds with each migration once; two deploys of one service
 * started at once on these workers: the service lock lets one through and the other fails naming it, with one
 * snapshot, each migration once and one release. The same checks run on a worker whose lock lets everything through
 * (a test-only wrapper), and must find what it broke: they would catch a missing lock.
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
  // The negative control of the lock test: an in-process worker whose acquireServiceLock takes nothing.
  const lockless = useWorker('no-lock', () => ({
    wrapActivities: (activities): Activities => ({ ...activities, acquireServiceLock: async () => {} }),
  }));

  it('deploys, a rollback and a drill started at once are spread over the three processes, and all succeed', async () => {
    const [a, b, c] = await Promise.all([shopPlan(), shopPlan(), shopPlan()]);
    const runs: WorkflowHandle[] = [];
    const done = async (started: Promise<WorkflowHandle<typeof deployService>>, outcome = 'succeeded') => {
      const handle = await started;
      runs.push(handle);
      const result = await handle.result();
      assert.equal(result.outcome, outcome, `${handle.workflowId}: ${result.reason}`);
    };
    await Promise.all([
      (async () => {
        await done(startDeploy(taskQueue, a, 'v1'));
        await done(startDeploy(taskQueue, a, 'v2'));
        await done(startRollback(taskQueue, a));
      })(),
      (async () => {
        await done(startDeploy(taskQueue, b, 'v1'));
        const drill = await startDrill(taskQueue, b);
        runs.push(drill);
        const result = await drill.result();
        assert.equal(result.outcome, 'passed', `${drill.workflowId}: ${result.reason}`);
      })(),
      (async () => {
        await done(startDeploy(taskQueue, c, 'v1'));
        await done(startDeploy(taskQueue, c, 'v2'));
      })(),
    ]);
    const byWorker = new Map<string, number>();
    for (const run of runs)
      for (const identity of await activityWorkers(run)) byWorker.set(identity, (byWorker.get(identity) ?? 0) + 1);
    const pids = workers.map((w) => String(w.process.pid));
    for (const identity of byWorker.keys())
      assert.ok(pids.includes(identity.split('@')[0]!), `${identity} is one of the three worker processes (${pids})`);
    console.log(
      `    ${runs.length} runbooks, their activities by worker process: ` +
        [...byWorker].map(([identity, n]) => `${identity} ${n}`).join(', '),
    );
    assert.ok(byWorker.size > 1, 'the activities ran on more than one worker process');
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

  it('two deploys of one service at once: the lock lets one through, the other names it; one snapshot, each migration once, one release', async () => {
    const [held, missing] = await Promise.all([
      lockBrokenByTwoDeploys(taskQueue),
      lockBrokenByTwoDeploys(lockless.taskQueue),
    ]);
    assert.deepEqual(held, [], 'the service lock held on the three worker processes');
    console.log(`    without the lock, the checks found: ${missing.join('; ')}`);
    assert.notDeepEqual(missing, [], 'the same checks catch a missing lock');
  });
});
