import { readFileSync, truncateSync } from 'node:fs';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { startLoad } from '../../src/load-generator';
import { approveSignal, approveUpdate, rejectSignal, signoffSignal } from '../../src/shared/messages';
import type { RollbackInput } from '../../src/shared/deploy';
import type { SingleHostService as ServicePlan } from '../../src/shared/service-plan';
import type { rollbackService, stackCheck } from '../../src/workflows';
import { shopPlan, startDeploy, waitingAt, withGates, snapshotPath } from '../workflows/deploy-fixture';
import { liveV1, startDrill } from '../workflows/drill-fixture';

/** v1 then v2 live; returns the plan (restores approved by alice and bob) and v2's pre-migration snapshot. */
async function v1ThenV2(taskQueue: string): Promise<{ plan: ServicePlan; snapshotId: string }> {
  const base = await shopPlan();
  const plan = { ...base, rollback: { ...base.rollback, dbRestoreApprovers: ['alice', 'bob'] } };
  await (await startDeploy(taskQueue, plan, 'v1')).result();
  const v2 = await (await startDeploy(taskQueue, plan, 'v2')).result();
  return { plan, snapshotId: v2.snapshotId! };
}

function startRollback(client: Client, taskQueue: string, workflowId: string, input: RollbackInput) {
  return client.workflow.start<typeof rollbackService>('rollbackService', { taskQueue, workflowId, args: [input] });
}

/**
 * The executions whose histories are committed under test/replay/histories/ (one per workflow path).
 * `npm run record-histories` re-runs them on a real server; re-record only on a deliberate, patched change.
 */
export interface ReplayScenario {
  /** File name (without .json) of the committed history. */
  name: string;
  /**
   * Runs the execution to its end on `taskQueue`, where a worker of the current code polls, and returns the
   * handle of the workflow whose history is recorded.
   */
  run(client: Client, taskQueue: string, workflowId: string): Promise<WorkflowHandle>;
}

export const scenarios: ReplayScenario[] = [
  {
    name: 'stack-check-happy',
    run: async (client, taskQueue, workflowId) => {
      const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
        taskQueue,
        workflowId,
        args: [{ hold: '1s' }],
      });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'deploy-happy',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start', 'before-traffic', 'go-live']), 'v2');
      await waitingAt(handle, 'before-start');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitingAt(handle, 'before-traffic');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'smoke looks fine' }] });
      await waitingAt(handle, 'go-live');
      await handle.signal(signoffSignal, { by: 'bob', note: 'signed off from the Web UI' });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'deploy-auto-rollback',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan({
        traffic: {
          steps: [
            { weight: 50, bakeMs: 10_000 },
            { weight: 100, bakeMs: 0 },
          ],
        },
      });
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 60 });
      const handle = await startDeploy(taskQueue, plan, 'v3');
      await handle.result();
      await load.stop();
      return handle;
    },
  },
  {
    name: 'deploy-rejected',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v2', 'alice');
      await waitingAt(handle, 'before-start');
      await handle.signal(rejectSignal, { by: 'mallory' }); // refused: not an approver
      await handle.signal(rejectSignal, { by: 'bob', note: 'change freeze' });
      await handle.result();
      return handle;
    },
  },
  {
    // The payload limits (patch bounded-decisions): refused signals of every kind, more than a gate keeps, then
    // a decision by signal and one by update.
    name: 'deploy-bounded-decisions',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start', 'before-traffic']), 'v2', 'alice');
      await waitingAt(handle, 'before-start');
      const refused = [{ by: 'mallory' }, { by: 'b'.repeat(65) }, { who: 'bob' }, { by: 'm'.repeat(5_000) }];
      for (let i = 0; i < 25; i++) await handle.signal(approveSignal, refused[i % refused.length]);
      await handle.signal(approveSignal, { by: 'bob', note: 'after 25 refused attempts' });
      await waitingAt(handle, 'before-traffic');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'deploy-approval-timeout',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-traffic'], { timeoutMs: 1_000 }), 'v2');
      await handle.result();
      return handle;
    },
  },
  {
    name: 'rollback-app-only',
    run: async (client, taskQueue, workflowId) => {
      const { plan } = await v1ThenV2(taskQueue);
      const handle = await startRollback(client, taskQueue, workflowId, {
        plan,
        requestedBy: 'dave',
        reason: 'errors after go-live',
      });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'rollback-db-restore',
    run: async (client, taskQueue, workflowId) => {
      const { plan, snapshotId } = await v1ThenV2(taskQueue);
      const handle = await startRollback(client, taskQueue, workflowId, {
        plan,
        requestedBy: 'dave',
        toVersion: 'v1',
        restoreSnapshotId: snapshotId,
      });
      await waitingAt(handle, 'restore-database');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', note: 'restore approved' }] });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'drill-passed',
    run: async (_client, taskQueue, workflowId) => {
      const { plan } = await liveV1(taskQueue);
      const handle = await startDrill(taskQueue, plan, { signoffTimeoutMs: 60_000 }, workflowId);
      await waitingAt(handle, 'drill-signoff');
      await handle.signal(signoffSignal, { by: 'mallory' }); // refused: not an approver
      await handle.signal(signoffSignal, { by: 'bob', note: 'restored copy checked' });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'drill-failed-corrupt-snapshot',
    run: async (_client, taskQueue, workflowId) => {
      const { plan, snapshotId } = await liveV1(taskQueue);
      const dump = snapshotPath(plan, snapshotId);
      truncateSync(dump, Math.floor(readFileSync(dump).length / 2));
      const handle = await startDrill(taskQueue, plan, {}, workflowId);
      await handle.result();
      return handle;
    },
  },
  {
    name: 'drill-cancelled',
    run: async (_client, taskQueue, workflowId) => {
      const { plan } = await liveV1(taskQueue);
      const handle = await startDrill(taskQueue, plan, { signoffTimeoutMs: 60_000 }, workflowId);
      await waitingAt(handle, 'drill-signoff');
      await handle.cancel();
      await handle.result().catch(() => undefined);
      return handle;
    },
  },
];
