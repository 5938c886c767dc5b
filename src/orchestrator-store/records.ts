/** The activities' RunbookRecords (locks, release history) on the orchestrator's tables. */
import type { Pool } from 'pg';
import type { ReleaseRecord, RunbookRecords } from '../activities/history';
import { acquireLock, lastSucceededReleases, recordRelease, releaseLock, type ReleaseRow } from './orchestrator-db';

/** The orchestrator's records on its PostgreSQL database; `isRunning` asks Temporal whether a lock holder still runs. */
export function createPgRecords(
  pool: Pick<Pool, 'query'>,
  isRunning: (workflowId: string) => Promise<boolean>,
): RunbookRecords {
  const toRecord = (r: ReleaseRow): ReleaseRecord => ({
    service: r.service,
    environment: r.environment,
    version: r.version,
    releaseId: r.releaseId || null,
    workflowId: r.workflowId,
    kind: r.kind,
    outcome: r.outcome,
    startedAtMs: r.startedAt.getTime(),
    finishedAtMs: r.finishedAt.getTime(),
    snapshotId: r.snapshotId,
    reason: r.reason,
    details: r.details,
  });
  return {
    async acquireLock(req) {
      const r = await acquireLock(pool, req, isRunning);
      return r.acquired
        ? { acquired: true }
        : { acquired: false, holder: r.holder, kind: r.kind, sinceMs: r.since.getTime() };
    },
    async releaseLock(req) {
      await releaseLock(pool, req.service, req.environment, req.workflowId);
    },
    async recordRelease(row) {
      await recordRelease(pool, {
        ...row,
        releaseId: row.releaseId ?? '',
        startedAt: new Date(row.startedAtMs),
        finishedAt: new Date(row.finishedAtMs),
      });
    },
    async lastSucceeded(service, environment, limit) {
      return (await lastSucceededReleases(pool, service, environment, limit)).map(toRecord);
    },
  };
}
