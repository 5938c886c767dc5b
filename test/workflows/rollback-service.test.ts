import assert from 'node:assert/strict';
import { readFileSync, truncateSync } from 'node:fs';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { startLoad } from '../../src/load-generator';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { approveUpdate, rejectSignal } from '../../src/shared/messages';
import { spawnChildWorker, startWorker, uniqueName, useWorker } from '../harness';
import {
  liveV2,
  queryDb,
  releaseHistory,
  runner,
  shopPlan,
  startDeploy,
  startRollback,
  waitForState,
  waitingAt,
  withGates,
  snapshotPath,
} from './deploy-fixture';

const restoreApprovers = (plan: ResolvedService): ResolvedService => ({
  ...plan,
  rollback: {
    ...plan.rollback,
    dbRestoreApprovers: ['alice', 'bob'],
    approvals: { ...plan.rollback.approvals, timeoutMs: 60_000 },
  },
});

/** v1 live, then v2 live, with the restore approvers; v2's pre-migration snapshot was taken while v1 was live. */
const v1ThenV2 = async (taskQueue: string, between?: (plan: ResolvedService) => Promise<void>) =>
  liveV2(taskQueue, { plan: restoreApprovers(await shopPlan()), beforeV2: between });

async function post(plan: ResolvedService, name: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  assert.equal(res.status, 201, await res.text());
}

const countItems = async (database: string) =>
  Number((await queryDb<{ n: string }>(database, 'SELECT count(*) AS n FROM items'))[0]?.n);

describe('rollbackService on the real stack', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('rollback');

  it('after a good deploy: back to the previous release in one switch, under load with zero failed requests', async () => {
    const { plan } = await v1ThenV2(taskQueue);
    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 100, maxSeconds: 60 });
    const result = await (await startRollback(taskQueue, plan)).result();
    const figures = await load.stop();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.equal(result.version, 'v1');
    assert.equal(result.stableVersion, 'v2');
    assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
    assert.match(
      result.state.timeline.find((t) => t.phase === 'plan' && t.message.startsWith('plan:'))?.message ?? '',
      /from v2 to v1; database: untouched/,
    );
    assert.equal(
      await runner().get(plan.service, plan.environment, result.state.stable!.releaseId),
      undefined,
      'v2 stopped',
    );
    assert.equal(figures.failed, 0, JSON.stringify(figures));
    const history = await releaseHistory(plan.service);
    assert.deepEqual(
      history.map((r) => [r.version, r.outcome]),
      [
        ['v1', 'succeeded'],
        ['v2', 'succeeded'],
        ['v1', 'succeeded'],
      ],
    );
  });

  it('the live release crashed: the rollback starts it again (and a deploy refuses to start until then)', async () => {
    const plan = restoreApprovers(await shopPlan());
    const v1 = await (await startDeploy(taskQueue, plan, 'v1')).result();
    await runner().stop(plan.service, plan.environment, v1.state.candidate!.releaseId, 1_000);
    const refused = await (await startDeploy(taskQueue, plan, 'v2')).result();
    assert.equal(refused.outcome, 'failed');
    assert.match(refused.reason ?? '', /takes traffic but its process is not running; run `runbook rollback/);
    const result = await (await startRollback(taskQueue, plan)).result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.equal(result.version, 'v1');
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-app-version'), 'v1');
  });

  it('with a database restore: approved with four-eyes, safety snapshot, maintenance, verified against the manifest, swapped', async () => {
    const { plan, snapshotId } = await v1ThenV2(taskQueue, async (p) => {
      for (const name of ['apple', 'pear', 'plum']) await post(p, name);
    });
    await post(plan, 'written-after-the-snapshot');
    const database = plan.database!.name;
    assert.equal(await countItems(database), 4);

    const handle = await startRollback(taskQueue, plan, { restoreSnapshotId: snapshotId, toVersion: 'v1' });
    const waiting = await waitingAt(handle, 'restore-database');
    assert.deepEqual(
      waiting.restore?.lost.find((t) => t.table === 'public.items'),
      { table: 'public.items', rowsNow: 4, rowsInSnapshot: 3 },
    );
    assert.deepEqual(waiting.waitingFor?.approvers, ['alice', 'bob']);
    await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{ by: 'dave' }] }), (err: unknown) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.match(String(err.cause?.message), /dave is not an approver of the rollback .* \(allowed: alice, bob\)/);
      return true;
    });
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'restore approved' }] });
    const result = await handle.result();

    assert.equal(result.outcome, 'succeeded', result.reason);
    const restore = result.state.restore!;
    assert.equal(restore.verified, true);
    assert.ok(restore.safetySnapshotId && restore.replacedAs && restore.restoredInto);
    assert.ok(
      result.state.timeline.some((t) => t.phase === 'maintenance'),
      'maintenance was on',
    );
    assert.equal(await countItems(database), 3, 'the database is back at the snapshot');
    assert.equal(await countItems(restore.replacedAs), 4, 'the replaced database is kept');
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.status, 200, 'maintenance is off again');
    assert.equal(res.headers.get('x-app-version'), 'v1');
  });

  it('a truncated snapshot is refused before maintenance, with nothing changed', async () => {
    const { plan, snapshotId } = await v1ThenV2(taskQueue);
    const dump = snapshotPath(plan, snapshotId);
    truncateSync(dump, Math.floor(readFileSync(dump).length / 2));
    const result = await (await startRollback(taskQueue, plan, { restoreSnapshotId: snapshotId })).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', new RegExp(`snapshot ${snapshotId} cannot be restored: `));
    assert.ok(!result.state.timeline.some((t) => t.phase === 'maintenance'), 'never went into maintenance');
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.headers.get('x-app-version'), 'v2', 'v2 still serves');
  });

  it('bad input: an unknown version, a snapshot that does not exist, or one of another service: failed, nothing changed', async () => {
    const { plan, snapshotId } = await v1ThenV2(taskQueue);
    const unknown = await (await startRollback(taskQueue, plan, { toVersion: 'v99' })).result();
    assert.equal(unknown.outcome, 'failed');
    assert.match(unknown.reason ?? '', /unknown version v99/);
    const missing = await (await startRollback(taskQueue, plan, { restoreSnapshotId: 'no-such-snapshot' })).result();
    assert.match(missing.reason ?? '', /snapshot no-such-snapshot does not exist/);
    const other = restoreApprovers(await shopPlan());
    const foreign = await (
      await startRollback(
        taskQueue,
        { ...other, database: plan.database },
        { restoreSnapshotId: snapshotId, toVersion: 'v1' },
      )
    ).result();
    assert.match(foreign.reason ?? '', /belongs to shop-/);
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.headers.get('x-app-version'), 'v2');
  });

  it('a refused restore approval: rejected, nothing changed', async () => {
    const { plan, snapshotId } = await v1ThenV2(taskQueue);
    const handle = await startRollback(taskQueue, plan, { restoreSnapshotId: snapshotId });
    await waitingAt(handle, 'restore-database');
    await handle.signal(rejectSignal, { by: 'alice', note: 'not without a ticket' });
    const result = await handle.result();
    assert.equal(result.outcome, 'rejected');
    assert.equal(result.state.restore?.safetySnapshotId, undefined);
    const res = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(res.headers.get('x-app-version'), 'v2');
  });

  it('a rollback while a deploy runs is refused, naming the deploy', async () => {
    const { plan } = await v1ThenV2(taskQueue);
    const deploy = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v3');
    await waitingAt(deploy, 'before-start');
    const result = await (await startRollback(taskQueue, plan)).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', new RegExp(`busy: deploy ${deploy.workflowId} is running`));
    await deploy.signal(rejectSignal, { by: 'bob' });
    await deploy.result();
  });

  it('SIGKILL of the worker during the restore: a new worker finishes it; one restored database, swapped once', async () => {
    const crashQueue = uniqueName('rollback-crash');
    const setup = await startWorker(crashQueue);
    let prepared: Awaited<ReturnType<typeof v1ThenV2>>;
    try {
      prepared = await v1ThenV2(crashQueue, async (p) => {
        // enough rows that the restore takes a moment
        await queryDb(
          p.database!.name,
          "INSERT INTO items (name) SELECT 'bulk-' || g FROM generate_series(1, 400000) g",
        );
      });
    } finally {
      await setup.stop();
    }
    const { plan, snapshotId } = prepared;
    const doomed = spawnChildWorker(crashQueue);
    let survivor: { stop(): Promise<void> } | undefined;
    try {
      const handle = await startRollback(crashQueue, plan, { restoreSnapshotId: snapshotId, toVersion: 'v1' });
      await waitingAt(handle, 'restore-database');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitForState(handle, (s) => s.phase === 'restore', 'the restore', 90_000);
      await doomed.kill();
      survivor = await startWorker(crashQueue, 'survivor');
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.equal(await countItems(plan.database!.name), 400_000);
      const databases = await queryDb<{ datname: string }>(
        'postgres',
        `SELECT datname FROM pg_database WHERE datname LIKE '${plan.database!.name}%' ORDER BY 1`,
      );
      assert.deepEqual(
        databases.map((d) => d.datname),
        [plan.database!.name, result.state.restore!.replacedAs].sort(),
        'no leftover restore target',
      );
    } finally {
      await doomed.kill();
      await survivor?.stop();
    }
  });
});
