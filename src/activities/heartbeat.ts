import { Context } from '@temporalio/activity';

/** The details each running activity last heartbeated through {@link heartbeatWith}. */
const lastDetails = new WeakMap<Context, unknown>();

/**
 * Heartbeats `details` and remembers them: {@link whileHeartbeating}'s beats re-send them, where a bare heartbeat
 * would replace them (the server keeps the last details sent) and a retried attempt would find nothing to resume from.
 */
export function heartbeatWith(ctx: Context, details: unknown): void {
  lastDetails.set(ctx, details);
  ctx.heartbeat(details);
}

/**
 * Runs `work` while heartbeating every second (`everyMs`), so that the server notices a dead worker within the
 * activity's heartbeat timeout (not its much longer start-to-close timeout) and retries on another one. Each beat
 * re-sends the details last given to {@link heartbeatWith}.
 */
export async function whileHeartbeating<T>(work: () => Promise<T>, everyMs = 1_000): Promise<T> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(lastDetails.get(ctx)), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}
