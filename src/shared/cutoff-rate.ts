/**
 * The rate-based cut-off of a canary (analysis.cutoff.rate): the cut-off's watch reads the canary's counters every
 * few milliseconds and takes it out when its recent answers fail too often. HAProxy's own cut-off counts consecutive
 * errors only, so a canary failing half its requests needs about 2^(n+1) requests before n errors come in a row; a
 * rate over its last requests catches it after a few errors. Pure and workflow-safe (the rule is resolved in the
 * workflow, applied by the watchCutoff activity), unit-tested on its own.
 */
import type { CutoffSpec, RateCutoffSpec } from './service-plan';

/**
 * The default rule: within the canary's last 20 attempts, a run of them up to now with at least 3 failed and at least
 * 40% failed (3 within 7). Simulated (bench/results/cutoff-rate-sim.md): a canary failing half its requests is out at
 * its 3rd failed request in the median, by its 4th in 9 runs of 10; a healthy canary trips it by chance in 2.1% of
 * 1,000-request spans at a 1% background error rate, 10% at 2%, none seen at 0.1%. 25% (3 within 12) took the
 * half-failing canary out as soon in the median (a request sooner in the slowest tenth) and tripped more than twice
 * as often (4.9% at 1%, 30% at 2%).
 */
export const DEFAULT_RATE_CUTOFF: RateCutoffSpec = { max5xxRate: 0.4, overRequests: 20, minErrors: 3 };

/** The rate rule of a plan's cut-off: its own, the default when it says nothing, none when it is off. */
export function rateCutoffOf(cutoff: CutoffSpec | undefined): RateCutoffSpec | undefined {
  if (!cutoff || cutoff.rate === false) return undefined;
  return cutoff.rate ?? DEFAULT_RATE_CUTOFF;
}

/** A reading of a release's cumulative counters (they only grow within one router process). */
export interface CounterReading {
  /** Answers plus failed connection attempts. */
  attempts: number;
  /** 5xx answers plus failed connection attempts. */
  errors: number;
}

/** The rule tripped: the attempts and errors it saw over its span. */
export interface RateTrip {
  attempts: number;
  errors: number;
  rate: number;
}

/**
 * The canary's recent readings and the rule. `add()` each reading; it returns the trip once a run of its requests up to
 * now, within about its last `overRequests` (the readings back to the newest one at least that far), has at least
 * `minErrors` failed and at least `max5xxRate` of them: the longest such run, as the evidence. Any run, not only the
 * whole span: a canary that starts failing after a long healthy stretch would otherwise need `max5xxRate` of all its
 * last `overRequests` (5 of 20) instead of `minErrors`. Counters that go down (a router reload starts them at 0) start
 * the span afresh.
 */
export function rateWindow(rule: RateCutoffSpec) {
  let readings: CounterReading[] = [];
  return {
    add(now: CounterReading): RateTrip | undefined {
      const last = readings.at(-1);
      if (last && (now.attempts < last.attempts || now.errors < last.errors)) readings = [];
      if (!last || now.attempts !== last.attempts) readings.push(now);
      for (let i = readings.length - 1; i > 0; i--) {
        if (now.attempts - readings[i]!.attempts >= rule.overRequests) {
          readings = readings.slice(i);
          break;
        }
      }
      for (const from of readings) {
        const attempts = now.attempts - from.attempts;
        const errors = now.errors - from.errors;
        if (attempts <= 0 || errors < rule.minErrors) continue;
        const rate = errors / attempts;
        if (rate >= rule.max5xxRate) return { attempts, errors, rate };
      }
      return undefined;
    },
  };
}

/** The words of a trip, for the failed window's reason and the timeline. */
export function describeRateTrip(trip: RateTrip, rule: RateCutoffSpec): string {
  return (
    `${trip.errors} of the canary's last ${trip.attempts} requests failed (${Math.round(trip.rate * 100)}% >= ` +
    `${Math.round(rule.max5xxRate * 100)}%, at least ${rule.minErrors} errors; analysis.cutoff.rate)`
  );
}
