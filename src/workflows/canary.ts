import { ApplicationFailure, patched, sleep, workflowInfo } from '@temporalio/workflow';
import { judgeWindow } from '../shared/analysis';
import type { AnalysisWindow, ReleaseRef } from '../shared/deploy';
import type { ResolvedService, TrafficStep } from '../shared/service-plan';
import { act, safe } from './activity-options';
import { metrics } from './metrics';
import type { beginRunbook } from './runbook';
import type { RouteSpec } from '../platforms/types';
import { say } from './wording';

const ANALYSIS_FAILED = 'AnalysisFailed';
const MAX_WINDOWS_KEPT = 100;
/** History events after which the analysis during the go-live wait stops (Temporal's limit is 51,200). */
const HISTORY_CAP_FOR_ANALYSIS = 20_000;

type Runbook = ReturnType<typeof beginRunbook>;

/**
 * The canary of a deploy: the new release joins the route, traffic moves step by step (each step baked while the
 * analysis judges window after window), and the analysis keeps watching while the go-live sign-off waits. A failed
 * analysis throws AnalysisFailed (non-retryable), which the deploy answers with its compensations: traffic back to
 * the stable release first.
 */
export function createCanary(rb: Runbook, plan: ResolvedService, route: RouteSpec, drainMs: number) {
  const { state, enter, note, showWeights, compensations } = rb;
  const canary = { trafficMoved: false, failedWindow: undefined as AnalysisWindow | undefined };

  /** Watches one traffic step for its bake time, window by window. */
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
   * Starts an analysis now (the counters are read at once, so the first window covers the time since the traffic
   * changed); each `window()` call measures the time since the previous one.
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
          canary.failedWindow = w;
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

  return Object.assign(canary, {
    /** The steps of this deploy: the plan's, or one step to 100% on a first deploy (no stable release). */
    steps(stable: ReleaseRef | undefined): TrafficStep[] {
      return stable ? plan.traffic.steps : [{ weight: 100, bakeMs: plan.traffic.steps.at(-1)?.bakeMs ?? 0 }];
    },

    /** Adds the candidate to the route and moves traffic to it step by step, each step baked and judged. */
    async shift(stable: ReleaseRef | undefined, candidate: ReleaseRef): Promise<void> {
      compensations.push({
        what: `remove ${candidate.version} from the route`,
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
      const steps = this.steps(stable);
      for (const [index, step] of steps.entries()) {
        state.trafficStep = { index: index + 1, of: steps.length, weight: step.weight };
        enter('traffic', say.trafficStep(index + 1, steps.length, step.weight, candidate.version));
        const percent = stable
          ? { [stable.releaseId]: 100 - step.weight, [candidate.releaseId]: step.weight }
          : { [candidate.releaseId]: 100 };
        canary.trafficMoved = true;
        showWeights(await act.setTraffic(route, percent));
        await bake(index + 1, step, candidate);
      }
    },

    /**
     * The go-live sign-off, with the analysis still watching the candidate at 100%. A long wait with a short
     * interval would grow the history towards Temporal's limit: past a cap the analysis stops (the new release
     * still serves 100%, and the sign-off still decides).
     */
    async signOff(stepIndex: number, candidate: ReleaseRef): Promise<void> {
      enter('sign-off', 'go-live sign-off');
      const analysis = await watch(stepIndex, 100, candidate);
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
      await rb.gate('go-live', { whileWaiting: watchWhileWaiting, everyMs: plan.analysis.intervalMs });
    },
  });
}
