import { ApplicationFailure, Context } from '@temporalio/activity';
import { SnapshotError } from '../platforms/single-host/pg-snapshots';
import type { MigrationResult, Migrator, SnapshotManifest, SnapshotStore } from '../platforms/types';
import { whileHeartbeating } from './heartbeat';

export interface DbActivityDeps {
  snapshots: SnapshotStore;
  migrator: Migrator;
}

export const dbFailure = {
  migration: 'MigrationFailed',
  snapshotMissing: 'SnapshotNotFound',
  snapshotCorrupt: 'SnapshotCorrupt',
} as const;

/** A snapshot error that retrying cannot fix (invalid name, corrupt file, conflict) becomes non-retryable. */
export function permanentSnapshotError(err: unknown): unknown {
  if (err instanceof SnapshotError && err.permanent) {
    const type =
      err.code === 'corrupt'
        ? dbFailure.snapshotCorrupt
        : err.code === 'not-found'
          ? dbFailure.snapshotMissing
          : `Snapshot_${err.code}`;
    return ApplicationFailure.nonRetryable(err.message, type);
  }
  return err;
}

/** Activities on the service's database: snapshots with manifests, and migrations. */
export function createDbActivities({ snapshots, migrator }: DbActivityDeps) {
  return {
    /**
     * Takes the pre-migration snapshot (pg_dump -Fc + manifest). The id comes from the workflow id, so a
     * retry or a new worker adopts the complete snapshot instead of taking a second one.
     */
    async takeSnapshot(req: {
      snapshotId: string;
      service: string;
      environment: string;
      database: string;
      workflowId: string;
    }): Promise<SnapshotManifest> {
      const ctx = Context.current();
      try {
        return await whileHeartbeating(() => snapshots.take(req, (p) => ctx.heartbeat(p), ctx.cancellationSignal));
      } catch (err) {
        throw permanentSnapshotError(err);
      }
    },

    /** The pending migrations, for the plan shown to the operator. */
    async pendingMigrations(database: string, dir: string): Promise<string[]> {
      return migrator.pending(database, dir);
    },

    /**
     * Applies pending migrations in one transaction under an advisory lock. A failure leaves the database
     * as it was and is final (MigrationFailed, non-retryable): running the same SQL again would fail again.
     */
    async migrateDatabase(database: string, dir: string): Promise<MigrationResult> {
      try {
        return await whileHeartbeating(() => migrator.migrate(database, dir));
      } catch (err) {
        const e = err as Error & { code?: string };
        if (e.code === 'ECONNREFUSED' || e.code === '57P01' || e.code === '53300') throw err; // server away: retry
        throw ApplicationFailure.nonRetryable(
          `migration failed, database unchanged: ${e.message}`,
          dbFailure.migration,
        );
      }
    },
  };
}
