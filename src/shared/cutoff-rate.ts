/**
 * The rate-based cut-off of a canary (analysis.cutoff.rate): the cut-off's watch reads the canary's counters every
 * few milliseconds and takes it out when its recent answers fail too often. HAProxy's own cut-off counts consecutive
 * errors only, so a canary failing half its requests needs about 2^(n+1) requests before n errors come in a row; a
 * rate over its last requests catches it after a few errors. Pure and workflow-safe (the rule is resolved in the
 * workflow, applied by the watchCutoff activity), unit-tested on its own.
 */
import type { CutoffSpec, RateCutoffSpec } from './service-plan';

/**
 * The default rule: at least 3 failed of the canary's last 20 or fewer attempts, and at least 25% of them. A canary
 * failing half its requests is out after about 3 failed requests; a healthy canary with a 1% background error rate
 * trips it by chance about once in 60 steps of 300 requests (3 errors within 12 attempts), one with 0.1% about once in
 * 60,000: raise minErrors for a service whose normal error rate is that high.
 */
export const DEFAULT_RATE_CUTOFF: RateCutoffSpec = { max5xxRate: 0.25, overRequests: 20, minErrors: 3 };

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
 * The canary's recent readings and the rule. `add()` each reading; it returns the trip once the errors since the
 * newest reading at least `overRequests` attempts back (or since the first, while there are fewer) reach both
 * `minErrors` and `max5xxRate`. Counters that go down (a router reload starts them at 0) start the span afresh.
 */
export function rateWindow(rule: RateCutoffSpec) {
  let readings: CounterReading[] = [];
  return {
    add(now: CounterReading): RateTrip | undefined {
      const last = readings.at(-1);
      if (last && (now.attempts < last.attempts || now.errors < last.errors)) readings = [];
      if (!last || now.attempts !== last.attempts) readings.push(now);
      let anchor = 0;
      for (let i = readings.length - 1; i >= 0; i--) {
        if (now.attempts - readings[i]!.attempts >= rule.overRequests) {
          anchor = i;
          break;
        }
      }
      if (anchor > 0) readings = readings.slice(anchor);
      const from = readings[0]!;
      const attempts = now.attempts - from.attempts;
      const errors = now.errors - from.errors;
      if (attempts <= 0 || errors < rule.minErrors) return undefined;
      const rate = errors / attempts;
      return rate >= rule.max5xxRate ? { attempts, errors, rate } : undefined;
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
