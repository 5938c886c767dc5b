/**
 * The orchestrator's own tables in its database (`runbook`): release history (what to roll back to), the
 * per-service runbook locks (one deploy, rollback or restore at a time), restore-drill records, and the schema of
 * all of them (with snapshot_manifests, whose queries are in manifests.ts).
 */
import type pg from 'pg';

/** Anything that runs a query: a Pool, a PoolClient or a Client. */
type Db = Pick<pg.Pool, 'query'>;

export type ReleaseKind = 'deploy' | 'rollback';
export type ReleaseOutcome = 'succeeded' | 'rolled-back' | 'failed' | 'rejected' | 'cancelled';

/** One finished deploy or rollback, recorded by the workflow that ran it. */
export interface ReleaseRecord {
  service: string;
  environment: string;
  version: string;
  releaseId: string;
  /** The key: recording the same workflow again replaces its row. */
  workflowId: string;
  kind: ReleaseKind;
  outcome: ReleaseOutcome;
  startedAt: Date;
  finishedAt: Date;
  snapshotId?: string | null;
  reason?: string | null;
  details?: Record<string, unknown>;
}

export interface ReleaseRow extends Required<ReleaseRecord> {
  id: number;
}

/** One restore drill, recorded (and updated, e.g. at sign-off) by the workflow that ran it. */
export interface DrillRunRecord {
  service: string;
  environment: string;
  /** The key: recording the same workflow again replaces its row. */
  workflowId: string;
  snapshotId?: string | null;
  snapshotAgeSeconds?: number | null;
  /** Seconds per phase, e.g. { restore: 12.5, verify: 3.1 }. */
  phaseTimings?: Record<string, number>;
  rtoSeconds?: number | null;
  rtoTargetSeconds: number;
  overTarget?: boolean | null;
  /** The integrity checks' results (comparison with the manifest, amcheck...). */
  integrity?: Record<string, unknown> | null;
  outcome: string;
  signedOffBy?: string | null;
  reason?: string | null;
  startedAt: Date;
  finishedAt?: Date | null;
}

export interface DrillRunRow extends Required<DrillRunRecord> {
  id: number;
}

export type LockResult =
  { acquired: true; takenOverFrom?: string } | { acquired: false; holder: string; kind: string; since: Date };

/** Serialises schema changes of concurrent workers; any constant unlikely to collide with others' locks. */
const SCHEMA_LOCK_ID = 0x72756e62; // "runb"

const SCHEMA = `
CREATE TABLE IF NOT EXISTS releases (
  id bigserial PRIMARY KEY,
  service text NOT NULL,
  environment text NOT NULL,
  version text NOT NULL,
  release_id text NOT NULL,
  workflow_id text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'rolled-back', 'failed', 'rejected', 'cancelled')),
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  snapshot_id text,
  reason text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS releases_service_environment_finished_at
  ON releases (service, environment, finished_at DESC);

CREATE TABLE IF NOT EXISTS runbook_locks (
  service text NOT NULL,
  environment text NOT NULL,
  holder_workflow_id text NOT NULL,
  kind text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, environment)
);

CREATE TABLE IF NOT EXISTS drill_runs (
  id bigserial PRIMARY KEY,
  service text NOT NULL,
  environment text NOT NULL,
  workflow_id text NOT NULL UNIQUE,
  snapshot_id text,
  snapshot_age_seconds double precision,
  phase_timings jsonb NOT NULL DEFAULT '{}',
  rto_seconds double precision,
  rto_target_seconds double precision NOT NULL,
  over_target boolean,
  integrity jsonb,
  outcome text NOT NULL,
  signed_off_by text,
  reason text,
  started_at timestamptz NOT NULL,
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS drill_runs_service_environment_started_at
  ON drill_runs (service, environment, started_at DESC);

-- Manifests of snapshots that are not files (RDS snapshots): src/orchestrator-store/manifests.ts.
CREATE TABLE IF NOT EXISTS snapshot_manifests (
  snapshot_id text PRIMARY KEY,
  service text NOT NULL,
  environment text NOT NULL,
  created_at_ms bigint NOT NULL,
  manifest jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshot_manifests_service_environment_created
  ON snapshot_manifests (service, environment, created_at_ms DESC);
`;

/**
 * Creates the orchestrator's tables if they are missing: idempotent, in one transaction, under an advisory lock
 * so that workers starting together do not race on CREATE TABLE IF NOT EXISTS (which is not concurrency-safe).
 * Later changes must be added the same way (ADD COLUMN IF NOT EXISTS...), never by editing these statements.
 * Throws the pg error when the database cannot be reached or the statements fail.
 */
export async function migrateOrchestratorDb(pool: Pick<pg.Pool, 'connect'>): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_ID]);
    await client.query(SCHEMA);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

interface LockRow {
  holder_workflow_id: string;
  kind: string;
  acquired_at: Date;
}

/**
 * Takes the runbook lock of a service and environment for `workflowId`, so that two runbooks never change the
 * same service at once. Holding it already is a success (a retried activity); a lock whose holder is no longer
 * running (`isRunning` says false, e.g. the workflow was terminated) is taken over, and `takenOverFrom` names
 * that holder. Otherwise returns who holds it, for what, and since when. Throws the pg error, or isRunning's.
 */
export async function acquireLock(
  pool: Db,
  req: { service: string; environment: string; workflowId: string; kind: string },
  isRunning: (workflowId: string) => Promise<boolean>,
): Promise<LockResult> {
  const { service, environment, workflowId, kind } = req;
  // Each round either decides or saw the lock change hands meanwhile; a few rounds settle any race.
  for (let round = 0; round < 5; round++) {
    const inserted = await pool.query(
      `INSERT INTO runbook_locks (service, environment, holder_workflow_id, kind) VALUES ($1, $2, $3, $4)
       ON CONFLICT (service, environment) DO NOTHING`,
      [service, environment, workflowId, kind],
    );
    if (inserted.rowCount === 1) return { acquired: true };
    const { rows } = await pool.query<LockRow>(
      'SELECT holder_workflow_id, kind, acquired_at FROM runbook_locks WHERE service = $1 AND environment = $2',
      [service, environment],
    );
    const held = rows[0];
    if (!held) continue; // released meanwhile
    if (held.holder_workflow_id === workflowId) return { acquired: true };
    if (await isRunning(held.holder_workflow_id)) {
      return { acquired: false, holder: held.holder_workflow_id, kind: held.kind, since: held.acquired_at };
    }
    const taken = await pool.query(
      `UPDATE runbook_locks SET holder_workflow_id = $4, kind = $5, acquired_at = now()
        WHERE service = $1 AND environment = $2 AND holder_workflow_id = $3`,
      [service, environment, held.holder_workflow_id, workflowId, kind],
    );
    if (taken.rowCount === 1) return { acquired: true, takenOverFrom: held.holder_workflow_id };
  }
  throw new Error(`the runbook lock of ${service}/${environment} keeps changing hands; try again`);
}

/** Releases the lock if `workflowId` holds it; returns false (and changes nothing) otherwise. Throws the pg error. */
export async function releaseLock(
  pool: Db,
  service: string,
  environment: string,
  workflowId: string,
): Promise<boolean> {
  const { rowCount } = await pool.query(
    'DELETE FROM runbook_locks WHERE service = $1 AND environment = $2 AND holder_workflow_id = $3',
    [service, environment, workflowId],
  );
  return rowCount === 1;
}

/** Records a finished release; recording the same workflow id again updates its row. Throws the pg error. */
export async function recordRelease(pool: Db, row: ReleaseRecord): Promise<void> {
  await pool.query(
    `INSERT INTO releases (service, environment, version, release_id, workflow_id, kind, outcome, started_at,
                           finished_at, snapshot_id, reason, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (workflow_id) DO UPDATE SET
       service = EXCLUDED.service, environment = EXCLUDED.environment, version = EXCLUDED.version,
       release_id = EXCLUDED.release_id, kind = EXCLUDED.kind, outcome = EXCLUDED.outcome,
       started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, snapshot_id = EXCLUDED.snapshot_id,
       reason = EXCLUDED.reason, details = EXCLUDED.details`,
    [
      row.service,
      row.environment,
      row.version,
      row.releaseId,
      row.workflowId,
      row.kind,
      row.outcome,
      row.startedAt,
      row.finishedAt,
      row.snapshotId ?? null,
      row.reason ?? null,
      JSON.stringify(row.details ?? {}),
    ],
  );
}

interface ReleaseDbRow {
  id: string;
  service: string;
  environment: string;
  version: string;
  release_id: string;
  workflow_id: string;
  kind: ReleaseKind;
  outcome: ReleaseOutcome;
  started_at: Date;
  finished_at: Date;
  snapshot_id: string | null;
  reason: string | null;
  details: Record<string, unknown>;
}

/**
 * The service's succeeded releases (deploys and rollbacks), most recently finished first: the current one and
 * the candidates to roll back to. Throws the pg error.
 */
export async function lastSucceededReleases(
  pool: Db,
  service: string,
  environment: string,
  limit: number,
): Promise<ReleaseRow[]> {
  const { rows } = await pool.query<ReleaseDbRow>(
    `SELECT * FROM releases WHERE service = $1 AND environment = $2 AND outcome = 'succeeded'
      ORDER BY finished_at DESC, id DESC LIMIT $3`,
    [service, environment, limit],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    service: r.service,
    environment: r.environment,
    version: r.version,
    releaseId: r.release_id,
    workflowId: r.workflow_id,
    kind: r.kind,
    outcome: r.outcome,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    snapshotId: r.snapshot_id,
    reason: r.reason,
    details: r.details,
  }));
}

/** Records a drill; recording the same workflow id again (e.g. at sign-off) updates its row. Throws the pg error. */
export async function recordDrillRun(pool: Db, row: DrillRunRecord): Promise<void> {
  await pool.query(
    `INSERT INTO drill_runs (service, environment, workflow_id, snapshot_id, snapshot_age_seconds, phase_timings,
                             rto_seconds, rto_target_seconds, over_target, integrity, outcome, signed_off_by, reason,
                             started_at, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
     ON CONFLICT (workflow_id) DO UPDATE SET
       service = EXCLUDED.service, environment = EXCLUDED.environment, snapshot_id = EXCLUDED.snapshot_id,
       snapshot_age_seconds = EXCLUDED.snapshot_age_seconds, phase_timings = EXCLUDED.phase_timings,
       rto_seconds = EXCLUDED.rto_seconds, rto_target_seconds = EXCLUDED.rto_target_seconds,
       over_target = EXCLUDED.over_target, integrity = EXCLUDED.integrity, outcome = EXCLUDED.outcome,
       signed_off_by = EXCLUDED.signed_off_by, reason = EXCLUDED.reason, started_at = EXCLUDED.started_at,
       finished_at = EXCLUDED.finished_at`,
    [
      row.service,
      row.environment,
      row.workflowId,
      row.snapshotId ?? null,
      row.snapshotAgeSeconds ?? null,
      JSON.stringify(row.phaseTimings ?? {}),
      row.rtoSeconds ?? null,
      row.rtoTargetSeconds,
      row.overTarget ?? null,
      row.integrity === undefined || row.integrity === null ? null : JSON.stringify(row.integrity),
      row.outcome,
      row.signedOffBy ?? null,
      row.reason ?? null,
      row.startedAt,
      row.finishedAt ?? null,
    ],
  );
}

interface DrillDbRow {
  id: string;
  service: string;
  environment: string;
  workflow_id: string;
  snapshot_id: string | null;
  snapshot_age_seconds: number | null;
  phase_timings: Record<string, number>;
  rto_seconds: number | null;
  rto_target_seconds: number;
  over_target: boolean | null;
  integrity: Record<string, unknown> | null;
  outcome: string;
  signed_off_by: string | null;
  reason: string | null;
  started_at: Date;
  finished_at: Date | null;
}

/** The service's drills, most recently started first. Throws the pg error. */
export async function listDrillRuns(
  pool: Db,
  service: string,
  environment: string,
  limit: number,
): Promise<DrillRunRow[]> {
  const { rows } = await pool.query<DrillDbRow>(
    `SELECT * FROM drill_runs WHERE service = $1 AND environment = $2 ORDER BY started_at DESC, id DESC LIMIT $3`,
    [service, environment, limit],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    service: r.service,
    environment: r.environment,
    workflowId: r.workflow_id,
    snapshotId: r.snapshot_id,
    snapshotAgeSeconds: r.snapshot_age_seconds,
    phaseTimings: r.phase_timings,
    rtoSeconds: r.rto_seconds,
    rtoTargetSeconds: r.rto_target_seconds,
    overTarget: r.over_target,
    integrity: r.integrity,
    outcome: r.outcome,
    signedOffBy: r.signed_off_by,
    reason: r.reason,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  }));
}
