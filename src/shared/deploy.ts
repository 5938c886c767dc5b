import { z } from 'zod';
import { APPROVAL_GATES, type ApprovalGate, type SingleHostService } from './service-plan';

/**
 * Types of the deploy, rollback and drill runbooks that cross the workflow boundary (inputs, results,
 * status). Plain JSON, no secrets: a plan names targets (a database by name, the worker environment
 * variable that holds its URL), the worker holds the credentials.
 */

export const gateNames = APPROVAL_GATES;
export type GateName = ApprovalGate;

/** The plan a deploy or rollback runs: the service's resolved settings for one environment. */
export type ServicePlan = SingleHostService;

export interface DeployInput {
  plan: ServicePlan;
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
  | 'migrate'
  | 'start-release'
  | 'health'
  | 'smoke'
  | 'traffic'
  | 'sign-off'
  | 'finalize'
  | 'rolling-back'
  | 'done';

export interface ReleaseRef {
  releaseId: string;
  version: string;
  host: string;
  port: number;
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
  /** Decisions that were refused (unknown approver, self-approval, wrong gate); they never count. */
  refused: Array<{ by: string; atMs: number; reason: string; via: 'update' | 'signal' }>;
}

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
}

export interface TimelineEntry {
  atMs: number;
  phase: DeployPhase;
  message: string;
}

/** Everything the `status` query returns, as the workflow keeps it. */
export interface DeployState {
  kind: 'deploy' | 'rollback';
  service: string;
  environment: string;
  version: string;
  requestedBy: string;
  phase: DeployPhase;
  /** What is happening now, in words. */
  step: string;
  stable?: ReleaseRef;
  candidate?: ReleaseRef;
  /** Percent of traffic per release version (as the router has it after the last change). */
  weights: Record<string, number>;
  trafficStep?: { index: number; of: number; weight: number };
  analysis: AnalysisWindow[];
  gates: GateState[];
  /** Who the runbook waits for, when it waits. */
  waitingFor?: { gate: GateName; approvers: string[]; sinceMs: number; timeoutMs: number };
  snapshotId?: string;
  migrations?: { applied: string[]; version: string | null };
  timeline: TimelineEntry[];
  outcome?: Outcome;
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

/** The payload of the approve / reject / signoff signals and updates: what a person types into the Web UI. */
export const decisionSchema = z
  .object({
    by: z.string().trim().min(1, 'say who decides: "by": "<your name>"'),
    gate: z.enum(gateNames).optional(),
    note: z.string().max(2000).optional(),
  })
  .strict();
export type Decision = z.infer<typeof decisionSchema>;
