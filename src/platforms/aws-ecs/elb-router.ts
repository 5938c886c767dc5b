import { GetMetricDataCommand, type MetricDataQuery, type MetricDataResult } from '@aws-sdk/client-cloudwatch';
import {
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  RemoveTagsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { PlatformError, type RouteMember, type RouteSpec, type TrafficRouter, type WindowFigures } from '../types';
import {
  addressBook,
  applyWeights,
  carries,
  colourOf,
  COLOURS,
  describeColours,
  effectiveWeights,
  forwardAction,
  maintenanceAction,
  otherColour,
  readTraffic,
  saveStickiness,
  savedStickiness,
  saveWeightsTag,
  STICKINESS_TAG,
  weightsFromReleases,
  WEIGHTS_TAG,
  writeTerminal,
  type Colour,
  type Weights,
} from './blue-green';
import { resumeFullColour } from './colour-scaling';
import { describeListener, productionListenerArn, targetGroupLoadBalancerArns } from './listener-addresses';
import type { AwsContext } from './context';
import { awsCall, awsPermanent } from './errors';

const MINUTE_MS = 60_000;

/** A split or member the router refuses: the same request can never succeed. */
const INVALID_SPLIT = { type: 'InvalidTrafficSplit', permanent: true };

const label = (route: RouteSpec) => `${route.service}/${route.environment}`;

/**
 * A TrafficRouter on an application load balancer, blue/green: the production listener rule (aws.listenerRule, or
 * aws.listener's default action) forwards to the two colours' target groups with weights, and a release is the
 * colour whose ECS service carries its runbook:release tag and runs (desiredCount > 0; see carries and
 * createEcsReleaseRunner). Nothing is created:
 * ensureRoute checks that the rule and the target groups exist. Weights are percent (ALB takes 0..999).
 *
 * Counters are not cumulative on ALB: readCounters returns zeros and the analysis uses windowFigures, CloudWatch's
 * per-minute figures of the colour's target group, read aws.metricsDelay late (they arrive a minute or more late).
 *
 * Invalid input (a release that is not a member, a percent out of range, a split that does not sum to 100) throws
 * a permanent InvalidTrafficSplit PlatformError (the window figures of a release that is not a member: a retryable
 * InvalidSplitError, asked again while the colour may still come up); AWS failures are those of awsCall, and ElbUnexpectedAction (non-retryable)
 * when the rule's action is neither a forward to the two target groups nor the runbook's maintenance response.
 */
export function createElbRouter(ctx: AwsContext): TrafficRouter {
  const { spec } = ctx;

  /** The colour that carries the release; `refusal` says what its absence is (permanent or not). */
  async function memberColour(
    route: RouteSpec,
    releaseId: string,
    refusal: { type: string; permanent: boolean },
  ): Promise<Colour> {
    const found = colourOf(await describeColours(ctx), releaseId);
    if (!found) {
      throw new PlatformError(
        `release "${releaseId}" is not a member of route ${label(route)}: neither ECS service ` +
          `${spec.services.blue} nor ${spec.services.green} carries it (with tasks desired)`,
        refusal,
      );
    }
    return found.colour;
  }

  async function windowFigures(
    route: RouteSpec,
    releaseId: string,
    fromMs: number,
    toMs: number,
    opts: { stepFromMs?: number } = {},
  ): Promise<WindowFigures> {
    // CloudWatch publishes a minute's figures a minute or more after it ended: a window reads the whole minutes
    // that ended at least aws.metricsDelay before its bounds. Consecutive windows (each starts where the last ended)
    // then read consecutive minutes, none twice and none half-published; a window without a whole minute yet has
    // no figures (inconclusive, like a window with too few requests). Within a traffic step, no minute that began
    // before the step (the previous weight's, or the minute of the shift, which mixes both) is read.
    const published = Math.floor((fromMs - spec.metricsDelayMs) / MINUTE_MS) * MINUTE_MS;
    const stepStart = opts.stepFromMs === undefined ? -Infinity : Math.ceil(opts.stepFromMs / MINUTE_MS) * MINUTE_MS;
    const start = Math.max(published, stepStart);
    const end = Math.floor((toMs - spec.metricsDelayMs) / MINUTE_MS) * MINUTE_MS;
    if (end <= start) {
      return {
        requests: 0,
        errors5xx: 0,
        connectionErrors: 0,
        p95Ms: null,
        samples: 0,
        elbErrors5xx: 0,
        unhealthyHosts: 0,
      };
    }
    const colour = await memberColour(route, releaseId, { type: 'InvalidSplitError', permanent: false });
    const tgArn = spec.targetGroups[colour];
    const lbs = await targetGroupLoadBalancerArns(ctx, tgArn);
    const production = loadBalancerOfListener(productionListenerArn(ctx));
    const lbArn = lbs.find((a) => a === production) ?? lbs[0];
    if (!lbArn) {
      throw awsPermanent(
        'ElbTargetGroupUnused',
        `target group ${tgArn} (${colour}) is not attached to a load balancer, so it has no traffic figures`,
      );
    }
    const loadBalancer = { Name: 'LoadBalancer', Value: arnSuffix(lbArn, 'app/') };
    const targetGroup = [{ Name: 'TargetGroup', Value: arnSuffix(tgArn, 'targetgroup/') }, loadBalancer];
    const metric = (
      Id: string,
      MetricName: string,
      Stat: string,
      Dimensions: Array<{ Name: string; Value: string }> = targetGroup,
    ): MetricDataQuery => ({
      Id,
      MetricStat: { Metric: { Namespace: 'AWS/ApplicationELB', MetricName, Dimensions }, Period: 60, Stat },
      ReturnData: true,
    });
    const queries = [
      metric('requests', 'RequestCount', 'Sum'),
      metric('errors5xx', 'HTTPCode_Target_5XX_Count', 'Sum'),
      metric('connectionErrors', 'TargetConnectionErrorCount', 'Sum'),
      metric('p95', 'TargetResponseTime', 'p95'),
      metric('unhealthy', 'UnHealthyHostCount', 'Maximum'),
      // The load balancer's own 5xx (502/504 of a target that hangs or resets) exist per load balancer only.
      metric('lbErrors5xx', 'HTTPCode_ELB_5XX_Count', 'Sum', [loadBalancer]),
      metric('lbRequests', 'RequestCount', 'Sum', [loadBalancer]),
    ];
    const results: MetricDataResult[] = [];
    let token: string | undefined;
    do {
      const page = await awsCall('cloudwatch:GetMetricData', `the metrics of target group ${tgArn}`, () =>
        ctx.clients.cloudwatch.send(
          new GetMetricDataCommand({
            MetricDataQueries: queries,
            StartTime: new Date(start),
            EndTime: new Date(end),
            ...(token ? { NextToken: token } : {}),
          }),
        ),
      );
      results.push(...(page.MetricDataResults ?? []));
      token = page.NextToken;
    } while (token);
    const values = (id: string) => results.filter((r) => r.Id === id).flatMap((r) => r.Values ?? []);
    const sum = (id: string) => values(id).reduce((a, b) => a + b, 0);
    const p95 = values('p95');
    const requests = sum('requests');
    const elbErrors5xx = Math.round(elbShare(results));
    const figures: WindowFigures = {
      requests,
      errors5xx: sum('errors5xx') + elbErrors5xx,
      connectionErrors: sum('connectionErrors'),
      // The window's p95 is not derivable from per-minute p95s: the worst minute is the conservative stand-in.
      p95Ms: p95.length > 0 ? Math.round(Math.max(...p95) * 1000 * 1000) / 1000 : null,
      samples: requests,
      elbErrors5xx,
      unhealthyHosts: Math.max(0, ...values('unhealthy')),
    };
    return figures;
  }

  return {
    async ensureRoute(_route) {
      await readTraffic(ctx);
      const arns = [spec.targetGroups.blue, spec.targetGroups.green];
      const res = await awsCall('elasticloadbalancing:DescribeTargetGroups', `target groups ${arns.join(', ')}`, () =>
        ctx.clients.elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns })),
      );
      const missing = arns.filter((a) => !res.TargetGroups?.some((t) => t.TargetGroupArn === a));
      if (missing.length > 0) {
        throw awsPermanent('AwsNotFound', `target group(s) ${missing.join(', ')} not found: fix aws.targetGroups`);
      }
      await describeListener(ctx, spec.testListener);
    },

    /** Makes sure both target groups are in the forward action (a missing one at weight 0); the address is ALB's. */
    async addMember(route, member) {
      await memberColour(route, member.releaseId, INVALID_SPLIT);
      const traffic = await readTraffic(ctx);
      if (traffic.maintenance || (traffic.present.blue && traffic.present.green)) return;
      await applyWeights(ctx, traffic, traffic.weights ?? { blue: 0, green: 0 });
    },

    async setWeights(route, percent) {
      const services = await describeColours(ctx);
      const where = `setWeights on route ${label(route)}`;
      const weights: Weights = { blue: 0, green: 0 };
      for (const [releaseId, value] of Object.entries(percent)) {
        const colour = colourOf(services, releaseId)?.colour;
        if (!colour) {
          const members =
            COLOURS.flatMap((c) => (carries(services[c]) ? [services[c].releaseId] : [])).join(', ') || 'none';
          throw new PlatformError(`${where}: unknown member "${releaseId}" (members: ${members})`, INVALID_SPLIT);
        }
        if (!Number.isInteger(value) || value < 0 || value > 100) {
          throw new PlatformError(
            `${where}: "${releaseId}" must be an integer percent from 0 to 100, got ${value}`,
            INVALID_SPLIT,
          );
        }
        weights[colour] = value;
      }
      const sum = Object.values(percent).reduce((a, b) => a + b, 0);
      if (sum !== 100) {
        const split = Object.entries(percent)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
        throw new PlatformError(
          `${where}: the percentages must sum to 100, got ${sum} (${split || 'nothing given'})`,
          INVALID_SPLIT,
        );
      }
      await applyWeights(ctx, await readTraffic(ctx), weights);
      // The colour with all the traffic scales in again as the team had it (see colour-scaling.ts).
      const full = COLOURS.find((c) => weights[c] === 100);
      if (full) await resumeFullColour(ctx, services, full);
    },

    async getWeights(_route) {
      const services = await describeColours(ctx);
      const weights = effectiveWeights(await readTraffic(ctx), services);
      const total = weights.blue + weights.green;
      const carrying = COLOURS.filter((c) => carries(services[c]));
      const percent: Record<string, number> = {};
      for (const c of carrying) percent[services[c].releaseId ?? ''] = total > 0 ? (weights[c] * 100) / total : 0;
      if (carrying.length === 2 && total > 0) {
        // rounded so that the split still sums to 100
        const [a, b] = carrying.map((c) => services[c].releaseId ?? '') as [string, string];
        percent[a] = Math.round(percent[a] ?? 0);
        percent[b] = 100 - percent[a];
      } else for (const id of Object.keys(percent)) percent[id] = Math.round(percent[id] ?? 0);
      const addressOf = addressBook(ctx, weights);
      const members: RouteMember[] = [];
      for (const c of carrying) {
        const { host, port } = await addressOf(c);
        members.push({ releaseId: services[c].releaseId ?? '', host, port });
      }
      return { percent, members };
    },

    /**
     * Weight 0 for the release's colour (the other colour gets 100), then waits what of `drainMs` the target group's
     * deregistration delay does not already cover: the colour's tasks are deregistered when it is scaled to 0, and
     * ELB lets their in-flight requests finish for that delay, so waiting the whole drain first would count it twice.
     * The target group stays in the forward action at 0.
     */
    async removeMember(_route, releaseId, drainMs, signal) {
      signal?.throwIfAborted();
      const services = await describeColours(ctx);
      const colour = colourOf(services, releaseId)?.colour;
      if (!colour) return;
      const traffic = await readTraffic(ctx);
      const weights = effectiveWeights(traffic, services);
      if (weights[colour] > 0 || (!traffic.maintenance && !traffic.present[colour])) {
        const next = { [colour]: 0, [otherColour(colour)]: 100 } as unknown as Weights;
        await applyWeights(ctx, traffic, next);
      }
      await resumeFullColour(ctx, services, otherColour(colour));
      const delayMs = await deregistrationDelayMs(ctx, spec.targetGroups[colour]);
      const wait = Math.max(0, drainMs - delayMs);
      if (wait > 0) await ctx.sleep(wait, signal);
    },

    /** Zeros: ALB has no cumulative per-release counters (windowFigures measures windows). */
    async readCounters(_route, _releaseId) {
      return { responses: 0, errors5xx: 0, connectionErrors: 0, atMs: ctx.now() };
    },

    /** The worst minute's p95 of the whole minutes from `fromMs` on (none that began before it) published by `toMs`. */
    async latency(route, releaseId, fromMs, toMs) {
      const figures = await windowFigures(route, releaseId, fromMs, toMs, { stepFromMs: fromMs });
      return { p95Ms: figures.p95Ms, samples: figures.samples };
    },

    windowFigures,

    /**
     * On: saves the forward weights in the rule's runbook:weights tag, then answers every request with a
     * fixed-response 503 "maintenance: retry later". ALB fixed responses cannot set headers, so `retryAfterSeconds`
     * has no effect here (no Retry-After). Off: restores the forward action from the tag (or, without it, all to the
     * colour that runs a release). Idempotent both ways.
     */
    async setMaintenance(_route, on, _retryAfterSeconds) {
      const traffic = await readTraffic(ctx);
      if (on) {
        if (traffic.maintenance) return;
        await saveWeightsTag(ctx, traffic.arn, traffic.weights ?? { blue: 0, green: 0 });
        // The fixed response has no stickiness: keep it to restore with the weights (since 0: at once).
        const sticky = traffic.stickiness;
        if (sticky?.Enabled)
          await saveStickiness(ctx, traffic.arn, { durationS: sticky.DurationSeconds ?? 3600, sinceMs: 0 });
        await writeTerminal(ctx, traffic, maintenanceAction());
        return;
      }
      if (!traffic.maintenance) return;
      const weights = traffic.weights ?? weightsFromReleases(await describeColours(ctx));
      if (!weights) {
        throw awsPermanent(
          'ElbNoRelease',
          `maintenance off on ${traffic.arn}: the ${WEIGHTS_TAG} tag is missing and no colour runs a release, so ` +
            'there is nothing to forward to; set the forward action by hand',
        );
      }
      const saved = await savedStickiness(ctx, traffic.arn);
      const due = saved && ctx.now() >= saved.sinceMs + saved.durationS * 1000;
      await writeTerminal(
        ctx,
        traffic,
        forwardAction(ctx, weights, due ? { Enabled: true, DurationSeconds: saved.durationS } : undefined),
      );
      await awsCall('elasticloadbalancing:RemoveTags', traffic.arn, () =>
        ctx.clients.elb.send(
          new RemoveTagsCommand({
            ResourceArns: [traffic.arn],
            TagKeys: due ? [WEIGHTS_TAG, STICKINESS_TAG] : [WEIGHTS_TAG],
          }),
        ),
      );
    },
  };
}

/** A target group's deregistration delay (its attribute deregistration_delay.timeout_seconds; ELB's default 300 s). */
async function deregistrationDelayMs(ctx: AwsContext, tgArn: string): Promise<number> {
  const res = await awsCall('elasticloadbalancing:DescribeTargetGroupAttributes', `target group ${tgArn}`, () =>
    ctx.clients.elb.send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: tgArn })),
  );
  const value = res.Attributes?.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value;
  const seconds = value === undefined ? 300 : Number(value);
  return Number.isFinite(seconds) ? seconds * 1000 : 300_000;
}

/**
 * The load balancer's own 5xx that fall to a target group, minute by minute: each minute's HTTPCode_ELB_5XX_Count
 * weighted by the group's share of the load balancer's requests that minute (RequestCount of the group over the load
 * balancer's). CloudWatch has no per-target-group figure of them; a minute without requests on the load balancer
 * counts none.
 */
function elbShare(results: MetricDataResult[]): number {
  const byMinute = (id: string) => {
    const minutes = new Map<number, number>();
    for (const r of results.filter((x) => x.Id === id)) {
      (r.Values ?? []).forEach((v, i) => {
        const at = r.Timestamps?.[i]?.getTime();
        if (at !== undefined) minutes.set(at, (minutes.get(at) ?? 0) + v);
      });
    }
    return minutes;
  };
  const group = byMinute('requests');
  const lb = byMinute('lbRequests');
  let share = 0;
  for (const [at, errors] of byMinute('lbErrors5xx')) {
    const all = lb.get(at) ?? 0;
    if (all > 0) share += (errors * Math.min(all, group.get(at) ?? 0)) / all;
  }
  return share;
}

/** The CloudWatch dimension form of an ARN: from `marker` on (`targetgroup/<name>/<id>`, `app/<name>/<id>`). */
export function arnSuffix(arn: string, marker: string): string {
  const i = arn.indexOf(marker);
  return i < 0 ? arn : arn.slice(i);
}

/** The load balancer of a listener ARN (arn:...:listener/app/<lb>/<id>/<listener-id> -> arn:...:loadbalancer/app/<lb>/<id>). */
function loadBalancerOfListener(listenerArn: string): string {
  return listenerArn.replace(':listener/', ':loadbalancer/').replace(/\/[^/]+$/, '');
}
