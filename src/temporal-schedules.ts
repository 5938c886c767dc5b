/** What runbook asks Temporal about its Schedules (the drill schedules): read-only. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';

/** The schedule's description, or undefined when there is no such schedule. Other errors are thrown. */
export async function describeScheduleIfAny(
  client: Client,
  scheduleId: string,
): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Whether the schedule started the run (`workflowId`, `firstRunId`), as Temporal records it: among the schedule's
 * running or recent actions. The scheduler records a run right after starting it, so a run that asks at once may be
 * early: asked again for up to 15 s. False for a schedule that does not exist (any more).
 */
export function scheduleStartedBy(client: Client) {
  return async (scheduleId: string, workflowId: string, firstRunId: string): Promise<boolean> => {
    for (let attempt = 0; attempt < 30; attempt++) {
      const described = await describeScheduleIfAny(client, scheduleId);
      if (!described) return false;
      const { info } = described;
      const runs = [...info.runningActions, ...info.recentActions.map((r) => r.action)];
      if (runs.some((a) => a.workflow.workflowId === workflowId && a.workflow.firstExecutionRunId === firstRunId))
        return true;
      await sleep(500);
    }
    return false;
  };
}
