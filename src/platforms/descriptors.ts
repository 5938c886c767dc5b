import type { PlatformPlan } from '../shared/platform-plan';
import type { Platform, ResolvedService, SingleHostService } from '../shared/service-plan';
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

/**
 * The service's continuous-backup settings (`backup:`), or undefined: only the single-host platform archives WAL to
 * pgBackRest; the CLI and the activities ask here instead of branching on the platform.
 */
export function backupOf(plan: ResolvedService): SingleHostService['backup'] | undefined {
  return plan.platform === 'single-host' ? plan.backup : undefined;
}
