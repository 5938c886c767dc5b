import { proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { watchQueueOf } from '../shared/constants';
import type { PlatformPlan } from '../shared/platform-plan';
import type { ResolvedService } from '../shared/service-plan';

/**
 * How soon a dead worker's activity is handed to another worker: every activity heartbeats while it runs (the worker's
 * autoHeartbeat), so an activity whose worker died is retried after this, not after its start-to-close timeout.
 */
const HAND_OVER = '10s';

/** Short calls to a local server (a query, a runtime API command): fail fast, retry with backoff. */
export const quick: ActivityOptions = {
  startToCloseTimeout: '30s',
  heartbeatTimeout: HAND_OVER,
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
};

/**
 * Steps that must finish for the service to be safe (traffic back to stable, a release stopped, the lock
 * released): short attempts, retried without limit until the platform answers.
 */
export const critical: ActivityOptions = {
  startToCloseTimeout: '15s',
  heartbeatTimeout: HAND_OVER,
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' },
};

/** Long work (dump, restore, drain, health gate) that heartbeats its progress and resumes after a crash. */
export const longWithHeartbeat: ActivityOptions = {
  startToCloseTimeout: '2h',
  heartbeatTimeout: HAND_OVER,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
};

/**
 * Starting a release: a quick call, or (where the platform says starting is a long wait, an ECS rollout) as long as
 * the platform's timeout, heartbeating while it polls (a dead worker is noticed within 10 s and the next attempt
 * adopts the rollout, which the release id names).
 */
export function releaseStart(platform: PlatformPlan): ActivityOptions {
  if (platform.releaseStartTimeoutMs === undefined) return quick;
  return {
    startToCloseTimeout: platform.releaseStartTimeoutMs,
    heartbeatTimeout: '10s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
  };
}

/** The health gate: as long as the service's deadline allows, plus a margin; heartbeats while it polls. */
export function healthGate(plan: ResolvedService): ActivityOptions {
  return { ...longWithHeartbeat, startToCloseTimeout: plan.health.deadlineMs + 30_000 };
}

/**
 * A release command (migration, check): as long as its own timeout plus a margin for starting and stopping it,
 * heartbeating; a retry (after a worker crash) adopts the run, so a few attempts are safe.
 */
export function commandRun(timeoutMs: number): ActivityOptions {
  return {
    startToCloseTimeout: timeoutMs + 120_000,
    heartbeatTimeout: '20s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
  };
}

/**
 * A watch that lasts as long as a traffic step (the router's cut-off of a canary): it runs until it reports or the
 * workflow cancels it, heartbeating; a dead worker is noticed within 10 s and the watch starts again on another.
 */
export const watching: ActivityOptions = {
  startToCloseTimeout: '24h',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
};

/** The activities with each preset, shared by every workflow. */
export const act = proxyActivities<Activities>(quick);
export const safe = proxyActivities<Activities>(critical);
export const slow = proxyActivities<Activities>(longWithHeartbeat);
export const watch = proxyActivities<Activities>(watching);
/** The watches on the watch queue of the workflow's task queue (since the patch `watch-queue`). */
export const watchOnOwnQueue = () =>
  proxyActivities<Activities>({ ...watching, taskQueue: watchQueueOf(workflowInfo().taskQueue) });
