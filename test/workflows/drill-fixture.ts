import type { WorkflowHandle } from '@temporalio/client';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import type { DrillRequest } from '../../src/shared/request';
import type { restoreDrill } from '../../src/workflows';
import { testStack, uniqueName } from '../harness';
import { requestFor } from './deploy-fixture';

/** Starts a restore drill of `plan` (put into the worker's runbook config; requested by dave unless `extra` says otherwise). */
export function startDrill(
  taskQueue: string,
  plan: ResolvedService,
  extra: Partial<DrillRequest> = {},
  workflowId = uniqueName('drill'),
): Promise<WorkflowHandle<typeof restoreDrill>> {
  const input: DrillRequest = { ...requestFor(taskQueue, plan), requestedBy: 'dave', ...extra };
  return testStack().client.workflow.start<typeof restoreDrill>('restoreDrill', {
    taskQueue,
    workflowId,
    args: [input],
  });
}

/** Where the drill tests and the replay scenarios find it. */
export { liveV1 } from './deploy-fixture';
