import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { DrillRunRecord } from '../orchestrator-store/orchestrator-db';
import {
  type AmcheckProgress,
  PlatformError,
  type PlatformDeps,
  type RouteSpec,
  type SnapshotManifest,
} from '../platforms/types';
import { heaviestRelease } from '../shared/traffic';
import type { Targeted } from '../shared/target';
import { isServerAway, ownedSnapshot, runRestore } from './db';
import { toActivityFailure } from './failures';
import { heartbeatWith, whileHeartbeating } from './heartbeat';
import { platformPicker } from './platform';
import type { RunbookRecords } from './history';

/** Where drills are recorded (the orchestrator's drill_runs table). */
export interface DrillRuns {
  record(row: DrillRunRecord): Promise<void>;
}

export interface DrillActivityDeps extends PlatformDeps {
  records: RunbookRecords;
  drillRuns: DrillRuns;
}

/** Failure types of the drill's activities (all non-retryable). */
export const drillFailure = {
  noSnapshot: 'NoSnapshot',
  diskFull: 'DiskFull',
  notAccepting: 'DatabaseNotAccepting',
} as const;

/** pg_restore / PostgreSQL wording for a full disk (SQLSTATE 53100 and the OS error). */
const DISK_FULL = /no space left on device|disk full|could not extend file|53100/i;

/**
 * A tool interrupted because the activity was cancelled is reported as cancelled (not as a failure that the
 * workflow would take for the drill's verdict).
 */
function cancelledOr(ctx: Context, err: unknown): unknown {
  return ctx.cancellationSignal.aborted ? new CancelledFailure('cancelled while running') : err;
}

/** A drill row as the workflow sends it (times in ms: workflow code has no Date objects to give). */
export interface DrillRunInput extends Omit<DrillRunRecord, 'startedAt' | 'finishedAt'> {
  startedAtMs: number;
  finishedAtMs: number | null;
}

/** Activities of the restore drill; the database work itself is the SnapshotStore's and the release runner's. */
export function createDrillActivities(deps: DrillActivityDeps) {
  const { records, drillRuns } = deps;
  const pick = platformPicker(deps.platforms);
  return {
    /**
     * The snapshot a drill restores: `snapshotId` when given (it must be this service's), else the newest of the
     * service and environment taken of its database. Throws NoSnapshot, SnapshotNotFound, SnapshotForeign or
     * SnapshotCorrupt (an unreadable manifest), all non-retryable.
     */
    async findDrillSnapshot(
      req: {
        service: string;
        environment: string;
        database: string;
        snapshotId?: string;
      } & Targeted,
    ): Promise<SnapshotManifest> {
      const { snapshots } = pick(req);
      try {
        if (req.snapshotId) {
          const manifest = await ownedSnapshot(snapshots, { ...req, snapshotId: req.snapshotId });
          return manifest;
        }
        const newest = (await snapshots.list(req.service, req.environment)).find((m) => m.database === req.database);
        if (!newest) {
          throw ApplicationFailure.nonRetryable(
            `${req.service}/${req.environment} has no snapshot of database ${req.database} yet: run the drill with --fresh to take one`,
            drillFailure.noSnapshot,
          );
        }
        return newest;
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /**
     * The version of the service live now: the release with the most traffic on its route (if its process
     * runs, or the release history knows its version), else the last release that went live; null when the
     * service never went live. Reads only: the route is not created when missing.
     */
    async findLiveVersion(
      req: RouteSpec,
    ): Promise<{ version: string; releaseId: string | null; source: 'route' | 'history' } | null> {
      const { router, releases } = pick(req);
      const history = await records.lastSucceeded(req.service, req.environment, 20);
      const weights = await router.getWeights(req).catch((err: unknown) => {
        if (/does not exist/.test((err as Error).message)) return undefined;
        throw err;
      });
      const liveId = weights && heaviestRelease(weights.percent);
      if (liveId) {
        const running = await releases.get(req.service, req.environment, liveId);
        const version = running?.version ?? history.find((r) => r.releaseId === liveId)?.version;
        if (version) return { version, releaseId: liveId, source: 'route' };
      }
      const last = history[0];
      return last ? { version: last.version, releaseId: last.releaseId, source: 'history' } : null;
    },

    /**
     * Restores a snapshot into the drill's scratch database (pg_restore -j). A scratch database left by a crashed
     * attempt (marked "restoring") is dropped and restored again; one already restored from the same snapshot is
     * adopted. Throws SnapshotCorrupt (the dump is truncated or corrupt) or DiskFull, non-retryable.
     */
    async restoreScratch(
      req: {
        snapshotId: string;
        target: string;
        jobs: number;
      } & Targeted,
    ): Promise<{ adopted: boolean; droppedLeftover: boolean; ready?: boolean }> {
      const ctx = Context.current();
      const { snapshots } = pick(req);
      const seen = new Set<string>();
      let started: void | { ready: boolean; detail: string };
      try {
        started = await runRestore(snapshots, req, (p) => {
          seen.add(p.phase);
          ctx.heartbeat(p);
        });
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw cancelledOr(ctx, err);
        // A restore that failed (retryable) because the disk is full fails the drill at once.
        if (err instanceof PlatformError && !err.permanent && DISK_FULL.test(err.message)) {
          throw ApplicationFailure.nonRetryable(`the disk is full: ${err.message}`, drillFailure.diskFull);
        }
        throw toActivityFailure(err);
      }
      return {
        adopted: seen.has('adopted'),
        droppedLeftover: seen.has('drop-leftover'),
        ...(started && !started.ready ? { ready: false } : {}),
      };
    },

    /** Whether a restore that runs on its own (RDS) is done; the drill polls it with durable timers. */
    async scratchStatus(req: { target: string } & Targeted): Promise<{ ready: boolean; detail: string }> {
      const { snapshots } = pick(req);
      if (!snapshots.restoreStatus) return { ready: true, detail: 'restored' };
      try {
        return await snapshots.restoreStatus(req.target);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Waits until `database` accepts connections (polls, heartbeats); throws DatabaseNotAccepting at the deadline. */
    async waitForDatabase(req: { database: string; deadlineAtMs: number } & Targeted) {
      const ctx = Context.current();
      const { drillChecks } = pick(req);
      for (let attempt = 1; ; attempt++) {
        try {
          const { serverVersion } = await drillChecks.ping(req.database);
          return { attempts: attempt, serverVersion };
        } catch (err) {
          ctx.heartbeat({ attempt, error: (err as Error).message });
          if (Date.now() > req.deadlineAtMs) {
            throw ApplicationFailure.nonRetryable(
              `database ${req.database} does not accept connections: ${(err as Error).message}`,
              drillFailure.notAccepting,
            );
          }
          await sleep(250, undefined, { signal: ctx.cancellationSignal });
        }
      }
    },

    /**
     * pg_amcheck on a scratch copy (see DrillChecks.amcheck); heartbeats while it runs, with the batches checked as
     * details, so that a retried attempt (a worker lost, a heartbeat timeout) resumes after them.
     */
    async amcheckDatabase(database: string, target?: Targeted): Promise<{ ok: boolean; detail: string }> {
      const ctx = Context.current();
      const { drillChecks } = pick(target);
      const earlier = ctx.info.heartbeatDetails as { amcheck?: AmcheckProgress } | undefined;
      try {
        return await whileHeartbeating(() =>
          drillChecks.amcheck(database, {
            signal: ctx.cancellationSignal,
            ...(earlier?.amcheck ? { resume: earlier.amcheck } : {}),
            onProgress: (amcheck) => heartbeatWith(ctx, { amcheck }),
          }),
        );
      } catch (err) {
        throw cancelledOr(ctx, err);
      }
    },

    /**
     * The migrations of `dir` that `database` lacks (what the release expects and the snapshot does not have).
     * A database whose applied migrations do not match the folder (another lineage, or newer than the release)
     * is reported as `problem`, not thrown.
     */
    async checkSchema(
      req: { database: string; dir: string } & Targeted,
    ): Promise<{ pending: string[]; problem?: string }> {
      try {
        return { pending: await pick(req).migrator.pending(req.database, req.dir) };
      } catch (err) {
        if (isServerAway(err)) throw err;
        return { pending: [], problem: (err as Error).message };
      }
    },

    /** Records (or updates: the key is the workflow id) the drill in drill_runs. */
    async recordDrillRun(row: DrillRunInput): Promise<void> {
      const { startedAtMs, finishedAtMs, ...rest } = row;
      await drillRuns.record({
        ...rest,
        startedAt: new Date(startedAtMs),
        finishedAt: finishedAtMs === null ? null : new Date(finishedAtMs),
      });
    },
  };
}
