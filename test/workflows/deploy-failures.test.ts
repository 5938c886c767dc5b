import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startLoad } from '../../src/load-generator';
import { approveSignal, approveUpdate, rejectSignal, signoffUpdate, statusQuery } from '../../src/shared/messages';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { spawnChildWorker, startWorker, testStack, uniqueName, useWorker } from '../harness';
import {
  examplesDir,
  queryDb,
  releaseHistory,
  runner,
  serviceWithV1,
  shopPlan,
  startDeploy,
  waitForState,
  waitingAt,
  withGates,
  snapshotPath,
} from './deploy-fixture';

async function runningReleases(plan: ResolvedService): Promise<string[]> {
  const dir = path.join(testStack().settings.home, 'releases', `${plan.service}-${plan.environment}`);
  const ids = readdirSync(dir);
  const alive = await Promise.all(
    ids.map(async (id) => ((await runner().get(plan.service, plan.environment, id)) ? id : '')),
  );
  return alive.filter(Boolean);
}

describe('deployService: gates, failures, cancellation and crashes', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('deploy-failures');

  describe('approval gates', () => {
    it('reject at before-start: rejected, nothing changed (no snapshot, no release, stable untouched)', async () => {
      const plan = await serviceWithV1(taskQueue);
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v2');
      await waitingAt(handle, 'before-start');
      await handle.signal(rejectSignal, { by: 'bob', note: 'freeze week' });
      const result = await handle.result();
      assert.equal(result.outcome, 'rejected');
      assert.match(result.reason ?? '', /before-start rejected by unverified:bob: freeze week/);
      assert.equal(result.snapshotId, undefined);
      assert.equal(result.state.candidate, undefined);
      assert.deepEqual(result.state.weights, { v1: 100 });
      assert.equal((await runningReleases(plan)).length, 1);
    });

    it('timeout at before-start with onTimeout abort: rejected', async () => {
      const plan = await serviceWithV1(taskQueue);
      const result = await (
        await startDeploy(taskQueue, withGates(plan, ['before-start'], { timeoutMs: 1_000 }), 'v2')
      ).result();
      assert.equal(result.outcome, 'rejected');
      assert.match(result.reason ?? '', /before-start approval timed out/);
      assert.equal(result.state.gates[0]?.status, 'timed-out');
    });

    it('reject at before-traffic: rejected, the new release is stopped and never took traffic', async () => {
      const plan = await serviceWithV1(taskQueue);
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-traffic']), 'v2');
      await waitingAt(handle, 'before-traffic');
      await handle.signal(rejectSignal, { by: 'alice' });
      const result = await handle.result();
      assert.equal(result.outcome, 'rejected');
      assert.deepEqual(result.state.weights, { v1: 100 });
      assert.equal((await runningReleases(plan)).length, 1, 'only v1 runs');
      assert.equal(await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId), undefined);
    });

    it('timeout at before-traffic with onTimeout proceed: the deploy goes on and says so', async () => {
      const plan = await serviceWithV1(taskQueue);
      const gated = withGates(plan, ['before-traffic'], { timeoutMs: 1_000, onTimeout: 'proceed' });
      const result = await (await startDeploy(taskQueue, gated, 'v2')).result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.equal(result.state.gates.find((g) => g.gate === 'before-traffic')?.status, 'proceeded-on-timeout');
    });

    it('reject at go-live: traffic goes back to the stable release (rolled-back)', async () => {
      const plan = await serviceWithV1(taskQueue);
      const handle = await startDeploy(taskQueue, withGates(plan, ['go-live']), 'v2');
      await waitingAt(handle, 'go-live');
      assert.deepEqual((await handle.query(statusQuery)).weights, { v1: 0, v2: 100 });
      await handle.signal(rejectSignal, { by: 'bob', gate: 'go-live', note: 'dashboards look off' });
      const result = await handle.result();
      assert.equal(result.outcome, 'rolled-back');
      assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
      assert.equal(await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId), undefined);
    });

    it('a rollback step that fails for good does not stop the ones after it, and the outcome says what was not undone', async () => {
      // A worker whose "remove from the route" is refused for good (as AWS refuses a missing permission).
      const queue = uniqueName('deploy-compensation');
      const refusing = await startWorker(queue, undefined, {
        wrapActivities: (a) => ({
          ...a,
          async removeFromRoute() {
            throw ApplicationFailure.nonRetryable('the router refused: AccessDenied', 'AwsAccessDenied');
          },
        }),
      });
      try {
        const plan = await serviceWithV1(queue);
        const handle = await startDeploy(queue, withGates(plan, ['go-live']), 'v2');
        await waitingAt(handle, 'go-live');
        await handle.signal(rejectSignal, { by: 'bob', gate: 'go-live', note: 'no' });
        const result = await handle.result();
        assert.equal(result.outcome, 'rolled-back');
        assert.match(
          result.reason ?? '',
          /; NOT undone: remove v2 from the route \(the router refused: AccessDenied\)$/,
        );
        assert.deepEqual(result.state.weights, { v1: 100, v2: 0 }, 'traffic went back before the failed step');
        assert.equal(
          await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId),
          undefined,
          'the step after the failed one still ran: v2 is stopped',
        );
        assert.ok(
          result.state.timeline.some((t) => /^FAILED: remove v2 from the route: .*; do it by hand$/.test(t.message)),
          'the timeline says what to do by hand',
        );
        const history = await releaseHistory(plan.service);
        assert.equal(history.at(-1)?.outcome, 'rolled-back', 'the outcome is recorded and the lock released');
      } finally {
        await refusing.stop();
      }
    });

    it('timeout at go-live with abort: rolled back as well', async () => {
      const plan = await serviceWithV1(taskQueue);
      const result = await (
        await startDeploy(taskQueue, withGates(plan, ['go-live'], { timeoutMs: 1_500 }), 'v2')
      ).result();
      assert.equal(result.outcome, 'rolled-back');
      assert.match(result.reason ?? '', /go-live approval timed out/);
    });

    it('refuses an unknown approver, self-approval (four-eyes) and the wrong gate; a refused Web UI signal never counts', async () => {
      const plan = await serviceWithV1(taskQueue);
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v2', 'alice');
      await waitingAt(handle, 'before-start');
      const refused = async (payload: unknown, reason: RegExp) =>
        assert.rejects(handle.executeUpdate(approveUpdate, { args: [payload] }), (err: unknown) => {
          assert.ok(err instanceof WorkflowUpdateFailedError);
          assert.match(String(err.cause?.message), reason);
          return true;
        });
      await refused({ by: 'mallory' }, /mallory is not an approver .* \(allowed: alice, bob\)/);
      await refused({ by: 'alice' }, /four-eyes: (unverified:)?alice requested .* may not approve it/);
      await refused({ by: 'bob', gate: 'go-live' }, /gate "go-live" is not waiting; .* waits for "before-start"/);
      await refused({ who: 'bob' }, /invalid approve payload/);
      await assert.rejects(handle.executeUpdate(signoffUpdate, { args: [{ by: 'bob' }] }), (err: unknown) => {
        assert.ok(err instanceof WorkflowUpdateFailedError);
        assert.match(String(err.cause?.message), /gate "go-live" is not waiting; .* waits for "before-start"/);
        return true;
      });

      await handle.signal(approveSignal, { by: 'mallory' }); // the Web UI path: recorded, refused
      const state = await waitForState(handle, (s) => (s.gates[0]?.refused.length ?? 0) > 0, 'the refused signal');
      assert.equal(state.gates[0]?.status, 'waiting');
      assert.equal(state.gates[0]?.refused[0]?.by, 'unverified:mallory');
      assert.equal(state.gates[0]?.refused[0]?.via, 'signal');

      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.equal(result.state.gates[0]?.decidedBy, 'unverified:bob');
    });
  });

  describe('failures before traffic', () => {
    it('a failing migration: failed before any traffic moved, the database exactly as it was', async () => {
      const plan = await shopPlan({ database: undefined });
      const broken = {
        ...plan,
        database: {
          name: plan.service.replace(/-/g, '_'),
          migrationsDir: path.join(examplesDir, 'shop/migrations-broken'),
        },
      };
      const result = await (await startDeploy(taskQueue, broken, 'v1')).result();
      assert.equal(result.outcome, 'failed');
      assert.match(result.reason ?? '', /migration failed, database unchanged: .*create-orders-broken/);
      assert.equal(result.state.candidate, undefined, 'no release was started');
      const tables = await queryDb<{ n: string }>(
        broken.database.name,
        "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
      );
      assert.equal(Number(tables[0]?.n), 0, 'no table was left behind');
    });

    it('a release that never becomes ready: failed at the health gate, stopped, stable untouched', async () => {
      const plan = await serviceWithV1(taskQueue, {});
      const quickHealth = { ...plan, health: { ...plan.health, deadlineMs: 3_000 } };
      const result = await (await startDeploy(taskQueue, quickHealth, 'v4-broken-readiness')).result();
      assert.equal(result.outcome, 'failed');
      assert.match(result.reason ?? '', /did not become healthy within the deadline: GET \/health\/ready -> 503/);
      assert.deepEqual(result.state.weights, { v1: 100 });
      assert.equal(await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId), undefined);
    });

    it('a failing smoke check: failed, with the request and the answer in the reason', async () => {
      const plan = await serviceWithV1(taskQueue);
      const smoky = {
        ...plan,
        smoke: [{ name: 'missing page', method: 'GET' as const, path: '/api/nope', expectStatus: 200 }],
      };
      const result = await (await startDeploy(taskQueue, smoky, 'v2')).result();
      assert.equal(result.outcome, 'failed');
      assert.match(result.reason ?? '', /smoke checks failed on v2: GET \/api\/nope -> 404, expected 200/);
    });

    it('an unknown version: failed at once, naming the missing release folder', async () => {
      const plan = await serviceWithV1(taskQueue);
      const result = await (await startDeploy(taskQueue, plan, 'v99')).result();
      assert.equal(result.outcome, 'failed');
      assert.match(result.reason ?? '', /unknown version v99 of .*: folder .*releases\/v99 does not exist/);
    });

    it('one deploy per service and environment: a second one fails naming the first', async () => {
      const plan = await serviceWithV1(taskQueue);
      const first = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v2');
      await waitingAt(first, 'before-start');
      const second = await (await startDeploy(taskQueue, plan, 'v2')).result();
      assert.equal(second.outcome, 'failed');
      assert.match(second.reason ?? '', new RegExp(`busy: deploy ${first.workflowId} is running`));
      await first.signal(rejectSignal, { by: 'bob' });
      assert.equal((await first.result()).outcome, 'rejected');
    });
  });

  describe('after traffic moved', () => {
    it('a faulty canary under load: the analysis rolls back automatically, with the figures', async () => {
      // The windows' verdict, not HAProxy's cut-off (canary-cutoff.test.ts): a canary failing half of its answers may
      // or may not give HAProxy five errors in a row first.
      const { cutoff: _cutoff, ...analysis } = (await shopPlan()).analysis;
      const plan = await serviceWithV1(taskQueue, {
        analysis,
        traffic: {
          steps: [
            { weight: 50, bakeMs: 10_000 },
            { weight: 100, bakeMs: 0 },
          ],
        },
      });
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 60 });
      const result = await (await startDeploy(taskQueue, plan, 'v3')).result();
      await load.stop();
      assert.equal(result.outcome, 'rolled-back');
      assert.match(result.reason ?? '', /canary analysis failed at 50%: 5xx rate/);
      assert.ok(result.failedWindow && result.failedWindow.errors5xx > 0 && result.failedWindow.verdict === 'fail');
      assert.deepEqual(result.state.weights, { v1: 100, v3: 0 });
      assert.equal(await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId), undefined);
      const history = await releaseHistory(plan.service);
      assert.deepEqual(
        history.map((r) => [r.version, r.outcome]),
        [
          ['v1', 'succeeded'],
          ['v3', 'rolled-back'],
        ],
      );
    });

    it('cancel mid-traffic: the same safe rollback, then the workflow ends cancelled', async () => {
      const plan = await serviceWithV1(taskQueue, {
        traffic: {
          steps: [
            { weight: 50, bakeMs: 60_000 },
            { weight: 100, bakeMs: 0 },
          ],
        },
      });
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await waitForState(handle, (s) => s.phase === 'traffic', 'traffic');
      await handle.cancel();
      await assert.rejects(
        handle.result(),
        (err: unknown) => err instanceof WorkflowFailedError && /cancel/i.test(String(err.cause?.message ?? err.cause)),
      );
      const state = await handle.query(statusQuery);
      assert.equal(state.outcome, 'cancelled');
      assert.deepEqual(state.weights, { v1: 100, v2: 0 });
      assert.equal(await runner().get(plan.service, plan.environment, state.candidate!.releaseId), undefined);
      assert.deepEqual(
        (await releaseHistory(plan.service)).map((r) => r.outcome),
        ['succeeded', 'cancelled'],
      );
    });
  });

  describe('crashes', () => {
    it('SIGKILL of the worker during a migration: a new worker finishes; one snapshot, each migration applied once', async () => {
      const crashQueue = uniqueName('deploy-crash-migrate');
      const plan = await shopPlan();
      const slow = {
        ...plan,
        database: { ...plan.database!, migrationsDir: path.join(__dirname, '../fixtures/migrations-slow') },
      };
      const doomed = spawnChildWorker(crashQueue);
      let survivor: { stop(): Promise<void> } | undefined;
      try {
        const handle = await startDeploy(crashQueue, slow, 'v1');
        await waitForState(handle, (s) => s.phase === 'migrate', 'the migration', 90_000);
        await doomed.kill();
        survivor = await startWorker(crashQueue, 'survivor');
        const result = await handle.result();
        assert.equal(result.outcome, 'succeeded', result.reason);
        const applied = await queryDb<{ name: string }>(
          slow.database.name,
          'SELECT name FROM pgmigrations ORDER BY id',
        );
        assert.deepEqual(
          applied.map((r) => r.name),
          ['1700000000000_create-items', '1700000100000_add-items-price-cents', '1700000200000_slow-backfill'],
        );
        const dumps = readdirSync(snapshotPath(plan)).filter((f) => f.endsWith('.dump'));
        assert.deepEqual(dumps, [`${result.snapshotId}.dump`], 'one snapshot');
      } finally {
        await doomed.kill();
        await survivor?.stop();
      }
    });

    it('SIGKILL of the worker during a bake: a new worker finishes the deploy with one release started', async () => {
      const crashQueue = uniqueName('deploy-crash-bake');
      const plan = await shopPlan({
        traffic: {
          steps: [
            { weight: 50, bakeMs: 4_000 },
            { weight: 100, bakeMs: 0 },
          ],
        },
      });
      const setup = await startWorker(crashQueue);
      const v1 = await (await startDeploy(crashQueue, plan, 'v1')).result().finally(() => setup.stop());
      assert.equal(v1.outcome, 'succeeded');
      const doomed = spawnChildWorker(crashQueue);
      let survivor: { stop(): Promise<void> } | undefined;
      try {
        const handle = await startDeploy(crashQueue, plan, 'v2');
        await waitForState(handle, (s) => s.phase === 'traffic', 'the bake', 90_000);
        await doomed.kill();
        survivor = await startWorker(crashQueue, 'survivor');
        const result = await handle.result();
        assert.equal(result.outcome, 'succeeded', result.reason);
        assert.deepEqual(result.state.weights, { v1: 0, v2: 100 });
        assert.deepEqual(await runningReleases(plan), [result.state.candidate!.releaseId], 'only v2 runs');
      } finally {
        await doomed.kill();
        await survivor?.stop();
      }
    });
  });
});
