import { Context } from '@temporalio/activity';
import type { ReleaseRef } from '../shared/deploy';
import { compareReleases, type Comparison } from '../shared/judge';
import { describeRateTrip, rateWindow, type RateTrip } from '../shared/cutoff-rate';
import type { CompareSpec, RateCutoffSpec } from '../shared/service-plan';
import type {
  CutoffReport,
  MemberOptions,
  PlatformDeps,
  RouteSpec,
  TrafficCounters,
  TrafficRouter,
} from '../platforms/types';
import { toActivityFailure } from './failures';
import { whileHeartbeating } from './heartbeat';
import { httpCheck, releaseTarget, type HttpOutcome } from './http-checks';
import { platformPicker } from './platform';

export type TrafficActivityDeps = PlatformDeps;

/** How often watchCutoff asks the router whether it took the canary out (HAProxy's runtime API, one command). */
const CUTOFF_POLL_MS = 20;

/** Figures of one analysis window, measured by the router (counters, logs) and a direct liveness probe. */
export interface MeasuredWindow {
  fromMs: number;
  toMs: number;
  requests: number;
  errors5xx: number;
  connectionErrors: number;
  p95Ms: number | null;
  samples: number;
  /** The load balancer's own 5xx counted for the release (aws-ecs), already in errors5xx. */
  elbErrors5xx?: number;
  /** The most unhealthy targets of the release in the window (aws-ecs); any makes the window not live. */
  unhealthyHosts?: number;
  live: boolean;
  liveDetail: string;
  counters: TrafficCounters;
}

/** A release's attempts and errors so far in a step (connection errors count on both sides). */
export interface StepTotals {
  /** Responses plus connection errors. */
  attempts: number;
  /** 5xx responses plus connection errors. */
  errors: number;
}

/** One window of a judged step: the canary's figures, the stable release's over the same window, and the judge. */
export interface JudgedWindow {
  canary: MeasuredWindow;
  stable: { requests: number; errors5xx: number; connectionErrors: number; counters: TrafficCounters };
  /** The canary against the stable release since the step began (its prior totals plus this window). */
  comparison: Comparison;
}

/** Activities that move traffic and measure it (the platform's TrafficRouter does the work). */
export function createTrafficActivities(deps: TrafficActivityDeps) {
  const pick = platformPicker(deps.platforms);
  const routerFor = (route: RouteSpec) => pick(route).router;
  return {
    async ensureRoute(route: RouteSpec): Promise<void> {
      await routerFor(route).ensureRoute(route);
    },

    /**
     * Adds the release to the route at weight 0; `options.cutoff` asks the router to take it out on its own after
     * consecutive errors while another release serves (routers without a cut-off ignore it). Throws
     * InvalidTrafficSplit (non-retryable) when the router does not know the release as a member.
     */
    async addToRoute(route: RouteSpec, release: ReleaseRef, options?: MemberOptions): Promise<void> {
      try {
        const member = { releaseId: release.releaseId, host: release.host, port: release.port };
        await routerFor(route).addMember(route, member, ...(options ? [options] : []));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /**
     * Sets the split in percent per releaseId at once. This is the one implementation of "put traffic back"
     * that deploy's automatic rollback and the rollback workflow share. Throws InvalidTrafficSplit (non-retryable)
     * for a split the router refuses.
     */
    async setTraffic(route: RouteSpec, percent: Record<string, number>): Promise<Record<string, number>> {
      try {
        await routerFor(route).setWeights(route, percent);
      } catch (err) {
        throw toActivityFailure(err);
      }
      return percent;
    },

    async getTraffic(route: RouteSpec) {
      return routerFor(route).getWeights(route);
    },

    /** Drains and removes a member; heartbeats while it waits for in-flight requests. */
    async removeFromRoute(route: RouteSpec, releaseId: string, drainMs: number): Promise<void> {
      await whileHeartbeating(() =>
        routerFor(route).removeMember(route, releaseId, drainMs, Context.current().cancellationSignal),
      );
    },

    /**
     * Waits until the router takes the release out on its own (its cut-off, see addToRoute) and returns what it
     * reported; returns null at once for a router without a cut-off. With `cutoff.rate` (analysis.cutoff.rate, since patch
     * canary-rate-cutoff), it also reads the release's counters at each look and, when its recent requests fail too
     * often (shared/cutoff-rate.ts), has the router take it out at once (takeOut) and reports that. Runs until then or
     * until cancelled (the step ends), polling every {@link CUTOFF_POLL_MS} ms and heartbeating.
     */
    async watchCutoff(
      route: RouteSpec,
      releaseId: string,
      cutoff?: { errorLimit: number; rate?: RateCutoffSpec },
    ): Promise<CutoffReport | null> {
      const router = routerFor(route);
      if (!router.cutoffState) return null;
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      const rule = cutoff?.rate && router.cutoffLook && router.takeOut ? { ...cutoff, rate: cutoff.rate } : undefined;
      const byRate = rule ? rateWindow(rule.rate) : undefined;
      let beatAt = 0;
      for (;;) {
        if (byRate && rule) {
          const look = await router.cutoffLook!(route, releaseId);
          if (look.report) return look.report;
          const trip = look.counters ? byRate.add(look.counters) : undefined;
          if (trip) return takeOutByRate(router, route, releaseId, trip, rule);
        } else {
          const report = await router.cutoffState(route, releaseId);
          if (report) return report;
        }
        if (Date.now() - beatAt >= 1_000) {
          ctx.heartbeat();
          beatAt = Date.now();
        }
        await ctx.sleep(CUTOFF_POLL_MS);
        if (signal.aborted) throw signal.reason;
      }
    },

    async readTrafficCounters(route: RouteSpec, releaseId: string): Promise<TrafficCounters> {
      return routerFor(route).readCounters(route, releaseId);
    },

    /**
     * Closes an analysis window that started at `from`: the release's responses and 5xx since then (a
     * router restart resets counters; then the window counts from zero), the p95 latency from the router's
     * per-request logs, and a direct liveness probe of the release.
     */
    async measureWindow(args: {
      route: RouteSpec;
      release: ReleaseRef;
      from: TrafficCounters;
      liveness: { path: string; expectStatus: number };
      timeoutMs: number;
    }): Promise<MeasuredWindow> {
      const router = routerFor(args.route);
      const counters = await router.readCounters(args.route, args.release.releaseId);
      const probe = await httpCheck(releaseTarget(args.release), args.liveness, args.timeoutMs);
      const window = await windowOf(router, args.route, args.release.releaseId, args.from, counters);
      return {
        fromMs: args.from.atMs,
        toMs: counters.atMs,
        ...liveness(probe, window),
        counters,
        ...window,
      };
    },

    /**
     * A window of a judged step: measureWindow's figures of the canary, the stable release's over the same window,
     * and the judge of the two since the step began (`prior`: both releases' totals before this window), with the
     * statistics of shared/judge.ts computed here so that the history records the evidence each verdict used.
     * Latency distributions come from the router when it has them (single-host's per-request log).
     */
    async measureAgainstStable(args: {
      route: RouteSpec;
      release: ReleaseRef;
      stable: ReleaseRef;
      from: { canary: TrafficCounters; stable: TrafficCounters };
      /**
       * `warmupMs`: the start of the step whose latency is not judged (a new release warming up): latency is compared
       * on the requests after it.
       */
      step: { fromMs: number; warmupMs?: number; prior: { canary: StepTotals; stable: StepTotals } };
      liveness: { path: string; expectStatus: number };
      timeoutMs: number;
      compare: CompareSpec;
      minRequests: number;
      looks: number;
      /** `stable` is a baseline (a fresh process of the stable version at the canary's weight): so worded. */
      against?: 'baseline';
    }): Promise<JudgedWindow> {
      const router = routerFor(args.route);
      const canaryCounters = await router.readCounters(args.route, args.release.releaseId);
      const stableCounters = await router.readCounters(args.route, args.stable.releaseId);
      const probe = await httpCheck(releaseTarget(args.release), args.liveness, args.timeoutMs);
      const toMs = canaryCounters.atMs;
      // both releases over the same span, and nothing from before the step (a router that reads figures by period)
      const inStep = { stepFromMs: args.step.fromMs };
      const canaryWindow = await windowOf(
        router,
        args.route,
        args.release.releaseId,
        args.from.canary,
        canaryCounters,
        inStep,
      );
      const stableWindow = await windowOf(
        router,
        args.route,
        args.stable.releaseId,
        args.from.stable,
        { ...stableCounters, atMs: toMs },
        inStep,
      );
      const latencyFromMs = args.step.fromMs + (args.step.warmupMs ?? 0);
      // judged once at least half a warm-up's worth of requests came after it
      const warmingUp = toMs - latencyFromMs < (args.step.warmupMs ?? 0) / 2;
      const [canaryLatency, stableLatency] = warmingUp
        ? [
            { p95Ms: canaryWindow.p95Ms, samples: canaryWindow.samples },
            { p95Ms: stableWindow.p95Ms, samples: stableWindow.samples },
          ]
        : await Promise.all(
            [args.release, args.stable].map((r) =>
              router.latency(args.route, r.releaseId, latencyFromMs, toMs, { values: true }),
            ),
          );
      const side = (prior: StepTotals, w: typeof canaryWindow, l: typeof canaryLatency) => ({
        requests: prior.attempts + w.requests + w.connectionErrors,
        errors: prior.errors + w.errors5xx + w.connectionErrors,
        p95Ms: l!.p95Ms,
        samples: l!.samples,
      });
      const distributions =
        canaryLatency?.values && stableLatency?.values
          ? { canary: canaryLatency.values, stable: stableLatency.values }
          : undefined;
      const comparison = compareReleases(args.compare, {
        canary: side(args.step.prior.canary, canaryWindow, canaryLatency),
        stable: side(args.step.prior.stable, stableWindow, stableLatency),
        minRequests: args.minRequests,
        looks: args.looks,
        sinceMs: args.step.fromMs,
        warmingUp,
        ...(distributions ? { distributions } : {}),
        ...(args.against ? { against: args.against } : {}),
      });
      return {
        canary: {
          fromMs: args.from.canary.atMs,
          toMs,
          ...liveness(probe, canaryWindow),
          counters: canaryCounters,
          ...canaryWindow,
        },
        stable: {
          requests: stableWindow.requests,
          errors5xx: stableWindow.errors5xx,
          connectionErrors: stableWindow.connectionErrors,
          counters: stableCounters,
        },
        comparison,
      };
    },

    async setMaintenance(route: RouteSpec, on: boolean, retryAfterSeconds = 30): Promise<void> {
      await routerFor(route).setMaintenance(route, on, retryAfterSeconds);
    },
  };
}

/** The rate rule tripped: the router takes the canary out at once, and the watch reports it with what the rule saw. */
async function takeOutByRate(
  router: TrafficRouter,
  route: RouteSpec,
  releaseId: string,
  trip: RateTrip,
  { errorLimit, rate: rule }: { errorLimit: number; rate: RateCutoffSpec },
): Promise<CutoffReport> {
  const detail = `the cut-off took the canary out: ${describeRateTrip(trip, rule)}`;
  const counters = await router.takeOut!(route, releaseId, detail);
  return {
    atMs: counters.atMs,
    errorLimit,
    detail,
    counters,
    rate: { errors: trip.errors, attempts: trip.attempts, ...rule },
  };
}

/**
 * Whether the release was live in a window: its liveness probe answered, and the router saw none of its targets
 * unhealthy (aws-ecs: UnHealthyHostCount of its target group); the window is judged failed otherwise.
 */
function liveness(probe: HttpOutcome, window: { unhealthyHosts?: number }): { live: boolean; liveDetail: string } {
  const unhealthy = window.unhealthyHosts ?? 0;
  if (unhealthy === 0) return { live: probe.ok, liveDetail: probe.detail };
  const targets = `${unhealthy} target${unhealthy === 1 ? '' : 's'}`;
  return {
    live: false,
    liveDetail: `${probe.detail}, and the load balancer found ${targets} unhealthy in the window (UnHealthyHostCount)`,
  };
}

/**
 * A release's figures between two counter readings: the router's own window figures when it measures windows
 * (CloudWatch), else the difference of its cumulative counters (a router restart resets them; then the window counts
 * from zero) and the p95 of its per-request log.
 */
async function windowOf(
  router: TrafficRouter,
  route: RouteSpec,
  releaseId: string,
  from: TrafficCounters,
  to: TrafficCounters,
  opts: { stepFromMs?: number } = {},
): Promise<
  Pick<
    MeasuredWindow,
    'requests' | 'errors5xx' | 'connectionErrors' | 'p95Ms' | 'samples' | 'elbErrors5xx' | 'unhealthyHosts'
  >
> {
  if (router.windowFigures) return router.windowFigures(route, releaseId, from.atMs, to.atMs, opts);
  const reset = to.responses < from.responses;
  const base = reset ? { responses: 0, errors5xx: 0, connectionErrors: 0 } : from;
  const latency = await router.latency(route, releaseId, from.atMs, to.atMs);
  return {
    requests: to.responses - base.responses,
    errors5xx: to.errors5xx - base.errors5xx,
    connectionErrors: to.connectionErrors - base.connectionErrors,
    p95Ms: latency.p95Ms,
    samples: latency.samples,
  };
}
