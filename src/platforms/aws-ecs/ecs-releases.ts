import {
  DescribeTaskDefinitionCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateServiceCommand,
  type RegisterTaskDefinitionCommandInput,
  type Tag,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { PlatformError, type ReleaseRunner, type RunningRelease, type StartReleaseRequest } from '../types';
import {
  addressBook,
  carries,
  checkReleaseId,
  colourOf,
  COLOURS,
  describeColours,
  effectiveWeights,
  idleColour,
  otherColour,
  pointTestListener,
  readTraffic,
  taggedColour,
  type Colour,
  type ColourService,
  type ColourServices,
} from './blue-green';
import { prepareStartingColour, retireColour, SCALING_TAG, settleStayingColour } from './colour-scaling';
import { listenerAddress, type ListenerAddress } from './listener-addresses';
import { TAG, type AwsContext } from './context';
import { awsCall, awsPermanent } from './errors';

/** Task definition settings a new revision copies from its base (the rest is AWS's bookkeeping). */
const COPIED = [
  'taskRoleArn',
  'executionRoleArn',
  'networkMode',
  'requiresCompatibilities',
  'cpu',
  'memory',
  'volumes',
  'placementConstraints',
  'runtimePlatform',
  'ephemeralStorage',
  'pidMode',
  'ipcMode',
  'proxyConfiguration',
  'inferenceAccelerators',
  'enableFaultInjection',
] as const satisfies ReadonlyArray<keyof TaskDefinition & keyof RegisterTaskDefinitionCommandInput>;

/**
 * The fields of a task definition that RegisterTaskDefinition takes back: its family, containers and the
 * {@link COPIED} settings, for a new revision of the same family.
 */
export function registrationOf(td: TaskDefinition): RegisterTaskDefinitionCommandInput {
  const input: RegisterTaskDefinitionCommandInput = {
    family: td.family,
    containerDefinitions: td.containerDefinitions,
  };
  for (const key of COPIED) {
    if (td[key] !== undefined) Object.assign(input, { [key]: td[key] });
  }
  return input;
}

/**
 * The tag on a colour's ECS service naming the task definition revision of the release it carries. Written with the
 * release tags before UpdateService, so that a retried start finds the release's revision even when the update never
 * happened or ECS's circuit breaker rolled the service back to the previous revision.
 */
export const TASK_DEFINITION_TAG = 'runbook:task-definition';

/** ECS's limit of user tags on a resource (aws: tags do not count). */
const ECS_TAG_LIMIT = 50;

/**
 * A ReleaseRunner on ECS, blue/green: a release is one colour's ECS service (aws.services.blue/green) running a new
 * revision of the task definition with aws.image for its version, tagged with runbook:release/version/service/
 * environment. start() deploys to the colour that takes no traffic, waits until ECS reports the rollout stable and
 * every target of the colour's target group healthy, and points the test listener at it; its address is the test
 * listener's until the colour takes traffic, then the production listener's.
 *
 * start() registers the revision (or adopts the one a release command of this release registered, see
 * releaseRevision), tags the idle service with the release (and runbook:task-definition, the revision's ARN), then
 * updates the service: a crash at any point leaves either nothing on the service or a tag that stop() can
 * find and a retried start() adopts. Adoption deploys the tagged revision again when the service does not run it
 * (the update never happened, or the circuit breaker rolled it back); it registers nothing. The rollout deadline is
 * aws.rolloutTimeoutMs from the first attempt's scheduling (the activity's), not from each attempt. When the live
 * colour has an Application Auto Scaling target, the starting colour's is registered with its minimum and maximum and
 * scale-in is suspended on both colours for the canary (prepareStartingColour in colour-scaling.ts).
 *
 * Failures (permanent PlatformErrors): EcsNoIdleService (both colours take traffic), EcsContainerNotFound,
 * EcsTooManyTags (the base task definition's tags and the runbook's exceed ECS's 50),
 * EcsRolloutFailed (the deployment circuit breaker rolled back), EcsRolloutTimeout (not stable, or targets not
 * healthy, within aws.rolloutTimeoutMs), InvalidReleaseId, and the AWS failures of awsCall; throttling, 5xx and
 * network errors are rethrown for the activity's retry.
 */
export function createEcsReleaseRunner(ctx: AwsContext): ReleaseRunner {
  const { spec } = ctx;

  const matches = (s: ColourService, service: string, environment: string) =>
    (s.tags[TAG.service] ?? service) === service && (s.tags[TAG.environment] ?? environment) === environment;

  const startedAt = (s: ColourService): number => {
    const mine = s.deployments.find((d) => d.taskDefinition === s.taskDefinition) ?? s.deployments[0];
    return mine?.createdAt?.getTime() ?? ctx.now();
  };

  const running = (
    s: ColourService,
    address: ListenerAddress,
    fallback: { service: string; environment: string; version: string },
  ): RunningRelease => ({
    service: s.tags[TAG.service] ?? fallback.service,
    environment: s.tags[TAG.environment] ?? fallback.environment,
    releaseId: s.releaseId ?? '',
    version: s.version ?? fallback.version,
    host: address.host,
    port: address.port,
    scheme: address.scheme,
    ...(address.checkHost ? { checkHost: address.checkHost } : {}),
    pid: 0,
    startedAtMs: startedAt(s),
    logFile: `ecs:${spec.cluster}/${s.name}`,
  });

  /**
   * When the rollout must be over: aws.rolloutTimeoutMs after the activity was first scheduled (Temporal keeps that
   * instant across retries, so a retried start does not get a fresh timeout), or from now outside an activity.
   */
  function rolloutDeadline(): number {
    // Outside an activity (a script or a unit test) the deadline counts from now.
    const scheduledMs = ctx.activity()?.scheduledTimestampMs;
    return (scheduledMs !== undefined && scheduledMs > 0 ? scheduledMs : ctx.now()) + spec.rolloutTimeoutMs;
  }

  /** The colour a retried start adopts: tagged with the release and with its revision (older tags: running). */
  function adoptable(services: ColourServices, releaseId: string): ColourService | undefined {
    const s = taggedColour(services, releaseId);
    if (!s) return undefined;
    if (s.tags[TASK_DEFINITION_TAG]) return s;
    // Tagged by an older runbook, after its UpdateService: the service's revision is the release's while it runs.
    return carries(s) && s.taskDefinition ? s : undefined;
  }

  /** Tasks for the new release: as many as the live colour runs, at least one. */
  const desiredFor = (services: ColourServices, colour: Colour) => {
    const live = services[otherColour(colour)];
    return live.desiredCount > 0 ? live.desiredCount : 1;
  };

  async function deploy(s: ColourService, taskDefinition: string, desiredCount: number): Promise<void> {
    await awsCall('ecs:UpdateService', `ECS service ${s.name} in cluster ${spec.cluster}`, () =>
      ctx.clients.ecs.send(
        new UpdateServiceCommand({ cluster: spec.cluster, service: s.name, taskDefinition, desiredCount }),
      ),
    );
  }

  /** Polls until the colour runs `taskDefinition` alone, rolled out and at its desired count. */
  async function waitStable(
    colour: Colour,
    taskDefinition: string,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<ColourService> {
    for (;;) {
      const s = (await describeColours(ctx))[colour];
      // After a re-issued update the failed deployment of the same revision may still be listed: the PRIMARY counts.
      const mine =
        s.deployments.find((d) => d.taskDefinition === taskDefinition && d.status === 'PRIMARY') ??
        s.deployments.find((d) => d.taskDefinition === taskDefinition);
      if (mine?.rolloutState === 'FAILED') {
        throw awsPermanent(
          'EcsRolloutFailed',
          `${s.name}: ECS rolled back the deployment: ${mine.rolloutStateReason ?? 'no reason given'}`,
        );
      }
      if (!mine && s.taskDefinition !== taskDefinition) {
        throw awsPermanent(
          'EcsRolloutFailed',
          `${s.name}: ECS rolled back the deployment: the service runs ${s.taskDefinition ?? 'nothing'} again ` +
            `instead of ${taskDefinition} (or someone changed the service)`,
        );
      }
      // One deployment left, of the new revision, rolled out (ECS's rolloutState; the circuit breaker's FAILED is
      // handled above).
      const only = s.deployments.length === 1 ? s.deployments[0] : undefined;
      const rolledOut = only?.taskDefinition === taskDefinition && only.rolloutState === 'COMPLETED';
      if (rolledOut && s.runningCount === s.desiredCount) return s;
      if (ctx.now() >= deadline) {
        throw awsPermanent(
          'EcsRolloutTimeout',
          `${s.name}: not stable within ${spec.rolloutTimeoutMs} ms: ${describeState(s)}`,
        );
      }
      await ctx.sleep(spec.pollIntervalMs, signal);
    }
  }

  /** Polls until every target of the colour's target group is healthy (draining ones are leaving, so not counted). */
  async function waitTargetsHealthy(s: ColourService, deadline: number, signal?: AbortSignal): Promise<void> {
    const tg = spec.targetGroups[s.colour];
    for (;;) {
      const res = await awsCall('elasticloadbalancing:DescribeTargetHealth', `target group ${tg}`, () =>
        ctx.clients.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: tg })),
      );
      const targets = (res.TargetHealthDescriptions ?? []).filter((t) => t.TargetHealth?.State !== 'draining');
      const unhealthy = targets.filter((t) => t.TargetHealth?.State !== 'healthy');
      const ok =
        targets.length === 0 ? s.desiredCount === 0 : unhealthy.length === 0 && targets.length >= s.desiredCount;
      if (ok) return;
      if (ctx.now() >= deadline) {
        const detail =
          targets.length === 0
            ? `no target registered (does ECS service ${s.name} register its tasks in this target group?)`
            : [
                `${targets.length - unhealthy.length}/${s.desiredCount} healthy`,
                ...unhealthy.map((t) => {
                  const h = t.TargetHealth;
                  const why = [h?.Reason, h?.Description].filter(Boolean).join(': ');
                  return `${t.Target?.Id ?? '?'}:${t.Target?.Port ?? '?'} ${h?.State ?? 'unknown'}${why ? ` (${why})` : ''}`;
                }),
              ].join('; ');
        throw awsPermanent(
          'EcsRolloutTimeout',
          `${s.name}: the targets of ${tg} were not healthy within ${spec.rolloutTimeoutMs} ms: ${detail}`,
        );
      }
      await ctx.sleep(spec.pollIntervalMs, signal);
    }
  }

  return {
    // ECS is asked every few seconds (its APIs throttle), well within any rollout's time scale.
    recheckMs: 5_000,
    async start(req, signal) {
      checkReleaseId(req.releaseId);
      const deadline = rolloutDeadline();
      const services = await describeColours(ctx);
      let target = adoptable(services, req.releaseId);
      let taskDefinition: string;
      if (target) {
        taskDefinition = target.tags[TASK_DEFINITION_TAG] ?? target.taskDefinition ?? '';
        // The update never happened (a crash after TagResource), or ECS rolled the service back: deploy the
        // release's revision again. A circuit breaker that trips again ends the step in waitStable (EcsRolloutFailed).
        if (target.taskDefinition !== taskDefinition || target.desiredCount === 0) {
          await deploy(target, taskDefinition, desiredFor(services, target.colour));
        }
      } else {
        const weights = effectiveWeights(await readTraffic(ctx), services);
        const colour = idleColour(services, weights);
        const idle = services[colour];
        // The revision a release command of this release (its migration) registered already, or a new one.
        const revision = (await releaseRevision(ctx, baseRevision(services, colour), req)).arn;
        taskDefinition = revision;
        // Tagged before the update: whatever happens next, stop() finds the service and a retry adopts it.
        const tags = [...releaseTags(req), { key: TASK_DEFINITION_TAG, value: revision }];
        await awsCall('ecs:TagResource', `ECS service ${idle.name}`, () =>
          ctx.clients.ecs.send(new TagResourceCommand({ resourceArn: idle.arn, tags })),
        );
        await deploy(idle, revision, desiredFor(services, colour));
        target = idle;
      }
      // After the update (a minimum copied from the live colour starts tasks of the new revision, never the old one);
      // on a retry too, where it registers again only what differs.
      await prepareStartingColour(ctx, services, target.colour);
      // The test listener is pointed first: a target group that no listener uses leaves its targets "unused"
      // (not health-checked), so waiting for healthy targets would wait for nothing.
      const listener = await pointTestListener(ctx, target.colour);
      const stable = await waitStable(target.colour, taskDefinition, deadline, signal);
      await waitTargetsHealthy(stable, deadline, signal);
      const address = await listenerAddress(ctx, spec.testListener, listener);
      return running({ ...stable, releaseId: req.releaseId, version: stable.version ?? req.version }, address, req);
    },

    async list() {
      const services = await describeColours(ctx);
      const active = COLOURS.map((c) => services[c]).filter((s) => s.releaseId && s.desiredCount > 0);
      if (active.length === 0) return [];
      const addressOf = addressBook(ctx, effectiveWeights(await readTraffic(ctx), services));
      const fallback = { service: '', environment: '', version: '' };
      return Promise.all(active.map(async (s) => running(s, await addressOf(s.colour), fallback)));
    },

    async get(service, environment, releaseId) {
      const services = await describeColours(ctx);
      const s = colourOf(services, releaseId);
      if (!s || s.desiredCount === 0 || !matches(s, service, environment)) return undefined;
      const addressOf = addressBook(ctx, effectiveWeights(await readTraffic(ctx), services));
      return running(s, await addressOf(s.colour), { service, environment, version: '' });
    },

    /**
     * Scales the colour to 0 and removes its release tags; the target group's deregistration delay drains. Finds the
     * colour by its tag even when it runs nothing (a start that failed after tagging), so that the tags go too. With
     * Application Auto Scaling, its scalable target gets minimum and maximum 0 (all scaling suspended) first, and the
     * staying colour gets the team's SuspendedState back (see colour-scaling.ts).
     */
    async stop(service, environment, releaseId, _graceMs) {
      const services = await describeColours(ctx);
      const s = taggedColour(services, releaseId);
      if (!s || !matches(s, service, environment)) return false;
      // Minimum and maximum 0 first: a scalable target's minimum would scale the idle colour up again.
      const retired = await retireColour(ctx, services, s.colour).then(
        () => undefined,
        (err: unknown) => err,
      );
      const permanent = retired instanceof PlatformError && retired.permanent;
      if (retired !== undefined && !permanent) throw retired;
      await awsCall('ecs:UpdateService', `ECS service ${s.name} in cluster ${spec.cluster}`, () =>
        ctx.clients.ecs.send(new UpdateServiceCommand({ cluster: spec.cluster, service: s.name, desiredCount: 0 })),
      );
      // Its target could not be idled (AccessDenied, say): its tasks stop now all the same, and the tags stay, so that
      // a stop run again once it is fixed finds the colour.
      if (permanent) throw retired;
      // Before the untag: a retried stop still finds the colour, and the team's scaling state in its tag.
      await settleStayingColour(ctx, services, s.colour);
      const tagKeys = [TAG.release, TAG.version, TASK_DEFINITION_TAG, ...(s.tags[SCALING_TAG] ? [SCALING_TAG] : [])];
      await awsCall('ecs:UntagResource', `ECS service ${s.name}`, () =>
        ctx.clients.ecs.send(new UntagResourceCommand({ resourceArn: s.arn, tagKeys })),
      );
      return true;
    },

    /**
     * The colour's last 15 ECS service events, newest last: what ECS said about the rollout (the task's own output is
     * in the CloudWatch Logs of its task definition, and is not shown).
     */
    async describeLog(_service, _environment, releaseId) {
      const s = taggedColour(await describeColours(ctx), releaseId);
      const location = s
        ? `the events of ECS service ${s.name} in cluster ${spec.cluster}, and the task definition's CloudWatch Logs`
        : `cluster ${spec.cluster}: no ECS service carries release ${releaseId} any more`;
      if (!s) return { location };
      const excerpt = s.events
        .slice(0, 15)
        .reverse()
        .map((e) => `${e.createdAt?.toISOString() ?? '?'} ${e.message ?? ''}`)
        .join('\n');
      return excerpt ? { location, excerpt } : { location };
    },
  };
}

/** What names a release's revision: its tags say which release, version, service and environment it is of. */
export type ReleaseIdentity = Pick<StartReleaseRequest, 'service' | 'environment' | 'releaseId' | 'version'>;

const releaseTags = (req: ReleaseIdentity): Tag[] => [
  { key: TAG.release, value: req.releaseId },
  { key: TAG.version, value: req.version },
  { key: TAG.service, value: req.service },
  { key: TAG.environment, value: req.environment },
];

/**
 * The task definition a release of `colour` is based on: the live colour's (the other one), or the colour's own on
 * the first deploy. Throws AwsInvalidRequest (non-retryable) when neither service has one.
 */
export function baseRevision(services: ColourServices, colour: Colour): string {
  const idle = services[colour];
  const live = services[otherColour(colour)];
  const base = live.taskDefinition ?? idle.taskDefinition;
  if (!base) {
    throw awsPermanent(
      'AwsInvalidRequest',
      `neither ${live.name} nor ${idle.name} has a task definition to base the release on`,
    );
  }
  return base;
}

/** A release's task definition revision, and whether it was registered by this call. */
export interface ReleaseRevision {
  arn: string;
  taskDefinition: TaskDefinition;
  registered: boolean;
}

/** How many of a family's newest revisions are searched for the one a release registered already. */
const RECENT_REVISIONS = 5;

/**
 * The revision of a release, registered once whoever asks first: a release command (the migration, after the
 * snapshot and before the release starts) or start(). One of the family's newest revisions (ListTaskDefinitions)
 * tagged with this release and version is adopted; otherwise a new revision is registered from `base` (see
 * registerRevision). Two callers racing may both register, which costs a revision, never a wrong one.
 *
 * Throws EcsContainerNotFound, EcsTooManyTags, AwsNotFound and what awsCall throws.
 */
export async function releaseRevision(ctx: AwsContext, base: string, req: ReleaseIdentity): Promise<ReleaseRevision> {
  const described = await awsCall('ecs:DescribeTaskDefinition', `task definition ${base}`, () =>
    ctx.clients.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: base, include: ['TAGS'] })),
  );
  const td = described.taskDefinition;
  if (!td?.family) throw awsPermanent('AwsNotFound', `task definition ${base} was not returned`);
  const found = await registeredRevision(ctx, td.family, req);
  if (found) return { arn: found.taskDefinitionArn ?? '', taskDefinition: found, registered: false };
  const registered = await registerRevision(ctx, base, td, described.tags ?? [], req);
  return { arn: registered.taskDefinitionArn ?? '', taskDefinition: registered, registered: true };
}

/** The newest revision of `family` tagged with the release and its version, if one of the newest few is. */
async function registeredRevision(
  ctx: AwsContext,
  family: string,
  req: ReleaseIdentity,
): Promise<TaskDefinition | undefined> {
  const listed = await awsCall('ecs:ListTaskDefinitions', `task definition family ${family}`, () =>
    ctx.clients.ecs.send(
      new ListTaskDefinitionsCommand({ familyPrefix: family, status: 'ACTIVE', sort: 'DESC', maxResults: 20 }),
    ),
  );
  // familyPrefix also matches longer family names; the order is ours, since not every endpoint sorts.
  const revisionOf = (arn: string) => Number(/:(\d+)$/.exec(arn)?.[1] ?? 0);
  const newest = (listed?.taskDefinitionArns ?? [])
    .filter((arn) => arn.includes(`:task-definition/${family}:`))
    .sort((a, b) => revisionOf(b) - revisionOf(a))
    .slice(0, RECENT_REVISIONS);
  for (const arn of newest) {
    const res = await awsCall('ecs:DescribeTaskDefinition', `task definition ${arn}`, () =>
      ctx.clients.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] })),
    );
    const tags = new Map((res.tags ?? []).map((t) => [t.key, t.value]));
    if (tags.get(TAG.release) === req.releaseId && tags.get(TAG.version) === req.version && res.taskDefinition) {
      return res.taskDefinition;
    }
  }
  return undefined;
}

/**
 * Registers a new revision of the base task definition `td` for the release: aws.container's image is aws.image with
 * {version} filled in, aws.env is merged into its environment, and the revision carries the base's own tags plus the
 * release's. Throws EcsContainerNotFound, EcsTooManyTags and what awsCall throws.
 */
async function registerRevision(
  ctx: AwsContext,
  base: string,
  td: TaskDefinition,
  baseTags: Tag[],
  req: ReleaseIdentity,
): Promise<TaskDefinition> {
  const { spec } = ctx;
  const containers = td.containerDefinitions ?? [];
  const i = containers.findIndex((c) => c.name === spec.container);
  const container = containers[i];
  if (!container) {
    throw awsPermanent(
      'EcsContainerNotFound',
      `task definition ${base} has no container "${spec.container}" (it has ${
        containers.map((c) => `"${c.name}"`).join(', ') || 'none'
      }); fix aws.container in runbook.yaml`,
    );
  }
  const fill = (s: string) => s.replaceAll('{version}', req.version);
  const env = new Map((container.environment ?? []).map((e) => [e.name, e.value]));
  for (const [name, value] of Object.entries(spec.env)) env.set(name, fill(value));
  const containerDefinitions = containers.map((c, j) =>
    j === i ? { ...c, image: fill(spec.image), environment: [...env].map(([name, value]) => ({ name, value })) } : c,
  );
  // aws: tags are AWS's own (not settable, not counted); the base's runbook: tags belong to its own release.
  const kept = baseTags.filter((t) => t.key && !t.key.startsWith('aws:') && !t.key.startsWith('runbook:'));
  const tags: Tag[] = [...kept, ...releaseTags(req)];
  if (tags.length > ECS_TAG_LIMIT) {
    throw awsPermanent(
      'EcsTooManyTags',
      `task definition ${base} has ${kept.length} tags of its own; with the runbook's ${releaseTags(req).length} ` +
        `the new revision would have ${tags.length}, over ECS's limit of ${ECS_TAG_LIMIT}: remove ` +
        `${tags.length - ECS_TAG_LIMIT} tag(s) from ${base}`,
    );
  }
  const input: RegisterTaskDefinitionCommandInput = { ...registrationOf(td), containerDefinitions, tags };
  const res = await awsCall('ecs:RegisterTaskDefinition', `task definition family ${td.family}`, () =>
    ctx.clients.ecs.send(new RegisterTaskDefinitionCommand(input)),
  );
  if (!res.taskDefinition?.taskDefinitionArn) {
    throw awsPermanent('AwsInvalidRequest', `RegisterTaskDefinition for ${td.family} returned no ARN`);
  }
  return res.taskDefinition;
}

/** A service's rollout state in words, for timeout messages. */
function describeState(s: ColourService): string {
  const deployments = s.deployments.map(
    (d) =>
      `${d.status ?? '?'} ${shortName(d.taskDefinition)} ${d.rolloutState ?? 'no rollout state'} ` +
      `${d.runningCount ?? 0}/${d.desiredCount ?? 0} running${d.failedTasks ? `, ${d.failedTasks} failed tasks` : ''}`,
  );
  const last = s.events[0]?.message;
  return (
    `${s.runningCount}/${s.desiredCount} tasks running; deployments: ${deployments.join('; ') || 'none'}` +
    (last ? `; last event: ${last}` : '')
  );
}

const shortName = (arn?: string) => arn?.split('/').pop() ?? '?';
