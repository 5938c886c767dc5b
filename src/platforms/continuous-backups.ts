/**
 * The port for continuous backups: base backups plus the write-ahead log, restorable to any moment of a window
 * (single-host: pgBackRest archiving the stack's PostgreSQL; aws-ecs: RDS automated backups). Beside
 * SnapshotStore (one pg_dump / manual snapshot per deploy), not instead of it: a service on a PostgreSQL the worker
 * cannot archive keeps its snapshots. Plain JSON results; nothing here imports Temporal.
 */
import type { RestoreProgress } from './types';

/** How a base backup was taken (pgBackRest's types; RDS's automated backups are 'automated'). */
export const BACKUP_TYPES = ['full', 'diff', 'incr'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

/** One base backup a point-in-time restore can start from. */
export interface BaseBackup {
  /** pgBackRest's label (e.g. 20261202-101500F) or the RDS snapshot / "automated" id. */
  label: string;
  type: BackupType | 'automated';
  /** The label of the backup this one depends on (diff/incr), if any. */
  prior?: string;
  startedAtMs: number;
  stoppedAtMs: number;
  /** The database (cluster) size the backup covers, and what it takes in the repository. */
  bytes: number;
  repoBytes: number;
  /** The WAL needed to make it consistent (pgBackRest archive start/stop). */
  walStart?: string;
  walStop?: string;
}

/** What can be restored now. */
export interface RecoveryWindow {
  /** Continuous archiving (or RDS automated backups) is on. With it off, the rest says why in `detail`. */
  enabled: boolean;
  /** The earliest and the latest moment a restore can reach (ms since epoch); null when nothing is restorable. */
  earliestMs: number | null;
  latestMs: number | null;
  /** Oldest first. */
  backups: BaseBackup[];
  /** The newest WAL segment archived, and when (single-host); absent where the platform does not say. */
  lastArchived?: { wal: string; atMs: number };
  /** In words: what is on, where the repository is, what is wrong. */
  detail: string;
}

/**
 * Where a restore goes to.
 * - `time`: the database as of `atMs` (every transaction committed at or before it).
 * - `point`: a named restore point (a deploy's pre-migration point).
 * - `backup`: the end of one base backup (`label`, or 'latest' / 'oldest' of the retained ones) with no WAL replay
 *   beyond consistency: proves that backup itself restores.
 * - `latest`: everything archived (the end of the WAL).
 */
export type RecoveryTarget =
  | { kind: 'time'; atMs: number }
  | { kind: 'point'; name: string }
  | { kind: 'backup'; label: string }
  | { kind: 'latest' };

/** What a restored copy recovered to: the RPO's facts. */
export interface RecoveredTo {
  /** The commit time of the last transaction replayed (pg_last_xact_replay_timestamp), ms; null when none was. */
  lastCommitMs: number | null;
  /** The base backup the restore started from. */
  backup: string;
  /** The last WAL position replayed, when the platform says. */
  lsn?: string;
}

/** A named restore point, made where a rollback may want to return to (before a deploy's migration). */
export interface RestorePoint {
  name: string;
  /** The server's time when it was made, ms. */
  atMs: number;
  lsn: string;
}

/** How long base backups are kept (pgBackRest's repo retention; RDS's BackupRetentionPeriod). */
export interface RetentionPolicy {
  /** Full backups kept (with their diff/incr and WAL). */
  full?: number;
  /** Differential backups kept. */
  diff?: number;
  /** Or: backups younger than this many days are kept (the newest full is always kept). */
  days?: number;
}

/** A scratch copy a restore made and that nobody removed (a crashed or terminated workflow's): the sweeper's list. */
export interface ScratchCopy {
  target: string;
  /** The workflow that made it (from its record or tags). */
  workflowId: string;
  createdAtMs: number;
  /** Where it is, in words (a data folder and port; an RDS instance). */
  location: string;
}

export interface BackupProgress {
  phase: string;
  /** Percent done, when the tool says. */
  percent?: number;
  detail?: string;
}

export interface ContinuousBackups {
  /**
   * The recovery window of the service's database. Cheap enough for doctor and before every restore. Throws only
   * when the platform cannot be asked (retryable); an archive that is off or broken is `enabled: false` + detail.
   */
  window(req: { service: string; environment: string; database: string }): Promise<RecoveryWindow>;
  /**
   * Takes a base backup (single-host: pgbackrest backup --type). Idempotent on `backupId`: a retried call finds the
   * backup that attempt made (by its annotation) instead of taking a second one. Absent on a platform whose backups
   * are automatic (RDS). Throws PlatformError BackupFailed (permanent: the repository refuses; with what to do).
   */
  backup?(
    req: { backupId: string; type: BackupType; service: string; environment: string; database: string },
    progress?: (p: BackupProgress) => void,
    signal?: AbortSignal,
  ): Promise<BaseBackup>;
  /**
   * Checks the repository: every backup's files against their checksums and the WAL chain has no gap
   * (pgbackrest verify). `ok: false` with the problems in words.
   */
  verify?(signal?: AbortSignal): Promise<{ ok: boolean; problems: string[] }>;
  /**
   * Removes backups beyond the policy, never one of `keep` (labels a running restore needs) nor the newest full.
   * Returns the labels removed.
   */
  expire?(policy: RetentionPolicy, keep: string[]): Promise<{ expired: string[] }>;
  /** Marks a named point in the WAL (pg_create_restore_point); cheap, no data copied. Absent where unsupported. */
  markPoint?(req: { database: string; name: string }): Promise<RestorePoint>;
  /**
   * Restores the service's `database` as of `to` into a new scratch copy named `target`, from which the other
   * parts reach it by that name (single-host: a cluster of its own, with its own data folder and port, whose
   * database `target` is served by urlFor(target); aws: a new instance). Idempotent like SnapshotStore.restore:
   * a copy of `target` left by an earlier attempt of the same restore is adopted or redone.
   * `placement: 'beside-live'` (a rollback that swaps it in) puts the copy as database `target` on the live server
   * (single-host: copied over from the scratch cluster, which is then removed).
   * Throws PlatformError RecoveryTargetUnreachable (permanent) when `to` is outside the window, ArchiveGap when the
   * WAL needed is missing, BackupCorrupt when the base backup fails its checksums, DiskFull with how much is needed.
   */
  restoreTo(
    req: {
      service: string;
      environment: string;
      database: string;
      target: string;
      to: RecoveryTarget;
      workflowId: string;
      placement: 'scratch' | 'beside-live';
    },
    progress?: (p: BackupProgress) => void,
    signal?: AbortSignal,
  ): Promise<RestoreProgress>;
  /** For a restore that runs on its own after restoreTo() returned `{ ready: false }` (RDS). */
  restoreStatus?(target: string): Promise<RestoreProgress>;
  /** What the copy `target` recovered to (the RPO's facts). */
  recoveredTo(target: string): Promise<RecoveredTo>;
  /** Removes the copy `target` (its cluster, port and files; its instance). Idempotent. */
  removeCopy(target: string): Promise<void>;
  /** Copies that exist, with the workflow that made each (for the sweeper). */
  scratchCopies(): Promise<ScratchCopy[]>;
}
