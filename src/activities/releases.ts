import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ReleaseRef } from '../shared/deploy';
import { scrubSecrets } from '../shared/redact';
import type { HealthSpec, HttpSmokeCheck } from '../shared/service-plan';
import type { PlatformDeps, RunningRelease, StartReleaseRequest } from '../platforms/types';
import type { Targeted } from '../shared/target';
import { toActivityFailure } from './failures';
import { whileHeartbeating } from './heartbeat';
import { httpCheck, releaseTarget, type HttpOutcome } from './http-checks';
import { platformPicker } from './platform';

export type ReleaseActivityDeps = PlatformDeps;

export interface ReleaseKey extends Targeted {
  service: string;
  environment: string;
  releaseId: string;
}

const refOf = (r: RunningRelease): ReleaseRef => ({
  releaseId: r.releaseId,
  version: r.version,
  host: r.host,
  port: r.port,
  ...(r.scheme ? { scheme: r.scheme } : {}),
  ...(r.checkHost ? { checkHost: r.checkHost } : {}),
});

/** Failure types the workflows react to; all non-retryable (retrying would not change the answer). */
export const releaseFailure = {
  startFailed: 'ReleaseStartFailed',
  crashed: 'ReleaseCrashed',
  unhealthy: 'HealthGateFailed',
  smoke: 'SmokeCheckFailed',
} as const;

/** Activities that start, check and stop releases (the platform's ReleaseRunner does the work). */
export function createReleaseActivities(deps: ReleaseActivityDeps) {
  const pick = platformPicker(deps.platforms);
  /**
   * The release stopped: the failure names where its log is and shows none of it (the message goes into the history
   * and the Web UI, and an app may print its secrets); a platform's own words about it (ECS events) are shown scrubbed.
   */
  async function crashed(key: ReleaseKey, what: string): Promise<never> {
    const log = await pick(key).releases.describeLog(key.service, key.environment, key.releaseId);
    throw ApplicationFailure.nonRetryable(
      `${what}: the release process ${key.releaseId} is not running; its log: ${log.location}` +
        (log.excerpt ? `. Last events:\n${scrubSecrets(log.excerpt)}` : ''),
      releaseFailure.crashed,
    );
  }

  return {
    /**
     * Starts the release (or adopts it: the id comes from the workflow id, so a retry never starts two).
     * Throws ReleaseStartFailed (non-retryable) for a missing folder or command.
     */
    async startRelease(spec: StartReleaseRequest): Promise<ReleaseRef> {
      try {
        const { releases } = pick(spec);
        return refOf(await whileHeartbeating(() => releases.start(spec, Context.current().cancellationSignal)));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** The release if its process is alive. */
    async getRelease(key: ReleaseKey): Promise<ReleaseRef | null> {
      const r = await pick(key).releases.get(key.service, key.environment, key.releaseId);
      return r ? refOf(r) : null;
    },

    /** A running release of this version of the service, if any (a rollback adopts it). */
    async findRelease(
      req: { service: string; environment: string; version: string } & Targeted,
    ): Promise<ReleaseRef | null> {
      const found = (await pick(req).releases.list()).find(
        (r) => r.service === req.service && r.environment === req.environment && r.version === req.version,
      );
      return found ? refOf(found) : null;
    },

    async stopRelease(key: ReleaseKey & { graceMs: number }): Promise<boolean> {
      return pick(key).releases.stop(key.service, key.environment, key.releaseId, key.graceMs);
    },

    /**
     * The health gate: liveness and readiness must both answer as expected before `deadlineAtMs` (absolute,
     * so a retried attempt keeps the original deadline). Polls, heartbeats, and fails at once with the
     * log tail if the process dies. Throws HealthGateFailed or ReleaseCrashed (non-retryable).
     */
    async waitHealthy(args: ReleaseKey & { release: ReleaseRef; health: HealthSpec; deadlineAtMs: number }) {
      const ctx = Context.current();
      let last: HttpOutcome[] = [];
      // Is it still running? Asked as often as the platform's runner says it can be.
      const { releases } = pick(args); // once: the loop polls every 250 ms
      const recheckMs = releases.recheckMs ?? 0;
      let checkedAt = -Infinity;
      for (let attempt = 1; ; attempt++) {
        if (Date.now() - checkedAt >= recheckMs) {
          checkedAt = Date.now();
          if (!(await releases.get(args.service, args.environment, args.releaseId))) await crashed(args, 'health gate');
        }
        last = [
          await httpCheck(
            releaseTarget(args.release),
            args.health.liveness,
            args.health.timeoutMs,
            ctx.cancellationSignal,
          ),
          await httpCheck(
            releaseTarget(args.release),
            args.health.readiness,
            args.health.timeoutMs,
            ctx.cancellationSignal,
          ),
        ];
        ctx.heartbeat({ attempt, last: last.map((o) => o.detail) });
        if (last.every((o) => o.ok)) return { attempts: attempt, checks: last.map((o) => o.detail) };
        if (Date.now() > args.deadlineAtMs) {
          throw ApplicationFailure.nonRetryable(
            `release ${args.release.version} did not become healthy within the deadline: ${last
              .filter((o) => !o.ok)
              .map((o) => o.detail)
              .join('; ')}`,
            releaseFailure.unhealthy,
          );
        }
        await sleep(250, undefined, { signal: ctx.cancellationSignal });
      }
    },

    /** Runs the smoke checks against the release directly (not through the router). Throws SmokeCheckFailed. */
    async runSmokeChecks(args: { release: ReleaseRef; checks: HttpSmokeCheck[]; timeoutMs: number }) {
      const results: HttpOutcome[] = [];
      for (const check of args.checks)
        results.push(await httpCheck(releaseTarget(args.release), check, args.timeoutMs));
      const failed = results.filter((r) => !r.ok);
      if (failed.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `smoke checks failed on ${args.release.version}: ${failed.map((r) => r.detail).join('; ')}`,
          releaseFailure.smoke,
        );
      }
      return results.map((r) => r.detail);
    },
  };
}
