import { ScheduleOverlapPolicy, type ScheduleHandle, type WorkflowHandle } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { signRequest } from '../../src/signing/decisions';
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

/**
 * A Temporal Schedule of drills of `plan` whose request `key` signed for the schedule's runs (`runbook drill schedule
 * --key`), triggered once; returns the run it started (its workflow id is `<scheduleId>-<time>`) and the schedule (the
 * caller deletes it once the run has ended: the worker asks the schedule whether it started the run).
 * `validityMs`: the signature's validity (default: a day).
 */
export async function scheduledSignedDrill(
  taskQueue: string,
  plan: ResolvedService,
  key: { file: string },
  { validityMs = 86_400_000, scheduleId = uniqueName('drill-sched') } = {},
): Promise<{ handle: WorkflowHandle<typeof restoreDrill>; request: DrillRequest; schedule: ScheduleHandle }> {
  const unsigned: DrillRequest = { ...requestFor(taskQueue, plan), requestedBy: `schedule:${scheduleId}` };
  const request = await signRequest(unsigned, {
    schedule: scheduleId,
    kind: 'drill',
    key: key.file,
    env: process.env,
    validityMs,
  });
  const { client } = testStack();
  const schedule = await client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '365d' }] },
    action: { type: 'startWorkflow', workflowType: 'restoreDrill', taskQueue, workflowId: scheduleId, args: [request] },
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  });
  await schedule.trigger();
  for (let i = 0; i < 200; i++) {
    const workflowId = (await schedule.describe()).info.recentActions.at(-1)?.action.workflow.workflowId;
    if (workflowId) return { handle: client.workflow.getHandle(workflowId), request, schedule };
    await sleep(100);
  }
  await schedule.delete();
  throw new Error(`schedule ${scheduleId} started no run`);
}
