import assert from 'node:assert/strict';
import type { WorkflowHandle } from '@temporalio/client';
import type { SingleHostService as ServicePlan } from '../../src/shared/service-plan';
import type { DrillInput } from '../../src/shared/drill';
import type { restoreDrill } from '../../src/workflows';
import { testStack, uniqueName } from '../harness';
import { shopPlan, startDeploy } from './deploy-fixture';

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

/** The service live at v1 (its pre-migration snapshot is of the empty database). */
export async function liveV1(taskQueue: string, plan?: ServicePlan) {
  const p = plan ?? (await shopPlan());
  const v1 = await (await startDeploy(taskQueue, p, 'v1')).result();
  assert.equal(v1.outcome, 'succeeded', v1.reason);
  return { plan: p, snapshotId: v1.snapshotId! };
}
