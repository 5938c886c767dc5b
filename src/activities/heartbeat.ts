import { Context } from '@temporalio/activity';

/**
 * Runs `work` while heartbeating every second, so that the server notices a dead worker within the
 * activity's heartbeat timeout (not its much longer start-to-close timeout) and retries on another one.
 */
export async function whileHeartbeating<T>(work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(), 1_000);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}
