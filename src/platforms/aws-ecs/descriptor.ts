import type { PlatformPlan } from '../../shared/platform-plan';
import type { AwsEcsService, EndpointHolder } from '../../shared/service-plan';
import { rdsLiveId, rdsResourceId } from './naming';

/** How often the workflow polls an RDS restore when the service does not say (aws.rds.pollInterval). */
const RDS_POLL_MS = 30_000;
/** What an ECS rollout may take beyond the service's rolloutTimeout: the activity's own margin. */
const ROLLOUT_MARGIN_MS = 60_000;

const holderName = (h: EndpointHolder | undefined) =>
  !h
    ? 'the endpoint holder'
    : 'ssmParameter' in h
      ? `SSM parameter ${h.ssmParameter}`
      : 'secret' in h
        ? `secret ${h.secret}${h.key ? ` (${h.key})` : ''}`
        : `task env ${h.taskEnv}`;

/**
 * aws-ecs as a runbook sees it: a release is an ECS rollout on the idle colour (a long wait, heartbeated), traffic
 * moves on the listener rule (no frontend port), restores are RDS instances or clusters polled from the workflow,
 * and a drill checks the restored copy over its endpoint without starting the application. Pure: workflow-safe.
 */
export function awsEcsDescriptor(plan: AwsEcsService): PlatformPlan {
  const { aws } = plan;
  const rds = aws.rds;
  const noun = rds?.cluster === undefined ? 'instance' : 'cluster';
  const resource = (name: string) => (rds ? rdsResourceId(rds, name) : name);
  const restoreCall = noun === 'cluster' ? 'RestoreDBClusterFromSnapshot' : 'RestoreDBInstanceFromDBSnapshot';
  return {
    name: 'aws-ecs',
    target: { name: 'aws-ecs', aws },
    listenPort: 0,
    drainMs: aws.drainMs,
    releaseStartTimeoutMs: aws.rolloutTimeoutMs + ROLLOUT_MARGIN_MS,
    restorePollMs: rds?.pollIntervalMs ?? RDS_POLL_MS,
    drillStartsApp: false,
    // the minute in progress when the bake ends must end, then be published
    metricsLagMs: aws.metricsDelayMs + 60_000,
    words: {
      restoreInto: (target) => `RDS ${noun} ${resource(target)} (${restoreCall})`,
      maintenance: 'the load balancer answers 503',
      swapped: (_database, restored) =>
        `${holderName(rds?.endpoint)} points at ${resource(restored)}, the services were redeployed; ` +
        `${(rds && rdsLiveId(rds)) || `the old ${noun}`} is kept (set aws.rds.${noun} and ${rds?.urlEnv ?? 'the URL'} to ${resource(restored)})`,
    },
  };
}
