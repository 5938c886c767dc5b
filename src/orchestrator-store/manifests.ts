/** Snapshot manifests in the orchestrator's database, for snapshots that are not files (RDS snapshots). */
import type pg from 'pg';
import type { SnapshotManifest } from '../platforms/types';

/**
 * Where snapshot manifests live when the snapshot itself is not a file next to them (an RDS snapshot): the
 * orchestrator's `snapshot_manifests` table, created by migrateOrchestratorDb().
 */
export interface ManifestStore {
  /** Saves the manifest; saving the same snapshot id again replaces it (a retried activity). */
  put(m: SnapshotManifest): Promise<void>;
  get(snapshotId: string): Promise<SnapshotManifest | undefined>;
  /** The manifests of a service and environment, newest first. */
  list(service: string, environment: string): Promise<SnapshotManifest[]>;
}

interface ManifestRow {
  manifest: SnapshotManifest;
}

/**
 * A {@link ManifestStore} on the orchestrator's database. The manifest is kept whole as jsonb, next to the
 * columns it is looked up and ordered by. Throws the pg error when the database cannot be reached.
 */
export function createPgManifestStore(pool: Pick<pg.Pool, 'query'>): ManifestStore {
  return {
    async put(m) {
      await pool.query(
        `INSERT INTO snapshot_manifests (snapshot_id, service, environment, created_at_ms, manifest)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (snapshot_id) DO UPDATE SET
           service = EXCLUDED.service, environment = EXCLUDED.environment,
           created_at_ms = EXCLUDED.created_at_ms, manifest = EXCLUDED.manifest`,
        [m.snapshotId, m.service, m.environment, m.createdAtMs, JSON.stringify(m)],
      );
    },

    async get(snapshotId) {
      const { rows } = await pool.query<ManifestRow>('SELECT manifest FROM snapshot_manifests WHERE snapshot_id = $1', [
        snapshotId,
      ]);
      return rows[0]?.manifest;
    },

    async list(service, environment) {
      const { rows } = await pool.query<ManifestRow>(
        `SELECT manifest FROM snapshot_manifests WHERE service = $1 AND environment = $2
          ORDER BY created_at_ms DESC, snapshot_id DESC`,
        [service, environment],
      );
      return rows.map((r) => r.manifest);
    },
  };
}
