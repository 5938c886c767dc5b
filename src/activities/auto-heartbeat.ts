import type { Context } from '@temporalio/activity';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptorsFactory,
  Next,
} from '@temporalio/worker';

/** How often an activity that has not heartbeated for this long gets a heartbeat from the worker. */
export const AUTO_HEARTBEAT_MS = 1_000;

/**
 * Heartbeats every activity while it runs, so that the server notices a dead worker within the activity's heartbeat
 * timeout (10 s for the quick and critical presets) instead of its start-to-close timeout, and hands the activity to
 * another worker. An activity that heartbeats itself keeps its details: the worker's heartbeat repeats the last ones
 * it sent (or the previous attempt's, before it sends any), so a resumable activity never loses its checkpoint.
 */
export const autoHeartbeat: ActivityInterceptorsFactory = (ctx) => ({ inbound: new AutoHeartbeat(ctx) });

class AutoHeartbeat implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: Context) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    // Context.heartbeat() goes through heartbeatFn: watching it tells what the activity sent, and when
    const ctx = this.ctx as unknown as { heartbeatFn: (details?: unknown) => void; info: Context['info'] };
    const send = ctx.heartbeatFn;
    let last: unknown = ctx.info.heartbeatDetails;
    let lastAt = Date.now();
    ctx.heartbeatFn = (details?: unknown) => {
      last = details;
      lastAt = Date.now();
      send(details);
    };
    const timer = setInterval(() => {
      if (Date.now() - lastAt < AUTO_HEARTBEAT_MS) return;
      lastAt = Date.now();
      send(last);
    }, AUTO_HEARTBEAT_MS);
    try {
      return await next(input);
    } finally {
      clearInterval(timer);
      ctx.heartbeatFn = send;
    }
  }
}
