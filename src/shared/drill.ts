import type { DeployState } from './deploy';
import type { ResolvedService } from './service-plan';
import { databaseNameFor, slug } from './ids';
import type { DrillRequest } from './request';

/**
 * Types and names of the restore drill (the `restoreDrill` workflow): prove that the latest backup restores, that
 * it holds what its manifest says, and that the live release runs on it, and measure how long that takes (the RTO)
 * and how old the restored data is (the real RPO). Workflow-safe: plain JSON, no secrets.
 */

/** What a drill concluded: `passed` (restored, intact, the app ready; over the RTO target is noted, not failed). */
export type DrillOutcome = 'passed' | 'failed' | 'cancelled';

/** The timed steps of a drill, in order. RTO_STEPS are the ones a real recovery takes. */
export const DRILL_STEPS = [
  'pick-snapshot',
  'snapshot',
  'restore',
  'connect',
  'integrity',
  'migrate',
  'app-integrity',
  'start-release',
  'health',
  'smoke',
  'sign-off',
  'cleanup',
] as const;
export type DrillStep = (typeof DRILL_STEPS)[number];

/** From the restore's start to the application answering ready and passing its smoke checks. */
export const RTO_STEPS: readonly DrillStep[] = DRILL_STEPS.slice(
  DRILL_STEPS.indexOf('restore'),
  DRILL_STEPS.indexOf('smoke') + 1,
);

/** The drill workflow's input: a request; `PlanInDrillInput` as for DeployInput (src/shared/deploy.ts). */
export type DrillInput = DrillRequest | PlanInDrillInput;

/** @deprecated the input of drills started before `worker-resolves-plan`: replays only. */
export interface PlanInDrillInput {
  plan: ResolvedService;
  /** Who started it (`runbook drill --as`), or the schedule (`schedule:<id>`); under four-eyes they may not sign off. */
  requestedBy: string;
  /** Restore this snapshot; default: the newest snapshot of the service and environment. */
  snapshotId?: string;
  /** Take a snapshot of the live database now and restore that one (the whole path, the backup included). */
  fresh?: boolean;
  /**
   * Wait this long for a reviewer's sign-off (`plan.approvals.approvers`, four-eyes as configured) once the app
   * is ready; without a decision the drill is recorded as unsigned, not failed. Absent: no sign-off.
   */
  signoffTimeoutMs?: number;
  /** The release to start on the restored copy; default: the version live now (else the last that went live). */
  version?: string;
  reason?: string;
}

export interface PhaseTiming {
  phase: DrillStep;
  startedAtMs: number;
  finishedAtMs?: number;
  ms?: number;
  ok?: boolean;
}

/** The integrity checks of the restored copy. */
export interface DrillIntegrity {
  /** pg_amcheck (heap pages, B-tree indexes, --heapallindexed) on the restored copy. */
  amcheck?: { ok: boolean; detail: string };
  /** Row counts and per-table checksums against the snapshot's manifest. */
  manifest?: { ok: boolean; tables: number; rows: number; differences: string[] };
  /**
   * The snapshot's migration version against the service's migrations (what the release expects): `pending`
   * are the migrations the snapshot lacks; the drill applies them to the copy, as a recovery would.
   */
  schema?: {
    ok: boolean;
    snapshotVersion: string | null;
    expectedVersion: string | null;
    pending: string[];
    detail: string;
    migrated?: boolean;
  };
  /**
   * The service's own integrity command (drill.integrityCommand) run from the release against the copy: `notes` is
   * the end of its output (scrubbed), the drill's integrity notes.
   */
  command?: {
    ok: boolean;
    command: string[];
    exitCode: number | null;
    timedOut: boolean;
    notes: string;
    logLocation: string;
    durationMs: number;
  };
}

export interface DrillSnapshot {
  snapshotId: string;
  source: 'latest' | 'given' | 'fresh';
  createdAtMs: number;
  /** How old the data was when the drill picked it: the data a recovery at that moment would lose (RPO). */
  ageMs: number;
  bytes: number;
  migrationVersion: string | null;
}

/** The drill's own part of the status (the `status` query returns DrillState). */
export interface DrillProgress {
  /** The scratch database the snapshot is restored into (derived from the workflow id; dropped at the end). */
  scratchDatabase: string;
  snapshot?: DrillSnapshot;
  /** Where the release version came from: the route's live release, the release history, or the input. */
  versionSource?: 'route' | 'history' | 'input';
  phases: PhaseTiming[];
  /** Restore start to application ready (see RTO_STEPS). */
  rtoMs?: number;
  rtoTargetMs: number;
  /** Set when the RTO is over the target: by how much. */
  overTargetByMs?: number;
  integrity: DrillIntegrity;
  /** The step that failed, when the drill failed. */
  failedPhase?: DrillStep;
  /** pending: asked for, the app is not ready yet; unsigned: nobody decided within the timeout. */
  signoff: 'not-requested' | 'pending' | 'waiting' | 'signed' | 'unsigned' | 'rejected';
  signedOffBy?: string;
  /** What the cleanup did, for the record. */
  cleanup: string[];
}

export type DrillState = DeployState & { kind: 'drill'; drill: DrillProgress };

export interface DrillResult {
  outcome: DrillOutcome;
  service: string;
  environment: string;
  reason: string;
  drill: DrillProgress;
  state: DrillState;
}

/** The default RTO target when the service has no `drill.rtoTarget`. */
export const DEFAULT_RTO_TARGET_MS = 15 * 60_000;

/** The scratch database of a drill: `<database>_drill_<hash of the workflow id>`, a valid PostgreSQL name. */
export const scratchDatabaseFor = (database: string, workflowId: string) =>
  databaseNameFor(`${database}_drill`, `${workflowId}/drill-scratch`);

/**
 * The environment the drill's app runs under in the release runner: apart from the service's own releases, so
 * that no deploy or rollback adopts a process that serves the scratch copy.
 */
export const drillReleaseEnvironment = (environment: string) => `${environment}-drill`;

/** The id of the Temporal Schedule of a service's drills (its runs are `<id>-<time>`). */
export const drillScheduleId = (service: string, environment: string) => `drill-${slug(service)}-${slug(environment)}`;

/** 7d03h / 1h02m / 4m05s / 12.3s: durations for people (workflow-safe). */
export function formatMs(ms: number): string {
  const negative = ms < 0;
  const abs = Math.abs(ms);
  const sign = negative ? '-' : '';
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(1)}s`;
  const s = Math.round(abs / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = `${String(s % 60).padStart(2, '0')}s`;
  if (h >= 48) return `${sign}${Math.floor(h / 24)}d${h % 24 ? `${String(h % 24).padStart(2, '0')}h` : ''}`;
  return h > 0 ? `${sign}${h}h${String(m).padStart(2, '0')}m` : `${sign}${m}m${rest}`;
}

/** Seconds per step, as drill_runs.phase_timings records them (a step run twice adds up). */
export function phaseSeconds(phases: readonly PhaseTiming[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of phases) if (p.ms !== undefined) out[p.phase] = (out[p.phase] ?? 0) + p.ms / 1000;
  return out;
}
