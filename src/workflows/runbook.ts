import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type {
  AnalysisWindow,
  DeployPhase,
  DeployResult,
  DeployState,
  GateName,
  GatePolicy,
  Outcome,
} from '../shared/deploy';
import type { ResolvedService } from '../shared/service-plan';
import { statusQuery } from '../shared/messages';
import { RunbookOutcome, RunbookPhase } from '../shared/search-attributes';
import { addToTimeline } from '../shared/timeline';
import { act, safe } from './activity-options';
import { installGates, REJECTED } from './gates';
import { metrics } from './metrics';
import { planOf, type Taken } from './request';
import type { StepRunner } from './steps';

/** Before the plan is resolved nobody may decide anything: no gate, no approver. */
const NO_POLICY: GatePolicy = { gates: [], approvers: [], fourEyes: true, timeoutMs: 0, onTimeout: 'abort' };

/**
 * What deploy and rollback share: the state the `status` query returns, the gates, phases upserted as search
 * attributes, a compensation stack run non-cancellably, and the ending (release history, lock released).
 * Call before the first await: it registers the handlers; `plan()` then resolves the plan (the first command), and the
 * gates read their policies from it (until then, nothing can be decided).
 */
export function beginRunbook<
  R extends { service: string; environment: string; requestedBy: string; configDigest: string },
>(args: {
  kind: 'deploy' | 'rollback';
  taken: Taken<R>;
  version: string;
  gates: readonly GateName[];
  policyFor: (plan: ResolvedService, gate: GateName) => GatePolicy;
}) {
  const { kind, version, taken } = args;
  const { service, environment, requestedBy } = taken.request;
  const what = `the ${kind} of ${service} ${kind === 'deploy' ? `${version} to` : 'in'} ${environment}`;
  const state: DeployState = {
    kind,
    service,
    environment,
    version,
    requestedBy,
    phase: 'plan',
    step: 'resolving the plan',
    weights: {},
    analysis: [],
    gates: args.gates.map((gate) => ({ gate, status: 'pending', refused: [], refusedCount: 0 })),
    timeline: [],
  };
  let resolved: ResolvedService | undefined;
  const policyFor = (gate: GateName) => (resolved ? args.policyFor(resolved, gate) : NO_POLICY);
  setHandler(statusQuery, () => state);
  const { gate } = installGates(state, policyFor, requestedBy, what, () => resolved?.signing);
  const compensations: Array<{ what: string; run: () => Promise<unknown> }> = [];
  let lockHeld = false;

  const note = (message: string, phase: DeployPhase = state.phase) =>
    addToTimeline(state.timeline, { atMs: Date.now(), phase, message });
  const enter = (phase: DeployPhase, step: string) => {
    state.phase = phase;
    state.step = step;
    note(step, phase);
    log.info(step, { phase, service, environment });
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };

  const step: StepRunner = (phase, what, work) => {
    enter(phase, what);
    return work();
  };

  return {
    state,
    what,
    gate,
    /** The plan to run (see planOf): call once, first. */
    async plan(): Promise<ResolvedService> {
      resolved = await planOf(taken, kind, state);
      return resolved;
    },
    enter,
    note,
    step,
    compensations,
    /** Takes the service's lock (one runbook per service and environment); `finish` releases it. */
    async lock() {
      const { workflowId } = workflowInfo();
      await act.acquireServiceLock({ service, environment, workflowId, kind });
      lockHeld = true;
    },
    /** Approval at a gate, shown as a phase only when the policy lists the gate. */
    async approval(name: GateName) {
      if (policyFor(name).gates.includes(name)) enter('awaiting-approval', `${name} approval`);
      await gate(name);
    },
    /** The traffic split by version, for people, from the router's split by release id. */
    showWeights(percent: Record<string, number>) {
      const byVersion: Record<string, number> = {};
      for (const r of [state.stable, state.candidate]) if (r) byVersion[r.version] = percent[r.releaseId] ?? 0;
      state.weights = byVersion;
    },
    /**
     * Undoes what was done, newest first, even when the workflow is being cancelled. A step that fails for good
     * does not stop the ones after it (maintenance off must still happen when stopping a release was refused).
     * Returns the outcome's reason: `reason`, and what could not be undone.
     */
    async compensate(outcome: Outcome, reason: string): Promise<string> {
      const notUndone: string[] = [];
      await CancellationScope.nonCancellable(async () => {
        if (compensations.length > 0) enter('rolling-back', `${outcome}: ${reason}`);
        const carryOn = compensations.length > 0 && patched('compensations-continue-after-failure');
        for (const c of compensations.reverse()) {
          try {
            await c.run();
            note(`done: ${c.what}`, 'rolling-back');
          } catch (err) {
            if (!carryOn) throw err;
            const why = describeFailure(err);
            notUndone.push(`${c.what} (${why})`);
            note(`FAILED: ${c.what}: ${why}; do it by hand`, 'rolling-back');
          }
        }
        compensations.length = 0;
      });
      return notUndone.length > 0 ? `${reason}; NOT undone: ${notUndone.join('; ')}` : reason;
    },
    /**
     * Records the outcome (state, search attributes, release history), releases the service lock, and returns the
     * runbook's result.
     */
    async finish(
      outcome: Outcome,
      reason: string,
      record: {
        version: string;
        releaseId: string | null;
        snapshotId: string | null;
        details: Record<string, unknown>;
        failedWindow?: AnalysisWindow;
      },
    ): Promise<DeployResult> {
      await CancellationScope.nonCancellable(async () => {
        state.outcome = outcome;
        state.reason = reason;
        state.phase = 'done';
        state.step = `${outcome}: ${reason}`;
        note(state.step, 'done');
        log.info(state.step, { phase: 'done', outcome, service, environment });
        metrics.outcome(kind, service, environment, outcome);
        upsertSearchAttributes([
          { key: RunbookPhase, value: 'done' },
          { key: RunbookOutcome, value: outcome },
        ]);
        const { workflowId, startTime } = workflowInfo();
        await safe.recordRelease({
          service,
          environment,
          version: record.version,
          releaseId: record.releaseId,
          workflowId,
          kind,
          outcome,
          startedAtMs: startTime.getTime(),
          finishedAtMs: Date.now(),
          snapshotId: record.snapshotId,
          reason,
          details: state.requester ? { ...record.details, ...auditOf(state) } : record.details,
        });
        if (lockHeld) await safe.releaseServiceLock({ service, environment, workflowId });
      });
      return {
        outcome,
        service,
        environment,
        version: record.version,
        reason,
        ...(record.snapshotId ? { snapshotId: record.snapshotId } : {}),
        ...(record.failedWindow ? { failedWindow: record.failedWindow } : {}),
        ...(state.stable ? { stableVersion: state.stable.version } : {}),
        state,
      };
    },
  };
}

/**
 * The outcome a runbook that stopped with `err` ends with: cancelled, rejected (at a gate), rolled-back (when traffic
 * had moved and was put back), or failed.
 */
export function outcomeOf(err: unknown, trafficPutBack: boolean): Outcome {
  if (isCancellation(err)) return 'cancelled';
  if (trafficPutBack) return 'rolled-back';
  return err instanceof ApplicationFailure && err.type === REJECTED ? 'rejected' : 'failed';
}

/** The message of what ended a runbook (or a step of it), unwrapping activity failures to their cause. */
export function describeFailure(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  if (isCancellation(err)) return 'cancelled by an operator';
  return err instanceof Error ? err.message : String(err);
}

/**
 * What the release history keeps of who decided (signed decisions only): the requester, and per decided gate who
 * (verified identity or unverified:<name>), the key, when, how, the note; and the refused attempts with their reasons.
 */
export function auditOf(state: DeployState): Record<string, unknown> {
  return {
    requester: state.requester ?? null,
    decisions: state.gates
      .filter((g) => g.decidedBy !== undefined)
      .map((g) => ({
        gate: g.gate,
        status: g.status,
        by: g.decidedBy,
        verified: g.verified ?? false,
        fingerprint: g.fingerprint ?? null,
        atMs: g.decidedAtMs ?? null,
        via: g.via === 'signal' ? 'ui' : 'cli',
        note: g.note ?? null,
      })),
    refused: state.gates.flatMap((g) =>
      g.refused.map((r) => ({
        gate: g.gate,
        by: r.by,
        atMs: r.atMs,
        via: r.via === 'signal' ? 'ui' : 'cli',
        reason: r.reason,
      })),
    ),
  };
}
