import { Context } from '@temporalio/activity';
import type { ReleaseRef } from '../shared/deploy';
import type { PlatformDeps, RouteSpec, TrafficCounters } from '../platforms/types';
import { toActivityFailure } from './failures';
import { whileHeartbeating } from './heartbeat';
import { httpCheck, releaseUrl } from './http-checks';
import { platformPicker } from './platform';

export type TrafficActivityDeps = PlatformDeps;

/** Figures of one analysis window, measured by the router (counters, logs) and a direct liveness probe. */
export interface MeasuredWindow {
  fromMs: number;
  toMs: number;
  requests: number;
  errors5xx: number;
  connectionErrors: number;
  p95Ms: number | null;
  samples: number;
  live: boolean;
  liveDetail: string;
  counters: TrafficCounters;
}

/** Activities that move traffic and measure it (the platform's TrafficRouter does the work). */
export function createTrafficActivities(deps: TrafficActivityDeps) {
  const pick = platformPicker(deps.platforms);
  const routerFor = (route: RouteSpec) => pick(route).router;
  return {
    async ensureRoute(route: RouteSpec): Promise<void> {
      await routerFor(route).ensureRoute(route);
    },

    /** Throws InvalidTrafficSplit (non-retryable) when the router does not know the release as a member. */
    async addToRoute(route: RouteSpec, release: ReleaseRef): Promise<void> {
      try {
        await routerFor(route).addMember(route, {
          releaseId: release.releaseId,
          host: release.host,
          port: release.port,
        });
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
      const probe = await httpCheck(releaseUrl(args.release), args.liveness, args.timeoutMs);
      const window = {
        fromMs: args.from.atMs,
        toMs: counters.atMs,
        live: probe.ok,
        liveDetail: probe.detail,
        counters,
      };
      if (router.windowFigures) {
        const figures = await router.windowFigures(args.route, args.release.releaseId, args.from.atMs, counters.atMs);
        return { ...window, ...figures };
      }
      const reset = counters.responses < args.from.responses;
      const base = reset ? { responses: 0, errors5xx: 0, connectionErrors: 0 } : args.from;
      const latency = await router.latency(args.route, args.release.releaseId, args.from.atMs, counters.atMs);
      return {
        ...window,
        requests: counters.responses - base.responses,
        errors5xx: counters.errors5xx - base.errors5xx,
        connectionErrors: counters.connectionErrors - base.connectionErrors,
        p95Ms: latency.p95Ms,
        samples: latency.samples,
      };
    },

    async setMaintenance(route: RouteSpec, on: boolean, retryAfterSeconds = 30): Promise<void> {
      await routerFor(route).setMaintenance(route, on, retryAfterSeconds);
    },
  };
}
