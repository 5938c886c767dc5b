import {
  type ApplicationAutoScalingClient,
  DescribeScalableTargetsCommand,
  DescribeScalingPoliciesCommand,
  DescribeScheduledActionsCommand,
  PutScalingPolicyCommand,
  PutScheduledActionCommand,
  RegisterScalableTargetCommand,
  type RegisterScalableTargetCommandInput,
  type ScalableTarget,
  type ScalingPolicy,
  type ScheduledAction,
  type SuspendedState,
} from '@aws-sdk/client-application-auto-scaling';
import { TagResourceCommand, UntagResourceCommand } from '@aws-sdk/client-ecs';
import { carries, COLOURS, otherColour, type Colour, type ColourService, type ColourServices } from './blue-green';
import { PlatformError } from '../types';
import type { AwsContext } from './context';
import { awsCall } from './errors';

/**
 * Application Auto Scaling of the two colours. A team that scales its ECS service registers a scalable target
 * (namespace `ecs`, dimension `ecs:service:DesiredCount`, ResourceId `service/<cluster>/<service>`) on it; with blue and
 * green, runbook keeps them so that:
 *
 * - a release starting on the idle colour gets the live colour's MinCapacity/MaxCapacity (copied), and the live
 *   colour's target tracking and predictive policies and scheduled actions when it has none of its own
 *   (prepareStartingColour);
 * - during the canary, scale-in is suspended on both colours (DynamicScalingInSuspended): neither shrinks while the
 *   load shifts from one to the other (the new colour would otherwise scale in to its minimum at 10% of the traffic,
 *   and the old one as it loses traffic, leaving nothing to roll back to);
 * - the colour that takes all the traffic gets back the SuspendedState the team had (resumeFullColour);
 * - the colour that leaves gets MinCapacity 0 and MaxCapacity 0 with all scaling suspended before it is scaled to 0
 *   (retireColour): a minimum above 0 would scale the idle colour back up, a policy's alarm (its metrics still see
 *   the other colour's load, e.g. a customised metric of the whole cluster) could scale it out, and a scheduled action
 *   would set its capacity again. MaxCapacity 0 alone stops the policies; ScheduledScalingSuspended stops the scheduled
 *   actions from raising it again. When the colour starts again it gets the live colour's values back.
 *
 * The team's SuspendedState is kept in the ECS services' `runbook:scaling` tag from the first change to the last
 * restore, so a retried activity never mistakes runbook's own suspension for the team's. A pair whose live colour has
 * no scalable target is left alone: nothing is registered. Every call is idempotent (a retried attempt registers
 * again what it finds different, nothing more). AWS failures are those of awsCall (AccessDenied, ObjectNotFound:
 * non-retryable, naming the action and the service; throttling and ConcurrentUpdateException: retried).
 */

const NAMESPACE = 'ecs';
const DIMENSION = 'ecs:service:DesiredCount';

/** The ECS services' tag that keeps the team's SuspendedState while runbook suspends scale-in. */
export const SCALING_TAG = 'runbook:scaling';

type Suspension = Required<{ [K in keyof SuspendedState]-?: boolean }>;

const ALL_SUSPENDED: Suspension = {
  DynamicScalingInSuspended: true,
  DynamicScalingOutSuspended: true,
  ScheduledScalingSuspended: true,
};

/** The SuspendedState of a target, every flag given (AWS omits them when false). */
export function suspensionOf(t: ScalableTarget | undefined): Suspension {
  const s = t?.SuspendedState;
  return {
    DynamicScalingInSuspended: s?.DynamicScalingInSuspended === true,
    DynamicScalingOutSuspended: s?.DynamicScalingOutSuspended === true,
    ScheduledScalingSuspended: s?.ScheduledScalingSuspended === true,
  };
}

/** `in=false/out=false/scheduled=false`: letters, `=` and `/` only, as ECS tag values allow. */
export function encodeSuspension(s: Suspension): string {
  return `in=${s.DynamicScalingInSuspended}/out=${s.DynamicScalingOutSuspended}/scheduled=${s.ScheduledScalingSuspended}`;
}

export function decodeSuspension(value: string | undefined): Suspension | undefined {
  const m = value === undefined ? null : /^in=(true|false)\/out=(true|false)\/scheduled=(true|false)$/.exec(value);
  if (!m) return undefined;
  return {
    DynamicScalingInSuspended: m[1] === 'true',
    DynamicScalingOutSuspended: m[2] === 'true',
    ScheduledScalingSuspended: m[3] === 'true',
  };
}

/** A target in words: `min 2, max 10, scale-in suspended`. */
export function targetWords(t: ScalableTarget): string {
  const s = suspensionOf(t);
  const suspended = [
    s.DynamicScalingInSuspended && s.DynamicScalingOutSuspended ? 'dynamic' : undefined,
    s.DynamicScalingInSuspended && !s.DynamicScalingOutSuspended ? 'scale-in' : undefined,
    !s.DynamicScalingInSuspended && s.DynamicScalingOutSuspended ? 'scale-out' : undefined,
    s.ScheduledScalingSuspended ? 'scheduled' : undefined,
  ].filter(Boolean);
  return `min ${t.MinCapacity ?? '?'}, max ${t.MaxCapacity ?? '?'}${suspended.length ? `, ${suspended.join(' and ')} scaling suspended` : ''}`;
}

const sameSuspension = (a: Suspension, b: Suspension) =>
  a.DynamicScalingInSuspended === b.DynamicScalingInSuspended &&
  a.DynamicScalingOutSuspended === b.DynamicScalingOutSuspended &&
  a.ScheduledScalingSuspended === b.ScheduledScalingSuspended;

/** The cluster's name, from a name or an ARN (arn:aws:ecs:<region>:<account>:cluster/<name>). */
const clusterName = (cluster: string) => cluster.replace(/^arn:[^:]+:ecs:[^:]*:[^:]*:cluster\//, '');

/**
 * A service's ResourceId in Application Auto Scaling: `service/<cluster>/<service>`, from its long-format ARN (the
 * names runbook.yaml gives may be ARNs), else from the cluster and service names.
 */
export function scalingResourceId(s: { arn?: string; name: string }, cluster: string): string {
  const m = s.arn ? /:service\/([^/]+\/[^/]+)$/.exec(s.arn) : null;
  if (m) return `service/${m[1]}`;
  const name = s.name.replace(/^arn:.*:service\/(?:[^/]+\/)?/, '');
  return `service/${clusterName(cluster)}/${name}`;
}

export type ColourTargets = Record<Colour, ScalableTarget | undefined>;

/** The scalable targets of both colours (DescribeScalableTargets); undefined for a colour without one. */
export function describeColourTargets(
  ctx: AwsContext,
  services: Record<Colour, { arn?: string; name: string }>,
): Promise<ColourTargets> {
  return describeTargetsWith(ctx.clients.autoscaling, ctx.spec.cluster, services);
}

/** describeColourTargets with a client and the cluster only (runbook doctor has no AwsContext). */
export async function describeTargetsWith(
  client: Pick<ApplicationAutoScalingClient, 'send'>,
  cluster: string,
  services: Record<Colour, { arn?: string; name: string }>,
): Promise<ColourTargets> {
  const ids = { blue: scalingResourceId(services.blue, cluster), green: scalingResourceId(services.green, cluster) };
  const found: ScalableTarget[] = [];
  let token: string | undefined;
  do {
    const page = await awsCall(
      'application-autoscaling:DescribeScalableTargets',
      `the scalable targets of ECS services ${ids.blue}, ${ids.green}`,
      () =>
        client.send(
          new DescribeScalableTargetsCommand({
            ServiceNamespace: NAMESPACE,
            ResourceIds: [ids.blue, ids.green],
            ScalableDimension: DIMENSION,
            ...(token ? { NextToken: token } : {}),
          }),
        ),
    );
    found.push(...(page.ScalableTargets ?? []));
    token = page.NextToken;
  } while (token);
  const of = (c: Colour) => found.find((t) => t.ResourceId === ids[c] && t.ScalableDimension === DIMENSION);
  return { blue: of('blue'), green: of('green') };
}

const resourceId = (ctx: AwsContext, s: { arn?: string; name: string }) => scalingResourceId(s, ctx.spec.cluster);

/**
 * The colours' targets where runbook has not changed them yet; undefined when the worker may not read them (a policy
 * from before runbook managed scaling, on a service without autoscaling): then nothing is managed, as for a pair
 * without targets, and the activity's log says so (runbook doctor's autoscaling line fails on it).
 */
async function readableTargets(ctx: AwsContext, services: ColourServices): Promise<ColourTargets | undefined> {
  try {
    return await describeColourTargets(ctx, services);
  } catch (err) {
    if (!(err instanceof PlatformError) || err.type !== 'AwsAccessDenied') throw err;
    log(
      ctx,
      `Application Auto Scaling not managed: ${err.message} (only a service without scalable targets can do without it)`,
    );
    return undefined;
  }
}

const log = (ctx: AwsContext, message: string) => ctx.activity()?.log(message);

async function register(
  ctx: AwsContext,
  s: ColourService,
  change: Pick<RegisterScalableTargetCommandInput, 'MinCapacity' | 'MaxCapacity' | 'SuspendedState'>,
): Promise<void> {
  const id = resourceId(ctx, s);
  await awsCall('application-autoscaling:RegisterScalableTarget', `the scalable target ${id} (${s.colour})`, () =>
    ctx.clients.autoscaling.send(
      new RegisterScalableTargetCommand({
        ServiceNamespace: NAMESPACE,
        ResourceId: id,
        ScalableDimension: DIMENSION,
        ...change,
      }),
    ),
  );
}

/** The team's SuspendedState that runbook saved in either service's tag, if a change of runbook's is in force. */
function savedSuspension(services: ColourServices): Suspension | undefined {
  return decodeSuspension(services.blue.tags[SCALING_TAG]) ?? decodeSuspension(services.green.tags[SCALING_TAG]);
}

async function tagService(ctx: AwsContext, s: ColourService, value: string): Promise<void> {
  await awsCall('ecs:TagResource', `ECS service ${s.name}`, () =>
    ctx.clients.ecs.send(new TagResourceCommand({ resourceArn: s.arn, tags: [{ key: SCALING_TAG, value }] })),
  );
}

async function untagService(ctx: AwsContext, s: ColourService): Promise<void> {
  if (s.tags[SCALING_TAG] === undefined) return;
  await awsCall('ecs:UntagResource', `ECS service ${s.name}`, () =>
    ctx.clients.ecs.send(new UntagResourceCommand({ resourceArn: s.arn, tagKeys: [SCALING_TAG] })),
  );
}

/**
 * A release starts on `colour` (after its UpdateService, so that a minimum copied from the live colour never starts
 * tasks of the previous revision): when the live colour (the other one) has a scalable target, the team's
 * SuspendedState is saved in both services' `runbook:scaling` tag, scale-in is suspended on the live colour, and the
 * starting colour's target is registered with the live one's MinCapacity/MaxCapacity and the team's SuspendedState
 * with scale-in suspended; the live colour's policies and scheduled actions are copied when the starting colour has
 * none (copyPolicies, copyScheduledActions). Nothing when the live colour has no scalable target.
 */
export async function prepareStartingColour(ctx: AwsContext, services: ColourServices, colour: Colour): Promise<void> {
  const starting = services[colour];
  const live = services[otherColour(colour)];
  const targets = await readableTargets(ctx, services);
  if (!targets) return;
  const liveTarget = targets[live.colour];
  if (!liveTarget) {
    log(ctx, `${live.name} has no scalable target: Application Auto Scaling left alone`);
    return;
  }
  const saved = savedSuspension(services);
  // Saved before the first change: a retry reads the team's state from the tag, never runbook's suspension.
  const team = saved ?? suspensionOf(liveTarget);
  if (!saved) {
    const value = encodeSuspension(team);
    for (const s of [live, starting]) await tagService(ctx, s, value);
  }
  const canary = { ...team, DynamicScalingInSuspended: true };
  if (!sameSuspension(suspensionOf(liveTarget), canary)) {
    await register(ctx, live, { SuspendedState: canary });
  }
  const current = targets[colour];
  const min = liveTarget.MinCapacity;
  const max = liveTarget.MaxCapacity;
  if (
    !current ||
    current.MinCapacity !== min ||
    current.MaxCapacity !== max ||
    !sameSuspension(suspensionOf(current), canary)
  ) {
    await register(ctx, starting, { MinCapacity: min, MaxCapacity: max, SuspendedState: canary });
  }
  log(
    ctx,
    `scalable target of ${starting.name}: min ${min}, max ${max} (copied from ${live.name}); scale-in suspended on ` +
      'both colours during the release',
  );
  await copyPolicies(ctx, live, starting);
  await copyScheduledActions(ctx, live, starting);
}

/**
 * A colour takes all the traffic (weight 100): it gets back the team's SuspendedState (its scale-in resumes). The
 * other colour keeps its capacity (scale-in still suspended) until it is stopped, so that a rollback has somewhere
 * to go, unless it carries no release, so that no stop() will come (a first deploy beside a service that runbook did
 * not start): it gets the team's state back too and the tags go. No call at all when runbook changed nothing.
 */
export async function resumeFullColour(ctx: AwsContext, services: ColourServices, colour: Colour): Promise<void> {
  const team = savedSuspension(services);
  if (!team) return;
  const targets = await describeColourTargets(ctx, services);
  const other = services[otherColour(colour)];
  const settled = !carries(other);
  for (const c of settled ? COLOURS : [colour]) {
    const t = targets[c];
    if (t && !sameSuspension(suspensionOf(t), team)) await register(ctx, services[c], { SuspendedState: team });
  }
  log(ctx, `scale-in of ${services[colour].name} restored to the team's state (${encodeSuspension(team)})`);
  if (settled) for (const c of COLOURS) await untagService(ctx, services[c]);
}

/**
 * The colour `colour` is being stopped (before its UpdateService to 0): its scalable target, if it has one, gets
 * MinCapacity 0, MaxCapacity 0 and every scaling suspended, so that nothing scales the idle colour up again.
 */
export async function retireColour(ctx: AwsContext, services: ColourServices, colour: Colour): Promise<void> {
  const s = services[colour];
  const target = (await readableTargets(ctx, services))?.[colour];
  if (!target) return;
  if (target.MinCapacity !== 0 || target.MaxCapacity !== 0 || !sameSuspension(suspensionOf(target), ALL_SUSPENDED)) {
    await register(ctx, s, { MinCapacity: 0, MaxCapacity: 0, SuspendedState: ALL_SUSPENDED });
  }
  log(ctx, `scalable target of ${s.name}: min 0, max 0, all scaling suspended while it is idle`);
}

/**
 * After the colour `stopped` is scaled to 0: the other colour (the one that stays) gets the team's SuspendedState
 * back, and the `runbook:scaling` tag is removed from the staying service (the stopped one's goes with its release
 * tags, see ecs-releases stop()). Nothing when runbook changed nothing.
 */
export async function settleStayingColour(ctx: AwsContext, services: ColourServices, stopped: Colour): Promise<void> {
  const team = savedSuspension(services);
  if (!team) return;
  const staying = services[otherColour(stopped)];
  const target = (await describeColourTargets(ctx, services))[staying.colour];
  if (target && !sameSuspension(suspensionOf(target), team)) {
    await register(ctx, staying, { SuspendedState: team });
    log(ctx, `scale-in of ${staying.name} restored to the team's state (${encodeSuspension(team)})`);
  }
  await untagService(ctx, staying);
}

/** Deep copy of a policy's configuration with the live colour's service name and target group replaced. */
function rewriteFor<T>(value: T, from: { name: string; targetGroup: string }, to: typeof from): T {
  const tg = (arn: string) => {
    const i = arn.indexOf('targetgroup/');
    return i < 0 ? arn : arn.slice(i);
  };
  const fromTg = tg(from.targetGroup);
  const toTg = tg(to.targetGroup);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v === from.name ? to.name : v.split(fromTg).join(toTg);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && !(v instanceof Date)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value) as T;
}

async function describePolicies(ctx: AwsContext, s: ColourService): Promise<ScalingPolicy[]> {
  const id = resourceId(ctx, s);
  const all: ScalingPolicy[] = [];
  let token: string | undefined;
  do {
    const page = await awsCall('application-autoscaling:DescribeScalingPolicies', `the scaling policies of ${id}`, () =>
      ctx.clients.autoscaling.send(
        new DescribeScalingPoliciesCommand({
          ServiceNamespace: NAMESPACE,
          ResourceId: id,
          ScalableDimension: DIMENSION,
          ...(token ? { NextToken: token } : {}),
        }),
      ),
    );
    all.push(...(page.ScalingPolicies ?? []));
    token = page.NextToken;
  } while (token);
  return all;
}

/**
 * The live colour's target tracking and predictive scaling policies, copied to the starting colour when it has no
 * policy of its own: same names and settings, with the live service's name and target group (in a metric's
 * ResourceLabel or dimensions, e.g. ALBRequestCountPerTarget) replaced by the starting colour's. Step scaling
 * policies are not copied: the CloudWatch alarms that drive them are the team's own and name the live service.
 */
async function copyPolicies(ctx: AwsContext, live: ColourService, starting: ColourService): Promise<void> {
  if ((await describePolicies(ctx, starting)).length > 0) return;
  const id = resourceId(ctx, starting);
  // A metric's ServiceName dimension holds the short name (runbook.yaml may give an ARN).
  const short = (name: string) => name.split('/').pop() ?? name;
  const from = { name: short(live.name), targetGroup: ctx.spec.targetGroups[live.colour] };
  const to = { name: short(starting.name), targetGroup: ctx.spec.targetGroups[starting.colour] };
  for (const p of await describePolicies(ctx, live)) {
    if (p.PolicyType === 'StepScaling') {
      log(ctx, `step scaling policy ${p.PolicyName} of ${live.name} not copied: its CloudWatch alarms are yours`);
      continue;
    }
    await awsCall('application-autoscaling:PutScalingPolicy', `scaling policy ${p.PolicyName} of ${id}`, () =>
      ctx.clients.autoscaling.send(
        new PutScalingPolicyCommand({
          PolicyName: p.PolicyName,
          ServiceNamespace: NAMESPACE,
          ResourceId: id,
          ScalableDimension: DIMENSION,
          PolicyType: p.PolicyType,
          ...(p.TargetTrackingScalingPolicyConfiguration
            ? {
                TargetTrackingScalingPolicyConfiguration: rewriteFor(
                  p.TargetTrackingScalingPolicyConfiguration,
                  from,
                  to,
                ),
              }
            : {}),
          ...(p.PredictiveScalingPolicyConfiguration
            ? { PredictiveScalingPolicyConfiguration: rewriteFor(p.PredictiveScalingPolicyConfiguration, from, to) }
            : {}),
        }),
      ),
    );
    log(ctx, `scaling policy ${p.PolicyName} copied from ${live.name} to ${starting.name}`);
  }
}

async function describeScheduledActions(ctx: AwsContext, s: ColourService): Promise<ScheduledAction[]> {
  const id = resourceId(ctx, s);
  const all: ScheduledAction[] = [];
  let token: string | undefined;
  do {
    const page = await awsCall(
      'application-autoscaling:DescribeScheduledActions',
      `the scheduled actions of ${id}`,
      () =>
        ctx.clients.autoscaling.send(
          new DescribeScheduledActionsCommand({
            ServiceNamespace: NAMESPACE,
            ResourceId: id,
            ScalableDimension: DIMENSION,
            ...(token ? { NextToken: token } : {}),
          }),
        ),
    );
    all.push(...(page.ScheduledActions ?? []));
    token = page.NextToken;
  } while (token);
  return all;
}

/**
 * The live colour's scheduled actions, copied to the starting colour when it has none: the colour that goes live
 * keeps the team's schedule (same name, schedule, time zone, start and end, min and max).
 */
async function copyScheduledActions(ctx: AwsContext, live: ColourService, starting: ColourService): Promise<void> {
  if ((await describeScheduledActions(ctx, starting)).length > 0) return;
  const id = resourceId(ctx, starting);
  for (const a of await describeScheduledActions(ctx, live)) {
    await awsCall(
      'application-autoscaling:PutScheduledAction',
      `scheduled action ${a.ScheduledActionName} of ${id}`,
      () =>
        ctx.clients.autoscaling.send(
          new PutScheduledActionCommand({
            ServiceNamespace: NAMESPACE,
            ScheduledActionName: a.ScheduledActionName,
            ResourceId: id,
            ScalableDimension: DIMENSION,
            Schedule: a.Schedule,
            ...(a.Timezone ? { Timezone: a.Timezone } : {}),
            ...(a.StartTime ? { StartTime: a.StartTime } : {}),
            ...(a.EndTime ? { EndTime: a.EndTime } : {}),
            ...(a.ScalableTargetAction ? { ScalableTargetAction: a.ScalableTargetAction } : {}),
          }),
        ),
    );
    log(ctx, `scheduled action ${a.ScheduledActionName} copied from ${live.name} to ${starting.name}`);
  }
}
