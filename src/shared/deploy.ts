import { z } from 'zod';
import type { Comparison } from './judge';
import type { DeployRequest, RollbackRequest } from './request';
import type { Requester } from './signed';
import { APPROVAL_GATES, type ApprovalGate, type ApprovalPolicy, type ResolvedService } from './service-plan';

/**
 * Types of the deploy, rollback and drill runbooks that cross the workflow boundary (inputs, results,
 * status). Plain JSON, no secrets: a plan names targets (a database by name, the worker environment
 * variable that holds its URL), the worker holds the credentials.
 */

/**
 * The deploy's gates (configurable), plus the database restore's gate of the rollback (always four-eyes) and the
 * reviewer's sign-off of a restore drill.
 */
export const gateNames = [...APPROVAL_GATES, 'restore-database', 'drill-signoff', 'unjudged-step'] as const;
/** `unjudged-step`: a baked canary step ended without enough evidence (analysis.onInconclusive: pause). */
export type GateName = ApprovalGate | 'restore-database' | 'drill-signoff' | 'unjudged-step';

/** Who may decide at a set of gates, and what a timeout does. */
export type GatePolicy = Omit<ApprovalPolicy, 'gates'> & { gates: GateName[] };

/**
 * The deploy workflow's input: a request (the worker resolves its plan). `PlanInDeployInput` is the shape of the
 * histories recorded before the `worker-resolves-plan` patch, which replay with their own plan; a new execution
 * refuses it.
 */
export type DeployInput = DeployRequest | PlanInDeployInput;

/** @deprecated the input of deploys started before `worker-resolves-plan`: replays only. */
export interface PlanInDeployInput {
  plan: ResolvedService;
  version: string;
  /** Who asked for the deploy (the CLI's --as, or RUNBOOK_USER); under four-eyes they may not approve. */
  requestedBy: string;
  reason?: string;
}

export type Outcome = 'succeeded' | 'rolled-back' | 'failed' | 'rejected' | 'cancelled';

export type DeployPhase =
  | 'plan'
  | 'preflight'
  | 'awaiting-approval'
  | 'snapshot'
  | 'maintenance'
  | 'restore'
  | 'migrate'
  | 'start-release'
  | 'health'
  | 'smoke'
  | 'traffic'
  | 'sign-off'
  | 'finalize'
  | 'rolling-back'
  // the restore drill's own steps (it also uses snapshot, restore, migrate, start-release, health, smoke, sign-off)
  | 'pick-snapshot'
  | 'connect'
  | 'integrity'
  | 'app-integrity'
  | 'cleanup'
  | 'done';

export interface ReleaseRef {
  releaseId: string;
  version: string;
  /** Where the health and smoke checks reach the release (aws-ecs: a load balancer listener). */
  host: string;
  port: number;
  /** http when absent. */
  scheme?: 'http' | 'https';
  /** The Host header and TLS server name the checks send (aws-ecs: a rule's host); absent: `host`'s own. */
  checkHost?: string;
}

export type GateStatus =
  'pending' | 'waiting' | 'approved' | 'rejected' | 'timed-out' | 'proceeded-on-timeout' | 'skipped';

export interface GateState {
  gate: GateName;
  status: GateStatus;
  decidedBy?: string;
  decidedAtMs?: number;
  note?: string;
  /** How the decision arrived: 'update' (the CLI, validated before it is accepted) or 'signal' (the Web UI). */
  via?: 'update' | 'signal';
  /** The key that signed the decision (`SHA256:...`); absent for an unsigned one. */
  fingerprint?: string;
  /** Whether `decidedBy` was proven by a signature (false: `unverified:<name>`); absent before signed decisions. */
  verified?: boolean;
  /**
   * Decisions that were refused (unknown approver, self-approval, wrong gate, a malformed payload); they never
   * count. Only the first MAX_REFUSALS_KEPT are kept, the name cut to MAX_NAME_LENGTH and the reason to
   * MAX_REASON_LENGTH characters, so that a flood of signals cannot grow the state.
   */
  refused: RefusedAttempt[];
  /** Every refused attempt at this gate, the ones not kept in `refused` included (absent in older states). */
  refusedCount?: number;
}

/** A decision that did not count, as the gate keeps it. */
export interface RefusedAttempt {
  /** The name it came with, cut to MAX_NAME_LENGTH characters ("?" when it had none). */
  by: string;
  atMs: number;
  reason: string;
  via: 'update' | 'signal';
}

/** What the approve / reject / signoff updates return: the gate's decision, without the refused attempts. */
export type GateDecision = Omit<GateState, 'refused' | 'refusedCount'>;

/** One analysis window of the new release during a traffic step. */
export interface AnalysisWindow {
  step: number;
  weight: number;
  fromMs: number;
  toMs: number;
  requests: number;
  errors5xx: number;
  errorRate: number;
  p95Ms: number | null;
  verdict: 'pass' | 'fail' | 'inconclusive';
  /** Why it failed or was inconclusive. */
  because?: string;
  /** The stable release over the same window (judged steps with a stable release taking traffic). */
  stable?: { requests: number; errors5xx: number; connectionErrors: number };
  /** The judge against the stable release at this window, with its evidence (figures since the step began). */
  compare?: Comparison;
  /**
   * The router took the canary out on its own (analysis.cutoff): the window ended there, failed. `detail` names the
   * router and the errors ("HAProxy took the canary out after 5 consecutive errors"), `atMs` when it was seen out.
   */
  cutoff?: {
    errorLimit: number;
    atMs: number;
    detail: string;
    /** The rate rule took it out (analysis.cutoff.rate): what it saw over the canary's last requests. */
    rate?: { errors: number; attempts: number; max5xxRate: number; overRequests: number; minErrors: number };
  };
}

/**
 * How much evidence one traffic step had, and what was decided about it: `judged` (enough canary requests and a
 * passing window), or unjudged and then `approved` by a person at the unjudged-step gate, `proceeded` (the plan's
 * onInconclusive or the gate's timeout said so), or the rollback (`failed`). `not-baked`: the plan gives it no bake.
 */
export interface StepEvidence {
  step: number;
  weight: number;
  fromMs: number;
  toMs?: number;
  /** Canary requests (responses) seen in the step's windows, and the least the step needs. */
  requests: number;
  needed: number;
  errors5xx: number;
  connectionErrors: number;
  /** The stable release's requests and errors over the same windows (the baseline's, when `against` names one). */
  stableRequests: number;
  stableErrors: number;
  /** The release the step's windows were judged against when it is a baseline (its release id); absent: the stable. */
  against?: string;
  windows: number;
  /** Windows with a verdict (pass or fail), not inconclusive. */
  conclusive: number;
  status: 'baking' | 'judged' | 'failed' | 'approved' | 'proceeded' | 'not-baked';
  /** How the step ended without a judgement, in words (who approved, which setting proceeded, how long it extended). */
  unjudged?: string;
  /** Extra bake time the step had (onInconclusive: extend). */
  extendedMs?: number;
}

export interface TimelineEntry {
  atMs: number;
  phase: DeployPhase;
  message: string;
  /**
   * Set on the one entry that stands for the entries dropped from the middle of a long timeline (see
   * shared/timeline.ts): how many it stands for.
   */
  omitted?: number;
}

/** Everything the `status` query returns, as the workflow keeps it. */
export interface DeployState {
  kind: 'deploy' | 'rollback' | 'drill';
  service: string;
  environment: string;
  version: string;
  requestedBy: string;
  /** Who asked, as established by the request's signature (absent before signed decisions). */
  requester?: Requester;
  /** The nonces of the signed decisions this runbook accepted (at most MAX_NONCES_KEPT): a replay is refused. */
  usedNonces?: string[];
  /**
   * Where the plan came from: the worker's runbook config and the digest of the plan resolved from it (absent until
   * it is resolved, and in runbooks started before the worker resolved plans).
   */
  config?: { source: string; digest: string };
  phase: DeployPhase;
  /** What is happening now, in words. */
  step: string;
  stable?: ReleaseRef;
  candidate?: ReleaseRef;
  /**
   * The baseline the judge compares the canary with (analysis.compare.baseline): a fresh release of the stable version
   * at the canary's weight, running from the first traffic step until the canary is promoted or rolled back.
   */
  baseline?: ReleaseRef & { running: boolean };
  /** Percent of traffic per release version (as the router has it after the last change). */
  weights: Record<string, number>;
  trafficStep?: { index: number; of: number; weight: number };
  analysis: AnalysisWindow[];
  /** Evidence per traffic step (deploys since `judged-steps`; one entry per step of the plan). */
  steps?: StepEvidence[];
  gates: GateState[];
  /** Who the runbook waits for, when it waits. */
  waitingFor?: { gate: GateName; approvers: string[]; sinceMs: number; timeoutMs: number };
  snapshotId?: string;
  migrations?: MigrationRecord;
  /** The rollback's database restore, when asked for. */
  restore?: RestoreState;
  timeline: TimelineEntry[];
  /** A restore drill ends `passed` (or failed, cancelled). */
  outcome?: Outcome | 'passed';
  reason?: string;
}

/** One run of a release command (a migration, a check), as a runbook records it. */
export interface CommandRecord {
  command: string[];
  exitCode: number | null;
  timedOut: boolean;
  stoppedReason?: string;
  /** The end of its output, scrubbed of credentials (the whole log stays where it ran: logLocation). */
  tail: string;
  logLocation: string;
  durationMs: number;
  /** The run had been started by an earlier attempt (a crashed worker) and was adopted, not run again. */
  adopted: boolean;
}

/** The schema as a deploy saw it: node-pg-migrate's last migration, a digest of the columns, the table count. */
export interface SchemaState {
  migration: string | null;
  /** Absent where only the migration is known (a migrations folder: the snapshot's manifest and the migrator's run). */
  digest?: string;
  tables?: number;
}

/** What a deploy's migration did. `applied` and `version` are node-pg-migrate's (a migrations folder). */
export interface MigrationRecord {
  applied: string[];
  version: string | null;
  /** How the schema was migrated (absent: a folder, as before release commands). */
  by?: 'folder' | 'command';
  /** The folder the migrations came from (the deployed version's, when it holds {version}). */
  dir?: string;
  /** The schema before and after (absent in deploys before release commands). */
  before?: SchemaState;
  after?: SchemaState;
  /** The migrate command's run, and the status command's (must report nothing pending). */
  command?: CommandRecord;
  status?: CommandRecord;
  /** Whether the migration keeps the previous release working; `breaking` refuses an app-only rollback across it. */
  compatibility?: 'backward' | 'breaking';
}

export interface RestoreState {
  snapshotId: string;
  snapshotTakenAtMs: number;
  /** Rows per table now and in the snapshot: what the restore loses. */
  lost: Array<{ table: string; rowsNow: number; rowsInSnapshot: number }>;
  /** The snapshot of the current state taken before anything is restored. */
  safetySnapshotId?: string;
  /** The new database the snapshot was restored into before the swap. */
  restoredInto?: string;
  /** The name the replaced database keeps (never dropped automatically). */
  replacedAs?: string;
  verified?: boolean;
  maintenanceMs?: number;
}

/** The rollback workflow's input: a request; `PlanInRollbackInput` as for {@link DeployInput}. */
export type RollbackInput = RollbackRequest | PlanInRollbackInput;

/** @deprecated the input of rollbacks started before `worker-resolves-plan`: replays only. */
export interface PlanInRollbackInput {
  plan: ResolvedService;
  requestedBy: string;
  /** The version to go back to; default: the newest release that went live before the current one. */
  toVersion?: string;
  /** Restore the service's database from this snapshot (destructive: approval with four-eyes). */
  restoreSnapshotId?: string;
  reason?: string;
}

export interface DeployResult {
  outcome: Outcome;
  service: string;
  environment: string;
  version: string;
  reason?: string;
  /** The pre-migration snapshot, for the rollback workflow's database restore. */
  snapshotId?: string;
  /** The figures that triggered an automatic rollback. */
  failedWindow?: AnalysisWindow;
  stableVersion?: string;
  state: DeployState;
}

/** The longest name a decision may come with (`by`); a longer one is refused, and shown cut to this length. */
export const MAX_NAME_LENGTH = 64;
/** The longest note a decision may carry. */
export const MAX_NOTE_LENGTH = 2_000;
/**
 * A decision payload larger than this many characters (as JSON) is refused before it is parsed. The largest valid
 * payload (a 64-character name, a gate and a 2,000-character note) is about 2,100.
 */
export const MAX_DECISION_PAYLOAD = 4_096;

/**
 * A decider's name: what runbook.yaml's approvers may be (letters, digits, '.', '_', '@', '-'), and ':' for the
 * identities of signed approvals (`unverified:<name>`, key ids). No spaces, quotes, markup or control characters:
 * the name is shown in terminals, the Web UI and HTML reports.
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@:-]*$/;

/**
 * A character a note may not hold: control characters other than tab and newline (a carriage return or an escape
 * sequence rewrites what a terminal shows) and the bidirectional overrides that make text read other than it is.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const FORBIDDEN_IN_NOTE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** The payload of the approve / reject / signoff signals and updates: what a person types into the Web UI. */
export const decisionSchema = z
  .object({
    by: z
      .string()
      .trim()
      .min(1, 'say who decides: "by": "<your name>"')
      .max(MAX_NAME_LENGTH, `a name of at most ${MAX_NAME_LENGTH} characters`)
      .regex(NAME_PATTERN, 'a user name: letters, digits and . _ @ : - (starting with a letter or digit)'),
    gate: z.enum(gateNames).optional(),
    note: z
      .string()
      .max(MAX_NOTE_LENGTH, `a note of at most ${MAX_NOTE_LENGTH} characters`)
      .refine((n) => !FORBIDDEN_IN_NOTE.test(n), 'no control characters (tab and newline are fine)')
      .optional(),
  })
  .strict();
export type Decision = z.infer<typeof decisionSchema>;
