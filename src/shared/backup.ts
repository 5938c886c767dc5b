/** The backup workflow's input, state and result, and its messages: workflow-safe (see src/workflows/backup-service.ts). */
import { defineQuery } from '@temporalio/workflow';

/** pgBackRest's backup types (src/platforms/continuous-backups.ts has the same list). */
export const BACKUP_KINDS = ['full', 'diff', 'incr'] as const;
export type BackupKind = (typeof BACKUP_KINDS)[number];

/** Failure types of the backup workflow. */
export const BACKUP_NOT_CONFIGURED = 'BackupNotConfigured';
export const BACKUP_VERIFY_FAILED = 'BackupVerifyFailed';

export interface BackupInput {
  service: string;
  environment: string;
  type: BackupKind;
}

/**
 * The retention of a backup run: the service's own first, then that of each other service whose database is on the
 * same cluster (its stanza is shared; a backup is expired only when every one would expire it; docs/backups.md).
 */
export interface BackupPolicy {
  /** The service's database (on the stack's cluster). Absent in histories recorded before the PITR drill. */
  database?: string;
  retention: { service: string; full?: number; diff?: number; days?: number }[];
  verify: boolean;
}

/** One base backup as the workflow records it. */
export interface BackupRecord {
  label: string;
  type: BackupKind;
  prior?: string;
  bytes: number;
  repoBytes: number;
  /** How long the backup command took, measured by the activity. */
  durationMs: number;
  startedAtMs: number;
  stoppedAtMs: number;
  walStart?: string;
  walStop?: string;
}

export interface BackupState {
  phase: 'policy' | 'backing-up' | 'verifying' | 'expiring' | 'done' | 'failed';
  policy?: BackupPolicy;
  backup?: BackupRecord;
  verified?: { ok: boolean; problems: string[] } | 'skipped';
  expired?: string[];
  error?: string;
}

export interface BackupResult {
  outcome: 'succeeded';
  backup: BackupRecord;
  verified: { ok: boolean; problems: string[] } | 'skipped';
  expired: string[];
}

export const backupStatusQuery = defineQuery<BackupState>('backupStatus');

/** The schedule of a service's backups of one type (one Temporal Schedule each). */
export const backupScheduleId = (service: string, environment: string, type: BackupKind) =>
  `backup-${service}-${environment}-${type}`;

/** A point-in-time drill: restore the service's cluster as of `toTimeMs` into a scratch cluster, measure, remove. */
export interface PitrDrillInput {
  service: string;
  environment: string;
  toTimeMs: number;
}

export interface PitrDrillResult {
  outcome: 'passed';
  /** The scratch cluster's name (removed at the end). */
  target: string;
  /** The base backup the restore started from. */
  backup: string;
  /** Restore start to the copy answering with recovery ended (pgbackrest restore, WAL replay, promote). */
  restoreMs: number;
  /** The commit time of the last transaction replayed; null when none was. */
  lastCommitMs: number | null;
  /** The RPO: the target minus the last replayed commit (ms); null when no commit was replayed. */
  rpoMs: number | null;
  /** The service's database on the copy: its tables. */
  tables: number;
  removed: boolean;
}

export interface PitrDrillState {
  phase: 'policy' | 'restoring' | 'checking' | 'removing' | 'done' | 'failed';
  result?: Partial<PitrDrillResult>;
  error?: string;
}

export const pitrDrillStatusQuery = defineQuery<PitrDrillState>('pitrDrillStatus');

/** The scratch cluster of a point-in-time drill, from its workflow id (lowercase letters, digits, _). */
export const pitrTargetFor = (workflowId: string) =>
  `pitr_${workflowId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(-50)}`.replace(/_+$/, '');
