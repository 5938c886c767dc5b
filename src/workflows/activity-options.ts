import type { ActivityOptions } from '@temporalio/workflow';

/** Short calls to a local server (a query, a runtime API command): fail fast, retry with backoff. */
export const quick: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
};

/** Long work (dump, restore, rollout wait) that heartbeats its progress and resumes from it after a crash. */
export const longWithHeartbeat: ActivityOptions = {
  startToCloseTimeout: '2h',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
};
