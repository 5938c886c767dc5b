import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RouteSpec, StartReleaseRequest } from '../platforms/types';
import type { DeployPhase, ReleaseRef } from '../shared/deploy';
import { snapshotIdFor } from '../shared/ids';
import type { PlatformPlan } from '../shared/platform-plan';
import { isCommandCheck, type HttpSmokeCheck, type ResolvedService } from '../shared/service-plan';
import { act, healthGate, slow } from './activity-options';
import { runCommandSmokeChecks } from './release-commands';
import { say } from './wording';

/**
 * Step functions that deploy, rollback and the restore drill share. Each request names the platform only as the
 * plan's PlatformPlan target; nothing here knows which platform it is.
 */

/** Runs one named step: enters its phase (timeline, status, the RunbookPhase attribute), then does the work. */
export type StepRunner<P extends DeployPhase = DeployPhase> = <T>(
  phase: P,
  what: string,
  work: () => Promise<T>,
) => Promise<T>;

/** Where the service's traffic is routed. */
export function routeOf(plan: ResolvedService, platform: PlatformPlan): RouteSpec {
  return {
    service: plan.service,
    environment: plan.environment,
    listenPort: platform.listenPort,
    platform: platform.target,
  };
}

/** What names one release of the service (in `environment`: the drill's releases have their own). */
export function releaseKey(plan: ResolvedService, platform: PlatformPlan, releaseId: string, environment?: string) {
  return { service: plan.service, environment: environment ?? plan.environment, releaseId, platform: platform.target };
}

/** How to start `version` as the release `key`, on the service's database (or another one: a drill's copy). */
export function startRequest(
  plan: ResolvedService,
  platform: PlatformPlan,
  key: ReturnType<typeof releaseKey>,
  version: string,
  database: StartReleaseRequest['database'] = plan.database
    ? { name: plan.database.name, ...(plan.database.urlEnv ? { urlEnv: plan.database.urlEnv } : {}) }
    : undefined,
): StartReleaseRequest {
  return {
    ...key,
    version,
    ...(platform.release ? { release: platform.release } : {}),
    ...(database ? { database } : {}),
  };
}

/** The id of this run's snapshot for `purpose` (named after the workflow, so that a retry adopts it). */
export function snapshotName(plan: ResolvedService, workflowId: string, purpose: string): string {
  return snapshotIdFor(plan.service, plan.environment, workflowId, purpose);
}

/** Takes a snapshot of the service's database named after this run and its purpose (adopted on a retry). */
export function takeSnapshot(
  plan: ResolvedService,
  platform: PlatformPlan,
  workflowId: string,
  purpose: string,
  database: string,
) {
  return slow.takeSnapshot({
    snapshotId: snapshotName(plan, workflowId, purpose),
    service: plan.service,
    environment: plan.environment,
    database,
    workflowId,
    platform: platform.target,
  });
}

/**
 * A release brought up and proven: start (or adopt) it, the health gate (liveness and readiness before the
 * service's deadline), then the smoke checks against it directly. `showEmptySmoke` enters the smoke step even
 * without checks (as deploys always did). Returns the release.
 */
export async function bringUpRelease(
  run: StepRunner<'start-release' | 'health' | 'smoke'>,
  args: {
    plan: ResolvedService;
    platform: PlatformPlan;
    start: { what: string; run: () => Promise<ReleaseRef> };
    state: { candidate?: ReleaseRef };
    environment?: string;
    showEmptySmoke?: boolean;
    /** Adds a line to the timeline (a command smoke check's output). */
    note: (message: string) => void;
    /** The database a command smoke check is given (a drill's copy); default: the service's. */
    database?: { name: string; urlEnv?: string };
  },
): Promise<ReleaseRef> {
  const { plan, platform } = args;
  const release = await run('start-release', args.start.what, args.start.run);
  args.state.candidate = release;
  await run('health', say.healthGate(plan, release), () =>
    proxyActivities<Activities>(healthGate(plan)).waitHealthy({
      ...releaseKey(plan, platform, release.releaseId, args.environment),
      release,
      health: plan.health,
      deadlineAtMs: Date.now() + plan.health.deadlineMs,
    }),
  );
  if (plan.smoke.length > 0 || args.showEmptySmoke) {
    await run('smoke', say.smoke(plan, release), async () => {
      const http = plan.smoke.filter((c): c is HttpSmokeCheck => !isCommandCheck(c));
      if (http.length > 0) await act.runSmokeChecks({ release, checks: http, timeoutMs: plan.health.timeoutMs });
      const commands = plan.smoke.filter(isCommandCheck);
      if (commands.length > 0) {
        const ctx = { plan, platform, version: release.version, releaseId: release.releaseId, note: args.note };
        await runCommandSmokeChecks(ctx, commands, release, {
          ...(args.environment ? { environment: args.environment } : {}),
          ...(args.database ? { database: args.database } : {}),
        });
      }
    });
  }
  return release;
}
