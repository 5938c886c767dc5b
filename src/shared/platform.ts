import type { AwsEcsSpec, ReleaseSpec, ResolvedService } from './service-plan';

/**
 * What a workflow hands every activity that touches the platform, so that the worker picks the platform's
 * implementation (absent `aws`: the single-host platform, which is also what histories from before the aws-ecs
 * platform meant). Names and ARNs only, never credentials. Workflow-safe.
 */
export interface OnPlatform {
  aws?: AwsEcsSpec;
}

/** The platform part of a plan, to spread into activity requests. */
export function onPlatform(plan: ResolvedService): OnPlatform {
  return plan.platform === 'aws-ecs' ? { aws: plan.aws } : {};
}

/** Where a service's traffic is routed (see RouteSpec): the stable frontend port, or the ALB listener rule. */
export function routeOf(plan: ResolvedService) {
  return {
    service: plan.service,
    environment: plan.environment,
    listenPort: plan.platform === 'single-host' ? plan.listen.port : 0,
    ...onPlatform(plan),
  };
}

/** How long a release keeps serving its open connections after traffic left it, before it is stopped. */
export function drainMsOf(plan: ResolvedService): number {
  return plan.platform === 'single-host' ? plan.release.drainMs : plan.aws.drainMs;
}

/** How to start a release on this plan's platform (the single-host process spec, or the ECS settings). */
export function releaseOf(plan: ResolvedService): { release?: ReleaseSpec } & OnPlatform {
  return plan.platform === 'single-host' ? { release: plan.release } : onPlatform(plan);
}

/**
 * Whether a restore drill can start the application on the restored copy. single-host starts the release as a
 * process on a spare port; on aws-ecs the restored instance is checked over its endpoint (connections,
 * pg_amcheck, manifest, schema) and no ECS service is pointed at it.
 */
export function drillStartsApp(plan: ResolvedService): boolean {
  return plan.platform === 'single-host';
}
