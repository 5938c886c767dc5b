import type { Client, WorkflowHandle } from '@temporalio/client';
import { startLoad } from '../../src/load';
import { approveUpdate, rejectSignal, signoffSignal } from '../../src/shared/messages';
import type { stackCheck } from '../../src/workflows';
import { shopPlan, startDeploy, waitingAt, withGates } from '../workflows/deploy-fixture';

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
    name: 'deploy-approval-timeout',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-traffic'], { timeoutMs: 1_000 }), 'v2');
      await handle.result();
      return handle;
    },
  },
];
