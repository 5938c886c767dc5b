import { slug } from './ids';
import type { AwsEcsSpec, AwsRdsSpec, EndpointHolder, ReleaseSpec, ResolvedService } from './service-plan';

/**
 * What a workflow hands every activity that touches the platform, so that the worker picks the platform's
 * implementation (absent `aws`: the single-host platform, which is also what histories from before the aws-ecs
 * platform meant). Names and ARNs only, never credentials. Workflow-safe.
 */
export interface OnPlatform {
  aws?: AwsEcsSpec;
}

/** The release with the most traffic in a split (the stable or live one), or undefined for an empty split. */
export function heaviestRelease(percent: Record<string, number>): string | undefined {
  return Object.entries(percent).sort((a, b) => b[1] - a[1])[0]?.[0];
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

/** The RDS resource the service's database lives on: its Aurora DB cluster (aws.rds.cluster) or its DB instance. */
export function rdsLiveId(rds: Pick<AwsRdsSpec, 'instance' | 'cluster'>): string {
  return rds.cluster ?? rds.instance ?? '';
}

/**
 * The RDS DB instance, or for a service on an Aurora cluster the DB cluster, that holds `database` on aws-ecs: the
 * service's own database lives on `rds.instance` / `rds.cluster`; any other name (a drill's scratch copy, a
 * rollback's restored copy) is an instance or cluster of its own, named after it (lowercase, '_' -> '-', starting
 * with a letter, at most 63; a cluster's at most 61, so that its writer instance `<cluster>-1` is a valid name too).
 * '' when no identifier can be made of it.
 */
export function rdsResourceId(rds: Pick<AwsRdsSpec, 'database' | 'instance' | 'cluster'>, database: string): string {
  if (database === rds.database) return rdsLiveId(rds);
  let id = slug(database);
  if (id && !/^[a-z]/.test(id)) id = `db-${id}`;
  return id.slice(0, rds.cluster === undefined ? 63 : 61).replace(/-+$/, '');
}

const holderName = (h: EndpointHolder | undefined) =>
  !h
    ? 'the endpoint holder'
    : 'ssmParameter' in h
      ? `SSM parameter ${h.ssmParameter}`
      : 'secret' in h
        ? `secret ${h.secret}${h.key ? ` (${h.key})` : ''}`
        : `task env ${h.taskEnv}`;

/** How the steps that differ by platform are described in a runbook's timeline. */
export function platformWords(plan: ResolvedService, jobs: number) {
  if (plan.platform === 'single-host') {
    return {
      restoreInto: (target: string) => `${target} (pg_restore -j${jobs})`,
      maintenance: 'the service answers 503 with Retry-After',
      swapped: (database: string, _restored: string, replacedAs: string) =>
        `${database} is the restored copy; the replaced database is kept as ${replacedAs}`,
    };
  }
  const rds = plan.aws.rds;
  const noun = rds?.cluster === undefined ? 'instance' : 'cluster';
  const resource = (name: string) => (rds ? rdsResourceId(rds, name) : name);
  const restoreCall = noun === 'cluster' ? 'RestoreDBClusterFromSnapshot' : 'RestoreDBInstanceFromDBSnapshot';
  return {
    restoreInto: (target: string) => `RDS ${noun} ${resource(target)} (${restoreCall})`,
    maintenance: 'the load balancer answers 503',
    swapped: (_database: string, restored: string) =>
      `${holderName(rds?.endpoint)} points at ${resource(restored)}, the services were redeployed; ` +
      `${(rds && rdsLiveId(rds)) || `the old ${noun}`} is kept (set aws.rds.${noun} and ${rds?.urlEnv ?? 'the URL'} to ${resource(restored)})`,
  };
}
