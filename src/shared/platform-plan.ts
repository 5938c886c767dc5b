import type { ReleaseSpec } from './service-plan';
import type { PlatformTarget } from './target';

/**
 * What a runbook needs to know of the platform a service runs on, worked out once from the plan by that platform's
 * descriptor (src/platforms/<name>/descriptor.ts, looked up in src/platforms/descriptors.ts): workflows read these
 * values and never ask which platform it is. Derived at the start of each run rather than copied into the plan, so
 * that the plans of histories recorded before this existed mean the same. Workflow-safe: plain values and pure
 * functions.
 */
export interface PlatformPlan {
  /** The platform's name, for people (the timeline's plan line). */
  name: string;
  /**
   * Goes into every platform-touching activity request as its `platform` field: the worker's registry picks the
   * implementation by it.
   */
  target: PlatformTarget;
  /** The stable frontend port a route listens on; 0 where the platform routes by other means (a listener rule). */
  listenPort: number;
  /** How the release runner starts a release of this service, when the platform needs it in the request. */
  release?: ReleaseSpec;
  /** How long a release keeps serving its open connections after traffic left it, before it is stopped. */
  drainMs: number;
  /**
   * How long starting a release may take when it is a long, heartbeating wait (an ECS rollout); absent: starting is
   * a quick call (a local process).
   */
  releaseStartTimeoutMs?: number;
  /** How often a restore that the platform runs on its own is polled from the workflow (durable timers). */
  restorePollMs: number;
  /**
   * Whether a restore drill starts the application on the restored copy (a process on a spare port); otherwise the
   * copy is checked over its endpoint only.
   */
  drillStartsApp: boolean;
  /** How the steps that differ by platform are worded in the timeline. */
  words: PlatformWords;
  /**
   * How long after a moment the platform's traffic figures of it can all be read (CloudWatch: aws.metricsDelay plus
   * the minute in progress); a judged step bakes this much longer, so that the figures up to its bake's end are
   * judged too. Absent: the figures are there at once (HAProxy's counters).
   */
  metricsLagMs?: number;
  /**
   * The router that takes a failing canary out on its own after consecutive errors (analysis.cutoff), and how, named
   * for people. Absent: the platform's router has no such cut-off, and only the analysis windows judge.
   */
  cutoff?: { router: string; mechanism: string };
  /**
   * The platform can run a baseline beside a canary: a fresh release of the stable version at the canary's weight,
   * which the judge compares the canary with (Kayenta's canary/baseline pair), named for people. Needed where each
   * release is one process (single-host): the stable release carries the rest of the load and is slower under it, so
   * the stable release itself is no fair comparison. Absent: the canary is compared with the stable release.
   */
  baseline?: { how: string };
}

export interface PlatformWords {
  /** Where a restore into the database `target` goes, e.g. "shop_restore_x (pg_restore -j2)". */
  restoreInto(target: string, jobs: number): string;
  /** What clients get while the service is in maintenance. */
  maintenance: string;
  /** What the swap of a restored database into the live one did. */
  swapped(database: string, restored: string, replacedAs: string): string;
}
