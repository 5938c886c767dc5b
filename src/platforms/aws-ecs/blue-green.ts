import { DescribeServicesCommand, type Deployment, type Service, type ServiceEvent } from '@aws-sdk/client-ecs';
import {
  AddTagsCommand,
  RemoveTagsCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  ModifyListenerCommand,
  ModifyRuleCommand,
  type Action,
  type Listener,
  type TargetGroupStickinessConfig,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { TAG, type AwsContext } from './context';
import { describeListener, listenerAddress, productionListenerArn, type ListenerAddress } from './listener-addresses';
import { awsCall, awsPermanent } from './errors';

/**
 * What the ECS release runner and the ELB router share: the two colours of a blue/green pair, their ECS services
 * with the runbook tags (which release a colour carries), the production forward action that splits traffic
 * between the colours' target groups, and the addresses of the listeners.
 */

export type Colour = 'blue' | 'green';
export const COLOURS: readonly Colour[] = ['blue', 'green'];
export const otherColour = (c: Colour): Colour => (c === 'blue' ? 'green' : 'blue');

/** Forward weights of the two colours' target groups. */
export interface Weights {
  blue: number;
  green: number;
}

/**
 * Tag on the production rule/listener that keeps the forward weights while maintenance replaces the forward action.
 * ELB tag values allow only letters, digits, spaces and `_ . : / = + - @`, so the value is `blue=90/green=10`
 * rather than JSON.
 */
export const WEIGHTS_TAG = 'runbook:weights';

/** The body of the maintenance response; also how the router recognises its own fixed response. */
export const MAINTENANCE_BODY = 'maintenance: retry later';
const MAINTENANCE_STATUS = '503';

const RELEASE_ID = /^[a-z0-9-]{1,40}$/;

/** One colour's ECS service as the runbook sees it. */
export interface ColourService {
  colour: Colour;
  name: string;
  arn: string;
  desiredCount: number;
  runningCount: number;
  taskDefinition?: string;
  deployments: Deployment[];
  /** Newest first, as ECS returns them. */
  events: ServiceEvent[];
  tags: Record<string, string>;
  /** The release the colour carries (its runbook:release tag). */
  releaseId?: string;
  version?: string;
  /** Where and how the service places its tasks: a one-off task of the colour (a release command) runs the same way. */
  launch: TaskLaunch;
}

/** The settings of a service that a one-off task (RunTask) copies to run where the service's tasks run. */
export type TaskLaunch = Pick<
  Service,
  | 'networkConfiguration'
  | 'launchType'
  | 'capacityProviderStrategy'
  | 'platformVersion'
  | 'placementConstraints'
  | 'placementStrategy'
>;

export type ColourServices = Record<Colour, ColourService>;

/** Throws a non-retryable InvalidReleaseId failure for an id that cannot be an ECS tag or a route member. */
export function checkReleaseId(releaseId: string): void {
  if (!RELEASE_ID.test(releaseId)) {
    throw awsPermanent('InvalidReleaseId', `release id "${releaseId}" must be 1 to 40 characters of [a-z0-9-]`);
  }
}

/**
 * Both colours' ECS services with their tags (DescribeServices include TAGS). Throws AwsNotFound (non-retryable)
 * when a service is missing or not ACTIVE, and what awsCall throws.
 */
export async function describeColours(ctx: AwsContext): Promise<ColourServices> {
  const { cluster, services } = ctx.spec;
  const names = [services.blue, services.green];
  const res = await awsCall('ecs:DescribeServices', `ECS services ${names.join(', ')} in cluster ${cluster}`, () =>
    ctx.clients.ecs.send(new DescribeServicesCommand({ cluster, services: names, include: ['TAGS'] })),
  );
  const one = (colour: Colour): ColourService => {
    const name = services[colour];
    const s = (res.services ?? []).find((x) => x.serviceName === name || x.serviceArn === name);
    if (!s || s.status !== 'ACTIVE' || !s.serviceArn) {
      const failure = (res.failures ?? []).find((f) => f.arn?.endsWith(`/${name}`) || f.arn === name);
      const why = s ? `status ${s.status ?? 'unknown'}` : (failure?.reason ?? 'not returned');
      throw awsPermanent(
        'AwsNotFound',
        `ECS service ${name} (${colour}) in cluster ${cluster}: ${why}; fix: create the service or correct ` +
          'aws.services in runbook.yaml',
      );
    }
    const tags = Object.fromEntries((s.tags ?? []).flatMap((t) => (t.key ? [[t.key, t.value ?? '']] : [])));
    return {
      colour,
      name,
      arn: s.serviceArn,
      desiredCount: s.desiredCount ?? 0,
      runningCount: s.runningCount ?? 0,
      ...(s.taskDefinition ? { taskDefinition: s.taskDefinition } : {}),
      deployments: s.deployments ?? [],
      events: s.events ?? [],
      tags,
      ...(tags[TAG.release] ? { releaseId: tags[TAG.release] } : {}),
      ...(tags[TAG.version] ? { version: tags[TAG.version] } : {}),
      launch: {
        networkConfiguration: s.networkConfiguration,
        launchType: s.launchType,
        capacityProviderStrategy: s.capacityProviderStrategy,
        platformVersion: s.platformVersion,
        placementConstraints: s.placementConstraints,
        placementStrategy: s.placementStrategy,
      },
    };
  };
  return { blue: one('blue'), green: one('green') };
}

/**
 * Whether a colour carries a release: its service has the runbook:release tag and runs (desiredCount > 0). A tag on a
 * service scaled to 0 is a leftover (stop() whose untag failed, or a start that never updated the service): it is no
 * member of the route and never counts as the stable release.
 */
export function carries(s: ColourService): boolean {
  return s.releaseId !== undefined && s.desiredCount > 0;
}

/** The colour that carries the release (see carries), if any: what the router and get/list see. */
export function colourOf(services: ColourServices, releaseId: string): ColourService | undefined {
  return COLOURS.map((c) => services[c]).find((s) => s.releaseId === releaseId && carries(s));
}

/**
 * The colour whose service has the release tag, whether it runs or not: for the release runner's own bookkeeping
 * (adopting a start that crashed before its UpdateService, stop's cleanup of the tags, the service events).
 */
export function taggedColour(services: ColourServices, releaseId: string): ColourService | undefined {
  return COLOURS.map((c) => services[c]).find((s) => s.releaseId === releaseId);
}

/**
 * The colour a new release goes to: the one without traffic (blue on the first deploy). Throws EcsNoIdleService
 * (non-retryable) when both take traffic: a deploy is in progress, or a rollback left both in.
 */
export function idleColour(services: ColourServices, weights: Weights): Colour {
  if (weights.blue > 0 && weights.green > 0) {
    const who = COLOURS.map(
      (c) => `${services[c].name} (${services[c].releaseId ?? 'no release'}, weight ${weights[c]})`,
    );
    throw awsPermanent(
      'EcsNoIdleService',
      `no idle ECS service: ${who.join(' and ')} both take traffic; finish or roll back the deploy in progress first`,
    );
  }
  return weights.blue === 0 ? 'blue' : 'green';
}

/** The production rule (or listener default action) and how it routes now. */
export interface TrafficState {
  kind: 'rule' | 'listener';
  arn: string;
  actions: Action[];
  /** The index of the action that ends the chain (forward, or the maintenance fixed response). */
  terminal: number;
  maintenance: boolean;
  /** The forward weights; during maintenance the saved ones, undefined when the tag is missing. */
  weights: Weights | undefined;
  /** Which colours' target groups the forward action names (all false during maintenance). */
  present: Record<Colour, boolean>;
  stickiness?: TargetGroupStickinessConfig;
}

/**
 * Reads the production forward action (aws.listenerRule via DescribeRules, or aws.listener's default action), and
 * during maintenance the saved weights. Throws ElbUnexpectedAction (non-retryable) when the action is neither a
 * forward to the two target groups nor the runbook's maintenance response.
 */
export async function readTraffic(ctx: AwsContext): Promise<TrafficState> {
  const { spec } = ctx;
  let kind: 'rule' | 'listener';
  let arn: string;
  let actions: Action[];
  if (spec.listenerRule) {
    kind = 'rule';
    arn = spec.listenerRule;
    const res = await awsCall('elasticloadbalancing:DescribeRules', `listener rule ${arn}`, () =>
      ctx.clients.elb.send(new DescribeRulesCommand({ RuleArns: [arn] })),
    );
    const rule = res.Rules?.find((r) => r.RuleArn === arn) ?? res.Rules?.[0];
    if (!rule) throw awsPermanent('AwsNotFound', `listener rule ${arn} was not returned by DescribeRules`);
    if (rule.IsDefault) {
      // ModifyRule refuses a listener's default rule: its actions are the listener's default actions.
      const listener = productionListenerArn(ctx);
      throw awsPermanent(
        'ElbDefaultRule',
        `listener rule ${arn} is the default rule of listener ${listener}: set aws.listener: ${listener} instead of ` +
          'aws.listenerRule in runbook.yaml',
      );
    }
    actions = rule.Actions ?? [];
  } else if (spec.listener) {
    kind = 'listener';
    arn = spec.listener;
    actions = (await describeListener(ctx, arn)).DefaultActions ?? [];
  } else {
    throw awsPermanent('AwsInvalidRequest', 'aws settings need listenerRule or listener (the production traffic)');
  }
  const where = `${kind === 'rule' ? 'listener rule' : 'listener'} ${arn}`;
  const terminal = terminalIndex(actions);
  const action = actions[terminal];
  const none = { blue: false, green: false };
  if (action?.Type === 'fixed-response' && isMaintenance(action)) {
    return { kind, arn, actions, terminal, maintenance: true, weights: await savedWeights(ctx, arn), present: none };
  }
  if (action?.Type !== 'forward') {
    throw awsPermanent(
      'ElbUnexpectedAction',
      `${where} ends in ${action ? `a ${action.Type} action` : 'no action'}; the runbook needs a forward action to ` +
        'aws.targetGroups.blue and green: fix the rule or runbook.yaml',
    );
  }
  const groups = action.ForwardConfig?.TargetGroups?.length
    ? action.ForwardConfig.TargetGroups.map((g) => ({ arn: g.TargetGroupArn ?? '', weight: g.Weight ?? 1 }))
    : [{ arn: action.TargetGroupArn ?? '', weight: 1 }];
  const weights: Weights = { blue: 0, green: 0 };
  const present = { ...none };
  for (const g of groups) {
    const colour = COLOURS.find((c) => spec.targetGroups[c] === g.arn);
    if (!colour) {
      throw awsPermanent(
        'ElbUnexpectedAction',
        `${where} forwards to ${g.arn}, which is neither aws.targetGroups.blue nor green: fix the rule or runbook.yaml`,
      );
    }
    weights[colour] = g.weight;
    present[colour] = true;
  }
  const stickiness = action.ForwardConfig?.TargetGroupStickinessConfig;
  return {
    kind,
    arn,
    actions,
    terminal,
    maintenance: false,
    weights,
    present,
    ...(stickiness ? { stickiness } : {}),
  };
}

function terminalIndex(actions: Action[]): number {
  const i = actions.findIndex((a) => !String(a.Type ?? '').startsWith('authenticate-'));
  return i < 0 ? actions.length : i;
}

function isMaintenance(action: Action): boolean {
  return (
    action.FixedResponseConfig?.StatusCode === MAINTENANCE_STATUS &&
    action.FixedResponseConfig.MessageBody === MAINTENANCE_BODY
  );
}

async function savedWeights(ctx: AwsContext, arn: string): Promise<Weights | undefined> {
  const value = await readTag(ctx, arn, WEIGHTS_TAG);
  return value === undefined ? undefined : decodeWeights(value);
}

export function encodeWeights(w: Weights): string {
  return `blue=${w.blue}/green=${w.green}`;
}

export function decodeWeights(value: string): Weights | undefined {
  const m = /^blue=(\d+)\/green=(\d+)$/.exec(value.trim());
  return m ? { blue: Number(m[1]), green: Number(m[2]) } : undefined;
}

/**
 * Weights when the rule does not say (maintenance without its tag): all on the colour that carries a running
 * release; with two, on the one deployed first (the other is the candidate of a deploy). Undefined with none.
 */
export function weightsFromReleases(services: ColourServices): Weights | undefined {
  const running = COLOURS.map((c) => services[c]).filter(carries);
  const created = (s: ColourService) =>
    Math.min(...s.deployments.map((d) => d.createdAt?.getTime() ?? Number.POSITIVE_INFINITY));
  const live = running.sort((a, b) => created(a) - created(b))[0];
  if (!live) return undefined;
  return live.colour === 'blue' ? { blue: 100, green: 0 } : { blue: 0, green: 100 };
}

/** The weights in force (or to restore after maintenance); none known counts as 0/0. */
export function effectiveWeights(traffic: TrafficState, services: ColourServices): Weights {
  return traffic.weights ?? weightsFromReleases(services) ?? { blue: 0, green: 0 };
}

export function forwardAction(ctx: AwsContext, w: Weights, stickiness?: TargetGroupStickinessConfig): Action {
  const tg = ctx.spec.targetGroups;
  return {
    Type: 'forward',
    ForwardConfig: {
      TargetGroups: [
        { TargetGroupArn: tg.blue, Weight: w.blue },
        { TargetGroupArn: tg.green, Weight: w.green },
      ],
      ...(stickiness ? { TargetGroupStickinessConfig: stickiness } : {}),
    },
  };
}

/**
 * The maintenance response. ALB fixed responses set only the status, content type and body: no header, so unlike
 * the single-host router there is no Retry-After (the body says to retry).
 */
export function maintenanceAction(): Action {
  return {
    Type: 'fixed-response',
    FixedResponseConfig: { StatusCode: MAINTENANCE_STATUS, ContentType: 'text/plain', MessageBody: MAINTENANCE_BODY },
  };
}

/**
 * The actions with their terminal action replaced (authenticate actions before it are kept, and its Order). The kept
 * actions are re-sent as read, except that an authenticate-oidc action comes back from DescribeRules/DescribeListeners
 * without its ClientSecret, which ModifyRule/ModifyListener then require: it is re-sent with UseExistingClientSecret.
 */
function replaceTerminal(actions: Action[], terminal: number, next: Action): Action[] {
  const order = actions[terminal]?.Order;
  return [...actions.slice(0, terminal).map(resendable), { ...next, ...(order !== undefined ? { Order: order } : {}) }];
}

function resendable(action: Action): Action {
  if (action.Type !== 'authenticate-oidc' || !action.AuthenticateOidcConfig) return action;
  const { ClientSecret: _secret, ...config } = action.AuthenticateOidcConfig;
  return { ...action, AuthenticateOidcConfig: { ...config, UseExistingClientSecret: true } };
}

/** Replaces the production rule's (or listener's) terminal action. */
export async function writeTerminal(ctx: AwsContext, traffic: TrafficState, next: Action): Promise<void> {
  const actions = replaceTerminal(traffic.actions, traffic.terminal, next);
  if (traffic.kind === 'rule') {
    await awsCall('elasticloadbalancing:ModifyRule', `listener rule ${traffic.arn}`, () =>
      ctx.clients.elb.send(new ModifyRuleCommand({ RuleArn: traffic.arn, Actions: actions })),
    );
  } else {
    await awsCall('elasticloadbalancing:ModifyListener', `listener ${traffic.arn}`, () =>
      ctx.clients.elb.send(new ModifyListenerCommand({ ListenerArn: traffic.arn, DefaultActions: actions })),
    );
  }
}

export async function saveWeightsTag(ctx: AwsContext, arn: string, w: Weights): Promise<void> {
  await awsCall('elasticloadbalancing:AddTags', arn, () =>
    ctx.clients.elb.send(
      new AddTagsCommand({ ResourceArns: [arn], Tags: [{ Key: WEIGHTS_TAG, Value: encodeWeights(w) }] }),
    ),
  );
}

/**
 * Tag on the production rule/listener that keeps the forward action's group stickiness while it is turned off: a
 * colour whose weight goes to 0 would otherwise keep its sticky clients (and answer them 503 once it scales to 0).
 * `duration=<seconds>/since=<ms>`: it is turned on again once `since` + the duration has passed (every cookie
 * issued before it was turned off has expired); `since=0` right away (maintenance off).
 */
export const STICKINESS_TAG = 'runbook:stickiness';

interface SavedStickiness {
  durationS: number;
  sinceMs: number;
}

async function readTag(ctx: AwsContext, arn: string, key: string): Promise<string | undefined> {
  const res = await awsCall('elasticloadbalancing:DescribeTags', arn, () =>
    ctx.clients.elb.send(new DescribeTagsCommand({ ResourceArns: [arn] })),
  );
  return res.TagDescriptions?.flatMap((d) => d.Tags ?? []).find((t) => t.Key === key)?.Value;
}

export async function savedStickiness(ctx: AwsContext, arn: string): Promise<SavedStickiness | undefined> {
  const value = await readTag(ctx, arn, STICKINESS_TAG);
  const m = value === undefined ? null : /^duration=(\d+)\/since=(\d+)$/.exec(value.trim());
  return m ? { durationS: Number(m[1]), sinceMs: Number(m[2]) } : undefined;
}

export async function saveStickiness(ctx: AwsContext, arn: string, saved: SavedStickiness): Promise<void> {
  await awsCall('elasticloadbalancing:AddTags', arn, () =>
    ctx.clients.elb.send(
      new AddTagsCommand({
        ResourceArns: [arn],
        Tags: [{ Key: STICKINESS_TAG, Value: `duration=${saved.durationS}/since=${saved.sinceMs}` }],
      }),
    ),
  );
}

export async function dropStickinessTag(ctx: AwsContext, arn: string): Promise<void> {
  await awsCall('elasticloadbalancing:RemoveTags', arn, () =>
    ctx.clients.elb.send(new RemoveTagsCommand({ ResourceArns: [arn], TagKeys: [STICKINESS_TAG] })),
  );
}

/**
 * The group stickiness to write with new weights. A colour that leaves (its weight goes to 0) while stickiness is on:
 * off, saved in STICKINESS_TAG. Stickiness saved earlier whose cookies have all expired: on again (`restored`).
 */
async function stickinessFor(
  ctx: AwsContext,
  traffic: TrafficState,
  w: Weights,
): Promise<{ stickiness?: TargetGroupStickinessConfig; restored: boolean }> {
  const current = traffic.stickiness;
  const leaving = COLOURS.some((c) => (traffic.weights?.[c] ?? 0) > 0 && w[c] === 0);
  if (current?.Enabled) {
    if (!leaving) return { stickiness: current, restored: false };
    await saveStickiness(ctx, traffic.arn, { durationS: current.DurationSeconds ?? 3600, sinceMs: ctx.now() });
    return { stickiness: { Enabled: false }, restored: false };
  }
  const saved = await savedStickiness(ctx, traffic.arn);
  if (saved && !leaving && ctx.now() >= saved.sinceMs + saved.durationS * 1000) {
    return { stickiness: { Enabled: true, DurationSeconds: saved.durationS }, restored: true };
  }
  return { ...(current ? { stickiness: current } : {}), restored: false };
}

/**
 * Sets the forward weights of the two colours (both target groups always named). During maintenance only the saved
 * weights change, so that maintenance off restores them; an unchanged split sends nothing. Group stickiness is
 * turned off before a colour leaves and back on once its cookies have expired (see stickinessFor).
 */
export async function applyWeights(ctx: AwsContext, traffic: TrafficState, w: Weights): Promise<void> {
  if (traffic.maintenance) {
    await saveWeightsTag(ctx, traffic.arn, w);
    return;
  }
  const same =
    traffic.present.blue &&
    traffic.present.green &&
    traffic.weights?.blue === w.blue &&
    traffic.weights.green === w.green;
  const { stickiness, restored } = await stickinessFor(ctx, traffic, w);
  if (same && !restored) return;
  await writeTerminal(ctx, traffic, forwardAction(ctx, w, stickiness));
  if (restored) await dropStickinessTag(ctx, traffic.arn);
}

/**
 * Addresses of the colours, cached per listener for one call: a colour with traffic is reached through the
 * production listener, one without through the test listener.
 */
export function addressBook(ctx: AwsContext, weights: Weights) {
  const cache = new Map<string, Promise<ListenerAddress>>();
  return (colour: Colour) => {
    const arn = weights[colour] > 0 ? productionListenerArn(ctx) : ctx.spec.testListener;
    let address = cache.get(arn);
    if (!address) {
      address = listenerAddress(ctx, arn);
      cache.set(arn, address);
    }
    return address;
  };
}

/** Points the test listener at a colour's target group (nothing is sent when it already forwards there). */
export async function pointTestListener(ctx: AwsContext, colour: Colour): Promise<Listener> {
  const arn = ctx.spec.testListener;
  const tg = ctx.spec.targetGroups[colour];
  const listener = await describeListener(ctx, arn);
  const actions = listener.DefaultActions ?? [];
  const terminal = terminalIndex(actions);
  const action = actions[terminal];
  const targets = action?.ForwardConfig?.TargetGroups?.length
    ? action.ForwardConfig.TargetGroups.filter((g) => (g.Weight ?? 1) > 0).map((g) => g.TargetGroupArn)
    : [action?.TargetGroupArn];
  if (action?.Type === 'forward' && targets.length === 1 && targets[0] === tg) return listener;
  const next = replaceTerminal(actions, terminal, { Type: 'forward', TargetGroupArn: tg });
  await awsCall('elasticloadbalancing:ModifyListener', `test listener ${arn}`, () =>
    ctx.clients.elb.send(new ModifyListenerCommand({ ListenerArn: arn, DefaultActions: next })),
  );
  return { ...listener, DefaultActions: next };
}
