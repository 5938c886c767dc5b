import type { WorkflowHandle } from '@temporalio/client';
import type { SingleHostService as ServicePlan } from '../../src/shared/service-plan';
import type { DrillInput } from '../../src/shared/drill';
import type { restoreDrill } from '../../src/workflows';
import { testStack, uniqueName } from '../harness';

/** Starts a restore drill of `plan` (requested by dave unless `extra` says otherwise). */
export function startDrill(
  taskQueue: string,
  plan: ServicePlan,
  extra: Partial<DrillInput> = {},
  workflowId = uniqueName('drill'),
): Promise<WorkflowHandle<typeof restoreDrill>> {
  const input: DrillInput = { plan, requestedBy: 'dave', ...extra };
  return testStack().client.workflow.start<typeof restoreDrill>('restoreDrill', {
    taskQueue,
    workflowId,
    args: [input],
  });
}

/** Where the drill tests and the replay scenarios find it. */
export { liveV1 } from './deploy-fixture';
