import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  INVALID_REQUEST,
  parseRequest,
  planPreviewRequestSchema,
  type PlanPreviewRequest,
  type ResolvedPlan,
} from '../shared/request';

const preview = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '500ms', maximumAttempts: 3 },
});

/**
 * The plan the worker would run for a service in an environment, and its digest: what `runbook deploy --dry-run`
 * (and rollback, drill) shows. One activity, resolvePlan without a digest to compare: nothing is started or
 * changed, and it sets no Runbook* search attribute (`runbook list` does not show it).
 */
export async function planPreview(request: PlanPreviewRequest): Promise<ResolvedPlan> {
  const parsed = parseRequest(planPreviewRequestSchema, 'plan preview', request);
  if (!parsed.ok)
    throw ApplicationFailure.create({ type: INVALID_REQUEST, message: parsed.message, nonRetryable: true });
  return preview.resolvePlan(parsed.request);
}
