import type { Client, WorkflowHandle } from '@temporalio/client';
import type { stackCheck } from '../../src/workflows';

/**
 * The executions whose histories are committed under test/replay/histories/ (one per workflow path).
 * `npm run record-histories` re-runs them on a real server; re-record only on a deliberate, patched change.
 */
export interface ReplayScenario {
  /** File name (without .json) of the committed history. */
  name: string;
  /** Starts the execution on `taskQueue`, where a worker of the current code is polling. */
  start(client: Client, taskQueue: string, workflowId: string): Promise<WorkflowHandle>;
}

export const scenarios: ReplayScenario[] = [
  {
    name: 'stack-check-happy',
    start: (client, taskQueue, workflowId) =>
      client.workflow.start<typeof stackCheck>('stackCheck', { taskQueue, workflowId, args: [{ hold: '1s' }] }),
  },
];
