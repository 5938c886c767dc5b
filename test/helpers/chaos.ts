import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../src/activities';

/** Which attempts the wrapper failed: `<activity type> <workflow id>`, before or after the activity ran. */
export interface ChaosLog {
  before: string[];
  after: string[];
}

/**
 * Tests only: every activity of `activities`, where a share `rate` of first attempts fails with a retryable error,
 * half of them before the activity runs (a worker lost before it did anything) and half after it ran to the end (its
 * completion lost: the retry finds the work done and must adopt it, not do it twice). Later attempts are never
 * failed, so a runbook's outcome does not depend on its retry budget. Which attempts fail is decided by a hash of the
 * workflow id, the activity id and `seed`, so a failing run can be repeated.
 */
export function withTransientFailures(activities: Activities, rate: number, log: ChaosLog, seed = 'chaos'): Activities {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: unknown[]) => {
      const { info } = Context.current();
      const draw =
        createHash('sha256')
          .update(`${seed}/${info.workflowExecution?.workflowId ?? ''}/${info.activityId}`)
          .digest()
          .readUInt32BE(0) / 0x1_0000_0000;
      const where = `${name} ${info.workflowExecution?.workflowId ?? ''}`;
      if (info.attempt === 1 && draw < rate / 2) {
        log.before.push(where);
        throw ApplicationFailure.retryable(`chaos: ${name} failed before it ran`, 'ChaosBefore');
      }
      const result = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      if (info.attempt === 1 && draw >= rate / 2 && draw < rate) {
        log.after.push(where);
        throw ApplicationFailure.retryable(`chaos: ${name} ran, its completion was lost`, 'ChaosAfter');
      }
      return result;
    };
  }
  return wrapped as Activities;
}
