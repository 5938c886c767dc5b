/** The activity a platform call runs in, read from Temporal's Context for platforms, which import nothing of it. */
import { Context } from '@temporalio/activity';
import { heartbeatWith } from './heartbeat';

/** The current activity's workflow id, first scheduling time and log; undefined outside an activity. */
export function currentActivityScope():
  | {
      workflowId?: string;
      scheduledTimestampMs?: number;
      attemptDeadlineMs?: number;
      log(message: string): void;
      heartbeat(details?: unknown): void;
      heartbeatDetails(): unknown;
    }
  | undefined {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return undefined; // not in an activity (a script, the CLI, a unit test)
  }
  return {
    workflowId: ctx.info.workflowExecution?.workflowId,
    scheduledTimestampMs: ctx.info.scheduledTimestampMs,
    ...(ctx.info.startToCloseTimeoutMs
      ? { attemptDeadlineMs: ctx.info.currentAttemptScheduledTimestampMs + ctx.info.startToCloseTimeoutMs }
      : {}),
    log: (message) => ctx.log.info(message),
    heartbeat: (details) => heartbeatWith(ctx, details),
    heartbeatDetails: () => ctx.info.heartbeatDetails,
  };
}
