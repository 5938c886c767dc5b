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
  ServicePlan,
} from '../shared/deploy';
import { statusQuery } from '../shared/messages';
import { addToTimeline } from '../shared/timeline';
import {
  RunbookEnvironment,
  RunbookKind,
  RunbookOutcome,
  RunbookPhase,
  RunbookService,
} from '../shared/search-attributes';
import { act, safe } from './activity-options';
import { installGates, REJECTED } from './gates';
import { metrics } from './metrics';
import type { StepRunner } from './steps';

/**
 * What deploy and rollback share: the state the `status` query returns, the gates, phases upserted as search
 * attributes, a compensation stack run non-cancellably, and the ending (release history, lock released).
 * Call before the first await: it registers the handlers.
 */
export function beginRunbook(args: {
  kind: 'deploy' | 'rollback';
  plan: ServicePlan;
  version: string;
  requestedBy: string;
  gates: readonly GateName[];
  policyFor: (gate: GateName) => GatePolicy;
}) {
  const { kind, plan, version, requestedBy } = args;
  const what = `the ${kind} of ${plan.service} ${kind === 'deploy' ? `${version} to` : 'in'} ${plan.environment}`;
  const state: DeployState = {
    kind,
    service: plan.service,
    environment: plan.environment,
    version,
    requestedBy,
    phase: 'plan',
    step: 'resolving the plan',
    weights: {},
    analysis: [],
    gates: args.gates.map((gate) => ({ gate, status: 'pending', refused: [], refusedCount: 0 })),
    timeline: [],
  };
  setHandler(statusQuery, () => state);
  const { gate } = installGates(state, args.policyFor, requestedBy, what);
  const compensations: Array<{ what: string; run: () => Promise<unknown> }> = [];
  let lockHeld = false;

  const note = (message: string, phase: DeployPhase = state.phase) =>
    addToTimeline(state.timeline, { atMs: Date.now(), phase, message });
  const enter = (phase: DeployPhase, step: string) => {
    state.phase = phase;
    state.step = step;
    note(step, phase);
    log.info(step, { phase, service: plan.service, environment: plan.environment });
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };
  upsertSearchAttributes([
    { key: RunbookService, value: plan.service },
    { key: RunbookEnvironment, value: plan.environment },
    { key: RunbookKind, value: kind },
    { key: RunbookPhase, value: 'plan' },
  ]);

  const step: StepRunner = (phase, what, work) => {
    enter(phase, what);
    return work();
  };

  return {
    state,
    what,
    gate,
    enter,
    note,
    step,
    compensations,
    /** Takes the service's lock (one runbook per service and environment); `finish` releases it. */
    async lock() {
      const { workflowId } = workflowInfo();
      await act.acquireServiceLock({ service: plan.service, environment: plan.environment, workflowId, kind });
      lockHeld = true;
    },
    /** Approval at a gate, shown as a phase only when the policy lists the gate. */
    async approval(name: GateName) {
      if (args.policyFor(name).gates.includes(name)) enter('awaiting-approval', `${name} approval`);
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
        log.info(state.step, { phase: 'done', outcome, service: plan.service, environment: plan.environment });
        metrics.outcome(kind, plan.service, plan.environment, outcome);
        upsertSearchAttributes([
          { key: RunbookPhase, value: 'done' },
          { key: RunbookOutcome, value: outcome },
        ]);
        const { workflowId, startTime } = workflowInfo();
        await safe.recordRelease({
          service: plan.service,
          environment: plan.environment,
          version: record.version,
          releaseId: record.releaseId,
          workflowId,
          kind,
          outcome,
          startedAtMs: startTime.getTime(),
          finishedAtMs: Date.now(),
          snapshotId: record.snapshotId,
          reason,
          details: record.details,
        });
        if (lockHeld)
          await safe.releaseServiceLock({ service: plan.service, environment: plan.environment, workflowId });
      });
      return {
        outcome,
        service: plan.service,
        environment: plan.environment,
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
