import {
  ApplicationFailure,
  isCancellation,
  patched,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { judgeWindow } from '../shared/analysis';
import type { AnalysisWindow, DeployInput, DeployResult, Outcome, ReleaseRef } from '../shared/deploy';
import { releaseIdFor, snapshotIdFor } from '../shared/ids';
import { drainMsOf, heaviestRelease, onPlatform, releaseOf, routeOf } from '../shared/platform';
import { APPROVAL_GATES, type TrafficStep } from '../shared/service-plan';
import { critical, healthGate, longWithHeartbeat, quick, releaseStart } from './activity-options';
import { REJECTED } from './gates';
import { metrics } from './metrics';
import { beginRunbook, describeFailure } from './runbook';

const act = proxyActivities<Activities>(quick);
const safe = proxyActivities<Activities>(critical);
const slow = proxyActivities<Activities>(longWithHeartbeat);

const ANALYSIS_FAILED = 'AnalysisFailed';
const MAX_WINDOWS_KEPT = 100;
/** History events after which the analysis during the go-live wait stops (Temporal's limit is 51,200). */
const HISTORY_CAP_FOR_ANALYSIS = 20_000;

/**
 * Carries a release from request to go-live as the runbooks do it: plan -> preflight -> before-start
 * approval -> snapshot -> migrate -> start the new release next to the stable one -> health gate -> smoke
 * checks -> before-traffic approval -> canary traffic steps watched by the analysis -> go-live sign-off ->
 * finalize. Any failure after the release started puts traffic back on the stable release at once (in a
 * non-cancellable scope) and stops the new one; the database is not restored (migrations are expand/contract;
 * the snapshot id is in the result for the rollback workflow).
 *
 * Business outcomes (succeeded, rolled-back, failed, rejected) are results, reported by the CLI and the
 * RunbookOutcome search attribute; a cancelled deploy rolls back and then ends as Cancelled.
 */
export async function deployService(input: DeployInput): Promise<DeployResult> {
  const { plan, version, requestedBy } = input;
  const { workflowId } = workflowInfo();
  const route = routeOf(plan);
  const on = onPlatform(plan);
  const drainMs = drainMsOf(plan);
  const rb = beginRunbook({
    kind: 'deploy',
    plan,
    version,
    requestedBy,
    gates: APPROVAL_GATES,
    policyFor: () => plan.approvals,
  });
  const { state, gate, enter, note, approval, showWeights, compensations } = rb;
  state.timeline.push({
    atMs: Date.now(),
    phase: 'plan',
    message:
      `plan: ${plan.service} ${version} to ${plan.environment} on ${plan.platform}; traffic ` +
      `${plan.traffic.steps.map((s) => `${s.weight}%`).join(' -> ')}; gates ${plan.approvals.gates.join(', ') || 'none'}` +
      `${plan.database ? `; database ${plan.database.name}` : ''}; requested by ${requestedBy}`,
  });

  let trafficMoved = false;
  let lockHeld = false;
  let failedWindow: AnalysisWindow | undefined;

  try {
    enter('preflight', 'checking the stable release and taking the service lock');
    await act.acquireServiceLock({ service: plan.service, environment: plan.environment, workflowId, kind: 'deploy' });
    lockHeld = true;
    await act.ensureRoute(route);
    const current = await act.getTraffic(route);
    const stableId = heaviestRelease(current.percent);
    if (stableId) {
      const stable = await act.getRelease({
        service: plan.service,
        environment: plan.environment,
        releaseId: stableId,
        ...on,
      });
      if (!stable) {
        throw ApplicationFailure.create({
          type: 'PreflightFailed',
          message: `the stable release ${stableId} takes traffic but its process is not running; run \`runbook rollback ${plan.service}\` first`,
          nonRetryable: true,
        });
      }
      await act.waitHealthy({
        service: plan.service,
        environment: plan.environment,
        releaseId: stable.releaseId,
        ...on,
        release: stable,
        health: plan.health,
        deadlineAtMs: Date.now() + plan.health.deadlineMs,
      });
      state.stable = stable;
      showWeights(current.percent);
    } else {
      state.timeline.push({
        atMs: Date.now(),
        phase: 'preflight',
        message: 'first deploy: no stable release, traffic goes to the new release in one step',
      });
    }

    await approval('before-start');

    if (plan.database) {
      const snapshotId = snapshotIdFor(plan.service, plan.environment, workflowId, 'pre-migrate');
      enter('snapshot', `snapshot of database ${plan.database.name} (${snapshotId})`);
      const manifest = await slow.takeSnapshot({
        snapshotId,
        service: plan.service,
        environment: plan.environment,
        database: plan.database.name,
        workflowId,
        ...on,
      });
      state.snapshotId = manifest.snapshotId;
      state.timeline.push({
        atMs: Date.now(),
        phase: 'snapshot',
        message: `snapshot ${manifest.snapshotId}: ${manifest.tables.length} tables, ${manifest.tables.reduce((n, t) => n + t.rows, 0)} rows, ${manifest.bytes} bytes, migration ${manifest.migrationVersion ?? 'none'}`,
      });
      if (plan.database.migrationsDir) {
        enter('migrate', `migrating ${plan.database.name}`);
        state.migrations = await slow.migrateDatabase(plan.database.name, plan.database.migrationsDir, on);
        state.timeline.push({
          atMs: Date.now(),
          phase: 'migrate',
          message:
            state.migrations.applied.length > 0
              ? `applied ${state.migrations.applied.join(', ')}`
              : 'no pending migration',
        });
      }
    }

    enter('start-release', `starting ${version} next to ${state.stable?.version ?? 'nothing'}`);
    const releaseId = releaseIdFor(version, workflowId);
    const key = { service: plan.service, environment: plan.environment, releaseId, ...on };
    compensations.push({
      what: `stop ${version}`,
      run: () => safe.stopRelease({ ...key, graceMs: drainMs }),
    });
    const candidate = await proxyActivities<Activities>(releaseStart(plan)).startRelease({
      ...key,
      version,
      ...releaseOf(plan),
      ...(plan.database ? { database: { name: plan.database.name, urlEnv: plan.database.urlEnv } } : {}),
    });
    state.candidate = candidate;

    enter(
      'health',
      `health gate: ${plan.health.liveness.path} and ${plan.health.readiness.path} on ${candidate.host}:${candidate.port}`,
    );
    await proxyActivities<Activities>(healthGate(plan)).waitHealthy({
      ...key,
      release: candidate,
      health: plan.health,
      deadlineAtMs: Date.now() + plan.health.deadlineMs,
    });

    enter('smoke', `${plan.smoke.length} smoke check(s) against ${candidate.host}:${candidate.port}`);
    if (plan.smoke.length > 0)
      await act.runSmokeChecks({ release: candidate, checks: plan.smoke, timeoutMs: plan.health.timeoutMs });

    await approval('before-traffic');

    const stable = state.stable;
    compensations.push({
      what: `remove ${version} from the route`,
      run: () => safe.removeFromRoute(route, candidate.releaseId, Math.min(drainMs, 2_000)),
    });
    await act.addToRoute(route, candidate);
    if (stable) {
      compensations.push({
        what: `traffic back to ${stable.version}`,
        run: async () =>
          showWeights(await safe.setTraffic(route, { [stable.releaseId]: 100, [candidate.releaseId]: 0 })),
      });
    }
    const steps: TrafficStep[] = stable
      ? plan.traffic.steps
      : [{ weight: 100, bakeMs: plan.traffic.steps.at(-1)?.bakeMs ?? 0 }];
    for (const [index, step] of steps.entries()) {
      state.trafficStep = { index: index + 1, of: steps.length, weight: step.weight };
      enter('traffic', `traffic step ${index + 1}/${steps.length}: ${step.weight}% on ${version}`);
      const percent = stable
        ? { [stable.releaseId]: 100 - step.weight, [candidate.releaseId]: step.weight }
        : { [candidate.releaseId]: 100 };
      trafficMoved = true;
      showWeights(await act.setTraffic(route, percent));
      await bake(index + 1, step, candidate);
    }

    enter('sign-off', 'go-live sign-off');
    const analysis = await watch(steps.length, 100, candidate);
    // A long wait with a short interval would grow the history towards Temporal's limit: past a cap the
    // analysis stops (the new release still serves 100%, and the sign-off still decides).
    const capped = patched('analysis-history-cap-during-sign-off');
    let capNoted = false;
    const watchWhileWaiting = async () => {
      if (capped && workflowInfo().historyLength > HISTORY_CAP_FOR_ANALYSIS) {
        if (!capNoted) note(`analysis paused while waiting: the history reached ${HISTORY_CAP_FOR_ANALYSIS} events`);
        capNoted = true;
        return;
      }
      await analysis.window();
    };
    await gate('go-live', { whileWaiting: watchWhileWaiting, everyMs: plan.analysis.intervalMs });

    enter('finalize', stable ? `draining and stopping ${stable.version}` : 'recording the release');
    compensations.length = 0; // past this point the new release is stable: nothing to undo
    if (stable) {
      await slow.removeFromRoute(route, stable.releaseId, drainMs);
      await safe.stopRelease({
        service: plan.service,
        environment: plan.environment,
        releaseId: stable.releaseId,
        graceMs: drainMs,
        ...on,
      });
    }
    showWeights({ [candidate.releaseId]: 100 });
    return await finish('succeeded', `${version} is live`);
  } catch (err) {
    const cancelled = isCancellation(err);
    const reason = describeFailure(err);
    const rejected = err instanceof ApplicationFailure && err.type === REJECTED;
    const outcome: Outcome = cancelled ? 'cancelled' : trafficMoved ? 'rolled-back' : rejected ? 'rejected' : 'failed';
    const rollbackFrom = Date.now();
    const finalReason = await rb.compensate(outcome, reason);
    if (trafficMoved) metrics.rollback('automatic', plan.service, plan.environment, (Date.now() - rollbackFrom) / 1000);
    const result = await finish(outcome, finalReason);
    if (cancelled) throw err;
    return result;
  }

  async function finish(outcome: Outcome, reason: string): Promise<DeployResult> {
    await rb.finish(outcome, reason, {
      version,
      releaseId: state.candidate?.releaseId ?? null,
      snapshotId: state.snapshotId ?? null,
      details: { stableVersion: state.stable?.version ?? null, requestedBy, failedWindow: failedWindow ?? null },
      lockHeld,
    });
    return {
      outcome,
      service: plan.service,
      environment: plan.environment,
      version,
      reason,
      ...(state.snapshotId ? { snapshotId: state.snapshotId } : {}),
      ...(failedWindow ? { failedWindow } : {}),
      ...(state.stable ? { stableVersion: state.stable.version } : {}),
      state,
    };
  }

  /** Watches one traffic step for its bake time, window by window; throws AnalysisFailed to roll back. */
  async function bake(stepIndex: number, step: TrafficStep, candidate: ReleaseRef): Promise<void> {
    if (step.bakeMs <= 0) return;
    const analysis = await watch(stepIndex, step.weight, candidate);
    const end = Date.now() + step.bakeMs;
    while (Date.now() < end) {
      await sleep(Math.min(plan.analysis.intervalMs, end - Date.now()));
      await analysis.window();
    }
  }

  /**
   * Starts an analysis now (the counters are read at once, so the first window covers the time since the
   * traffic changed); each `window()` call measures the time since the previous one.
   */
  async function watch(stepIndex: number, weight: number, candidate: ReleaseRef) {
    let from = await act.readTrafficCounters(route, candidate.releaseId);
    let failures = 0;
    return {
      async window(): Promise<void> {
        const m = await act.measureWindow({
          route,
          release: candidate,
          from,
          liveness: plan.health.liveness,
          timeoutMs: plan.health.timeoutMs,
        });
        from = m.counters;
        const judged = judgeWindow(plan.analysis, m, { countConnectionErrors: patched('count-connection-errors') });
        const w: AnalysisWindow = {
          step: stepIndex,
          weight,
          fromMs: m.fromMs,
          toMs: m.toMs,
          requests: m.requests,
          errors5xx: m.errors5xx,
          p95Ms: m.p95Ms,
          ...judged,
        };
        state.analysis.push(w);
        metrics.analysis(plan.service, plan.environment, w.verdict);
        if (state.analysis.length > MAX_WINDOWS_KEPT) state.analysis.shift();
        if (w.verdict === 'pass') failures = 0;
        if (w.verdict !== 'fail') return;
        failures++;
        if (failures > plan.analysis.failuresTolerated) {
          failedWindow = w;
          throw ApplicationFailure.create({
            type: ANALYSIS_FAILED,
            message: `canary analysis failed at ${weight}%: ${w.because}`,
            nonRetryable: true,
            details: [w],
          });
        }
      },
    };
  }
}
