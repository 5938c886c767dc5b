import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Where a kill-point worker stops: the `occurrence`-th first attempt of `activityType` in workflow `workflowId`; with
 * `attempt` above 1, the next call of `activityType` at that attempt (the retry of an activity killed before).
 */
export interface KillPoint {
  workflowId: string;
  activityType: string;
  /** 1 for the first call of that activity type in the workflow. */
  occurrence: number;
  /** `started`: before the activity does anything; `ran`: after it ran to the end, before its completion is sent. */
  when: 'started' | 'ran';
  /** The attempt to stop (default 1). */
  attempt?: number;
}

/**
 * Tests only: every activity of `activities`, where the call named by the kill point in the JSON file `controlFile`
 * (read at each call, so one worker process serves successive runs) stops for good, once `<controlFile>.hit` is
 * written: the test then SIGKILLs the process at that boundary. Other calls run as usual.
 */
export function withKillPoint(activities: Activities, controlFile: string): Activities {
  const seen = new Map<string, number>();
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: unknown[]) => {
      const { info } = Context.current();
      const workflowId = info.workflowExecution?.workflowId ?? '';
      let point: KillPoint | undefined;
      const control = (): KillPoint | undefined =>
        existsSync(controlFile) ? (JSON.parse(readFileSync(controlFile, 'utf8')) as KillPoint) : undefined;
      if (info.attempt > 1) {
        const retry = control();
        if (retry?.workflowId === workflowId && retry.activityType === name && retry.attempt === info.attempt)
          point = retry;
      } else {
        const key = `${workflowId}/${name}`;
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        const first = control();
        if (
          first?.workflowId === workflowId &&
          first.activityType === name &&
          first.occurrence === n &&
          (first.attempt ?? 1) === 1
        )
          point = first;
      }
      const stop = (): Promise<never> => {
        writeFileSync(`${controlFile}.hit`, JSON.stringify({ ...point, pid: process.pid }));
        return new Promise<never>(() => {});
      };
      if (point?.when === 'started') await stop();
      const result = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      if (point?.when === 'ran') await stop();
      return result;
    };
  }
  return wrapped as Activities;
}

/** An activity held by activityHolds: `reached` once its first attempt started on the worker; `release` lets it run. */
export interface HeldActivity {
  reached: Promise<void>;
  release(): void;
}

/**
 * Tests only: activities whose first attempt in a given workflow waits, once it has started on the worker, until the
 * test lets it run (e.g. while the test kills the Temporal server under it). `wrap` the worker's activities
 * (`wrapActivities`), then `hold(workflowId, activityType)` before starting the run. Other calls run as usual.
 */
export function activityHolds(): {
  hold(workflowId: string, activityType: string): HeldActivity;
  wrap(activities: Activities): Activities;
} {
  const holds = new Map<string, { reached(): void; released: Promise<void> }>();
  return {
    hold(workflowId, activityType) {
      let reached!: () => void;
      let release!: () => void;
      const held: HeldActivity = {
        reached: new Promise<void>((resolve) => (reached = resolve)),
        release: () => release(),
      };
      holds.set(`${workflowId}/${activityType}`, {
        reached: () => reached(),
        released: new Promise<void>((resolve) => (release = resolve)),
      });
      return held;
    },
    wrap(activities) {
      const wrapped: Record<string, unknown> = {};
      for (const [name, fn] of Object.entries(activities)) {
        wrapped[name] = async (...args: unknown[]) => {
          const { info } = Context.current();
          const held =
            info.attempt === 1 ? holds.get(`${info.workflowExecution?.workflowId ?? ''}/${name}`) : undefined;
          if (held) {
            held.reached();
            await held.released;
          }
          return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
        };
      }
      return wrapped as Activities;
    },
  };
}
