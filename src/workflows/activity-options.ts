import type { ActivityOptions } from '@temporalio/workflow';
import type { ResolvedService } from '../shared/service-plan';

/** Short calls to a local server (a query, a runtime API command): fail fast, retry with backoff. */
export const quick: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
};

/**
 * Steps that must finish for the service to be safe (traffic back to stable, a release stopped, the lock
 * released): short attempts, retried without limit until the platform answers.
 */
export const critical: ActivityOptions = {
  startToCloseTimeout: '15s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s' },
};

/** Long work (dump, restore, drain, health gate) that heartbeats its progress and resumes after a crash. */
export const longWithHeartbeat: ActivityOptions = {
  startToCloseTimeout: '2h',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
};

/**
 * Starting a release: a local process starts within `quick`'s timeout; an ECS rollout may take the service's
 * rolloutTimeout, heartbeating while it polls (a dead worker is noticed within 10 s and the next attempt adopts the
 * rollout, which the release id names).
 */
export function releaseStart(plan: ResolvedService): ActivityOptions {
  if (plan.platform !== 'aws-ecs') return quick;
  return {
    startToCloseTimeout: plan.aws.rolloutTimeoutMs + 60_000,
    heartbeatTimeout: '10s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
  };
}

/** The health gate: as long as the service's deadline allows, plus a margin; heartbeats while it polls. */
export function healthGate(plan: ResolvedService): ActivityOptions {
  return { ...longWithHeartbeat, startToCloseTimeout: plan.health.deadlineMs + 30_000 };
}
