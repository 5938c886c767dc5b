import { ApplicationFailure } from '@temporalio/activity';
import type { Outcome } from '../shared/deploy';

/** A row of the release history (the orchestrator's own database): it outlives Temporal's retention. */
export interface ReleaseRecord {
  service: string;
  environment: string;
  version: string;
  releaseId: string | null;
  workflowId: string;
  kind: 'deploy' | 'rollback';
  outcome: Outcome;
  startedAtMs: number;
  finishedAtMs: number;
  snapshotId: string | null;
  reason: string | null;
  details: Record<string, unknown>;
}

export type LockResult = { acquired: true } | { acquired: false; holder: string; kind: string; sinceMs: number };

/** The orchestrator's records, as the activities need them (PostgreSQL in production, fakes in unit tests). */
export interface RunbookRecords {
  acquireLock(req: { service: string; environment: string; workflowId: string; kind: string }): Promise<LockResult>;
  releaseLock(req: { service: string; environment: string; workflowId: string }): Promise<void>;
  recordRelease(row: ReleaseRecord): Promise<void>;
  /** The releases that went live (outcome succeeded), newest first. */
  lastSucceeded(service: string, environment: string, limit: number): Promise<ReleaseRecord[]>;
}

export interface HistoryActivityDeps {
  records: RunbookRecords;
}

export const SERVICE_BUSY = 'ServiceBusy';

/** Activities on the orchestrator's records: the one-runbook-per-service lock and the release history. */
export function createHistoryActivities({ records }: HistoryActivityDeps) {
  return {
    /**
     * One deploy or rollback per service and environment at a time. Throws ServiceBusy (non-retryable)
     * naming the runbook that holds the service; a holder that is no longer running is taken over.
     */
    async acquireServiceLock(req: {
      service: string;
      environment: string;
      workflowId: string;
      kind: string;
    }): Promise<void> {
      const result = await records.acquireLock(req);
      if (!result.acquired) {
        throw ApplicationFailure.nonRetryable(
          `${req.service}/${req.environment} is busy: ${result.kind} ${result.holder} is running since ` +
            `${new Date(result.sinceMs).toISOString()}; wait for it (runbook watch ${result.holder}) or cancel it`,
          SERVICE_BUSY,
          { holder: result.holder, kind: result.kind },
        );
      }
    },

    async releaseServiceLock(req: { service: string; environment: string; workflowId: string }): Promise<void> {
      await records.releaseLock(req);
    },

    async recordRelease(row: ReleaseRecord): Promise<void> {
      await records.recordRelease(row);
    },

    async lastSucceededReleases(service: string, environment: string, limit = 20): Promise<ReleaseRecord[]> {
      return records.lastSucceeded(service, environment, limit);
    },
  };
}
