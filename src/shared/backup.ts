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
