import type { PlatformPlan } from '../shared/platform-plan';
import type { Platform, ResolvedService } from '../shared/service-plan';
import { awsEcsDescriptor } from './aws-ecs/descriptor';
import { singleHostDescriptor } from './single-host/descriptor';

/**
 * The one place a plan's platform is looked up for the workflows: each platform's descriptor turns the plan into
 * the values a runbook needs (see PlatformPlan). Workflow-safe: descriptors are pure and import no SDK. A new
 * platform adds its descriptor here and its factory to the worker's registry (src/platforms/index.ts).
 */
const descriptors: { [P in Platform]: (plan: Extract<ResolvedService, { platform: P }>) => PlatformPlan } = {
  'single-host': singleHostDescriptor,
  'aws-ecs': awsEcsDescriptor,
};

/** What a runbook needs of the platform `plan` runs on. */
export function platformPlanOf(plan: ResolvedService): PlatformPlan {
  const describe = descriptors[plan.platform] as (p: ResolvedService) => PlatformPlan;
  return describe(plan);
}
