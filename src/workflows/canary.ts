import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { inconclusiveActionOf, judgeWindow, stepEvidenceNeed } from '../shared/analysis';
import type { AnalysisWindow, ReleaseRef, StepEvidence } from '../shared/deploy';
import { rateCutoffOf } from '../shared/cutoff-rate';
import { looksFor, warmupOf } from '../shared/judge';
import type { CutoffSpec, ResolvedService, TrafficStep } from '../shared/service-plan';
import type { CutoffReport } from '../platforms/types';
import { platformPlanOf } from '../platforms/descriptors';
import { act, healthGate, releaseStart, safe, watch as watchActs, watchOnOwnQueue } from './activity-options';
import { metrics } from './metrics';
import { describeFailure, type beginRunbook } from './runbook';
import type { RouteSpec } from '../platforms/types';
import { releaseKey, startRequest } from './steps';
import { say } from './wording';

const ANALYSIS_FAILED = 'AnalysisFailed';
/**
 * The patch that moves the cut-off's watch to the watch queue (watchQueueOf): on the runbooks' queue, as many canaries
 * baking at once as a worker has activity slots held them all, and their windows waited for a slot.
 */
const WATCH_QUEUE = 'watch-queue';
const MAX_WINDOWS_KEPT = 100;
/**
 * The patch of judged steps: each baked step needs evidence (analysis.onInconclusive decides when it has none), and
 * each window is judged against the stable release too (measureAgainstStable).
 */
const JUDGED_STEPS = 'judged-steps';
const UNJUDGED_GATE = 'unjudged-step';
/**
 * The patch of the router's cut-off (analysis.cutoff): the canary joins the route with it, and each judged step
 * watches for it (watchCutoff) beside its windows, failing the step at once when the router took the canary out.
 */
const CANARY_CUTOFF = 'canary-cutoff';
/**
 * The patch of late figures: on a platform whose figures come late (CloudWatch), a judged step bakes its metrics lag
 * longer, so that the minutes up to the end of its bake are published and judged before the next step.
 */
const METRICS_LAG = 'judged-step-metrics-lag';
/**
 * The patch of the baseline (analysis.compare.baseline, where the platform runs one): a fresh release of the stable
 * version joins the route at the canary's weight for the traffic steps, the judge compares the canary with it, and it
 * is stopped when the steps end or the deploy rolls back.
 */
const CANARY_BASELINE = 'canary-baseline';
/**
 * The patch of the rate cut-off (analysis.cutoff.rate): the step's watch also takes the canary out when its recent
 * requests fail too often (HAProxy's own cut-off counts consecutive errors only: a half-failing canary got past it).
 */
const RATE_CUTOFF = 'canary-rate-cutoff';
/**
 * The patch of the short warm-up (analysis.compare.warmup): against a baseline, the latency of a step is judged after
 * DEFAULT_WARMUP_MS instead of after a whole interval, so that a slower canary is caught a window earlier.
 */
const SHORT_WARMUP = 'judge-short-warmup';
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
  const minConclusive = plan.analysis.minConclusiveWindows ?? 1;
  const metricsLagMs = platformPlanOf(plan).metricsLagMs ?? 0;
  const canary = {
    trafficMoved: false,
    failedWindow: undefined as AnalysisWindow | undefined,
    unjudgedStep: undefined as StepEvidence | undefined,
    /** The cut-off the canary joined the route with (a stable release serving, analysis.cutoff, the patch). */
    cutoff: undefined as CutoffSpec | undefined,
    /** The baseline the judge compares the canary with (since canary-baseline), while it runs. */
    baseline: undefined as ReleaseRef | undefined,
  };
  /** The baseline's compensation while it runs (taken off the stack when the steps end and it is stopped). */
  let baselineUndo: { what: string; run: () => Promise<unknown> } | undefined;

  /** Whether this plan asks for a baseline where its platform runs one (analysis.compare.baseline, default auto). */
  function wantsBaseline(): boolean {
    const mode = plan.analysis.compare?.baseline ?? 'auto';
    return mode !== 'off' && platformPlanOf(plan).baseline !== undefined;
  }

  /**
   * Starts the baseline: a release of the stable version with its own id (`<stable>-baseline`), no migrations, the
   * same health gate, added to the route at weight 0. A baseline that does not come up is stopped and the canary is
   * judged against the stable release instead (said in the timeline): the deploy does not fail for its judge's aid.
   */
  async function startBaseline(stable: ReleaseRef, candidate: ReleaseRef): Promise<ReleaseRef | undefined> {
    const platform = platformPlanOf(plan);
    const key = releaseKey(plan, platform, `${stable.releaseId}-baseline`);
    baselineUndo = {
      what: `stop the baseline ${key.releaseId}`,
      run: () => stopBaseline(key, { [stable.releaseId]: 100, [candidate.releaseId]: 0 }),
    };
    compensations.push(baselineUndo);
    note(
      `starting the baseline ${key.releaseId}: ${stable.version} again (${platform.baseline?.how}), at the canary's ` +
        'weight; the judge compares the canary with it',
    );
    try {
      const release = await proxyActivities<Activities>(releaseStart(platform)).startRelease(
        startRequest(plan, platform, key, stable.version),
      );
      state.baseline = { ...release, running: true };
      await proxyActivities<Activities>(healthGate(plan)).waitHealthy({
        ...key,
        release,
        health: plan.health,
        deadlineAtMs: Date.now() + plan.health.deadlineMs,
      });
      await act.addToRoute(route, release);
      return release;
    } catch (err) {
      if (isCancellation(err)) throw err;
      note(
        `the baseline ${key.releaseId} did not come up (${describeFailure(err)}): the canary is judged against the ` +
          'stable release',
      );
      await stopBaseline(key);
      dropBaselineUndo();
      state.baseline = undefined;
      return undefined;
    }
  }

  /** Takes the baseline out of the route (`percent` first when given: its weight back) and stops it. */
  async function stopBaseline(key: ReturnType<typeof releaseKey>, percent?: Record<string, number>): Promise<void> {
    if (percent) showWeights(await safe.setTraffic(route, percent));
    try {
      await safe.removeFromRoute(route, key.releaseId, Math.min(drainMs, 2_000));
    } finally {
      await safe.stopRelease({ ...key, graceMs: Math.min(drainMs, 2_000) });
      if (state.baseline) state.baseline.running = false;
      canary.baseline = undefined;
    }
  }

  /** Outside the compensations (which iterate the stack): the baseline is stopped, its undo comes off the stack. */
  function dropBaselineUndo() {
    const i = baselineUndo ? compensations.indexOf(baselineUndo) : -1;
    if (i >= 0) compensations.splice(i, 1);
    baselineUndo = undefined;
  }

  /** Watches one traffic step for its bake time, window by window. */
  async function bake(stepIndex: number, step: TrafficStep, candidate: ReleaseRef): Promise<void> {
    if (step.bakeMs <= 0) return;
    const analysis = await watch(stepIndex, step.weight, candidate);
    await windowsFor(step.bakeMs, analysis.window);
  }

  /** Runs analysis windows for `ms`, or until `enough()` holds; `wake()` ends a window early (a cut-off). */
  async function windowsFor(
    ms: number,
    window: () => Promise<void>,
    enough: () => boolean = () => false,
    wake?: () => boolean,
  ) {
    const end = Date.now() + ms;
    while (Date.now() < end && !enough()) {
      const wait = Math.min(plan.analysis.intervalMs, end - Date.now());
      if (wake) await condition(wake, wait);
      else await sleep(wait);
      await window();
    }
  }

  /**
   * Watches for the router's cut-off of the candidate while a step bakes (an activity that returns when the router
   * took it out); `stop()` cancels the watch when the step ends.
   */
  function watchCutoff(candidate: ReleaseRef) {
    const scope = new CancellationScope();
    const watcher = { report: undefined as CutoffReport | undefined, stop: () => scope.cancel() };
    const cutoff = canary.cutoff;
    const rate = cutoff && patched(RATE_CUTOFF) ? rateCutoffOf(cutoff) : undefined;
    const watchArgs = cutoff && rate ? [{ errorLimit: cutoff.errorLimit, rate }] : [];
    void scope
      .run(() =>
        (patched(WATCH_QUEUE) ? watchOnOwnQueue() : watchActs).watchCutoff(route, candidate.releaseId, ...watchArgs),
      )
      .then(
        (report) => {
          if (report) watcher.report = report;
        },
        () => undefined, // cancelled at the end of the step, or the watch gave up: the windows still judge
      );
    return watcher;
  }

  const isJudged = (ev: StepEvidence) => ev.requests >= ev.needed && ev.conclusive >= minConclusive;
  const evidenceWords = (ev: StepEvidence) =>
    `${ev.requests} canary requests (at least ${ev.needed} needed), ${ev.conclusive} of ${ev.windows} windows conclusive` +
    `${minConclusive > 1 ? ` (at least ${minConclusive} needed)` : ''}; ` +
    `${ev.against ? `baseline ${ev.against}` : 'stable'} ${ev.stableRequests} requests`;

  /**
   * A baked step of a canary with a stable release (since `judged-steps`): windows judged against the stable release
   * too, and evidence counted; a step that ends without enough evidence follows analysis.onInconclusive. `started`:
   * the step's cut-off watch when it began before the traffic moved (canary-rate-cutoff); else it starts here.
   */
  async function bakeJudged(
    stepIndex: number,
    step: TrafficStep,
    candidate: ReleaseRef,
    stable: ReleaseRef,
    started?: ReturnType<typeof watchCutoff>,
  ) {
    const ev: StepEvidence = {
      step: stepIndex,
      weight: step.weight,
      fromMs: Date.now(),
      requests: 0,
      needed: stepEvidenceNeed(plan.analysis, step),
      errors5xx: 0,
      connectionErrors: 0,
      stableRequests: 0,
      stableErrors: 0,
      windows: 0,
      conclusive: 0,
      status: step.bakeMs > 0 ? 'baking' : 'not-baked',
      ...(canary.baseline ? { against: canary.baseline.releaseId } : {}),
    };
    (state.steps ??= []).push(ev);
    if (step.bakeMs <= 0) return;
    const action = inconclusiveActionOf(plan.analysis);
    const extendMs = action === 'extend' ? (plan.analysis.extendMaxMs ?? 0) : 0;
    const watcher = started ?? (canary.cutoff ? watchCutoff(candidate) : undefined);
    try {
      await bakeJudgedWatched(ev, step, candidate, stable, action, extendMs, watcher);
    } finally {
      watcher?.stop();
    }
  }

  async function bakeJudgedWatched(
    ev: StepEvidence,
    step: TrafficStep,
    candidate: ReleaseRef,
    stable: ReleaseRef,
    action: ReturnType<typeof inconclusiveActionOf>,
    extendMs: number,
    watcher: ReturnType<typeof watchCutoff> | undefined,
  ) {
    const stepIndex = ev.step;
    const lagMs = metricsLagMs > 0 && patched(METRICS_LAG) ? metricsLagMs : 0;
    const analysis = await watchJudged(ev, step, candidate, stable, extendMs + lagMs, watcher);
    if (lagMs > 0) {
      note(`step ${stepIndex} (${step.weight}%) bakes ${lagMs / 1000}s longer: its traffic figures arrive that late`);
    }
    const wake = watcher ? () => watcher.report !== undefined : undefined;
    await windowsFor(step.bakeMs + lagMs, analysis.window, undefined, wake);
    if (!isJudged(ev) && extendMs > 0) {
      note(
        `step ${stepIndex} (${step.weight}%) not judged yet: ${evidenceWords(ev)}; baking up to ${extendMs} ms longer`,
      );
      const from = Date.now();
      await windowsFor(extendMs, analysis.window, () => isJudged(ev), wake);
      ev.extendedMs = Date.now() - from;
    }
    ev.toMs = Date.now();
    if (isJudged(ev)) {
      ev.status = 'judged';
      note(`step ${stepIndex} (${step.weight}%) judged: ${evidenceWords(ev)}`);
      return;
    }
    if (action === 'proceed') {
      ev.status = 'proceeded';
      ev.unjudged = 'analysis.onInconclusive is proceed';
      note(
        `step ${stepIndex} (${step.weight}%) NOT judged, proceeding (analysis.onInconclusive: proceed): ${evidenceWords(ev)}`,
      );
      return;
    }
    if (action === 'pause') {
      await pauseForHuman(ev, analysis.window);
      return;
    }
    ev.status = 'failed';
    canary.unjudgedStep = ev;
    throw ApplicationFailure.create({
      type: ANALYSIS_FAILED,
      message: `canary not judged at ${step.weight}%: ${evidenceWords(ev)} (analysis.onInconclusive: ${action})`,
      nonRetryable: true,
      details: [ev],
    });
  }

  /** The unjudged-step gate: a person approves (go on, unjudged) or rejects (roll back); the analysis keeps watching. */
  async function pauseForHuman(ev: StepEvidence, window: () => Promise<void>) {
    let gateState = state.gates.find((g) => g.gate === UNJUDGED_GATE);
    if (!gateState) {
      gateState = { gate: UNJUDGED_GATE, status: 'pending', refused: [], refusedCount: 0 };
      state.gates.push(gateState);
    }
    enter('awaiting-approval', `step ${ev.step} (${ev.weight}%) NOT judged: ${evidenceWords(ev)}; a person decides`);
    try {
      await rb.gate(UNJUDGED_GATE, { whileWaiting: window, everyMs: plan.analysis.intervalMs });
    } catch (err) {
      ev.status = 'failed';
      ev.unjudged = `not judged; ${gateState.status} at the unjudged-step gate`;
      throw err;
    }
    if (gateState.status === 'approved') {
      ev.status = 'approved';
      ev.unjudged = `approved unjudged by ${gateState.decidedBy}`;
    } else {
      ev.status = 'proceeded';
      ev.unjudged = 'nobody decided at the unjudged-step gate within the timeout (onTimeout: proceed)';
    }
    state.phase = 'traffic';
  }

  /** Like watch(), for a judged step: both releases' counters, each window judged against the stable release too. */
  async function watchJudged(
    ev: StepEvidence,
    step: TrafficStep,
    candidate: ReleaseRef,
    stable: ReleaseRef,
    extendMs: number,
    watcher?: { report: CutoffReport | undefined },
  ) {
    let from = {
      canary: await act.readTrafficCounters(route, candidate.releaseId),
      stable: await act.readTrafficCounters(route, stable.releaseId),
    };
    ev.fromMs = from.canary.atMs;
    const looks = looksFor(step.bakeMs + extendMs, plan.analysis.intervalMs);
    const warmupMs = patched(SHORT_WARMUP)
      ? warmupOf(plan.analysis, ev.against !== undefined)
      : plan.analysis.intervalMs;
    let failures = 0;
    /** The router took the canary out: the window ends failed, with the router's evidence, and the step fails. */
    function cutOff(report: CutoffReport): never {
      const c = report.counters;
      const reset = c.responses < from.canary.responses;
      const base = reset ? { responses: 0, errors5xx: 0, connectionErrors: 0 } : from.canary;
      const requests = c.responses - base.responses;
      const errors5xx = c.errors5xx - base.errors5xx;
      const connectionErrors = c.connectionErrors - base.connectionErrors;
      const w: AnalysisWindow = {
        step: ev.step,
        weight: ev.weight,
        fromMs: from.canary.atMs,
        toMs: report.atMs,
        requests,
        errors5xx,
        errorRate: requests > 0 ? errors5xx / requests : 0,
        p95Ms: null,
        verdict: 'fail',
        because: `cut off: ${report.detail} at ${new Date(report.atMs).toISOString()}`,
        cutoff: {
          errorLimit: report.errorLimit,
          atMs: report.atMs,
          detail: report.detail,
          ...(report.rate ? { rate: report.rate } : {}),
        },
      };
      ev.windows++;
      ev.conclusive++;
      ev.requests += requests;
      ev.errors5xx += errors5xx;
      ev.connectionErrors += connectionErrors;
      ev.status = 'failed';
      ev.toMs = report.atMs;
      record(w);
      fail(w);
    }

    return {
      async window(): Promise<void> {
        if (watcher?.report) cutOff(watcher.report);
        const j = await act.measureAgainstStable({
          route,
          release: candidate,
          stable,
          ...(ev.against ? { against: 'baseline' as const } : {}),
          from,
          step: {
            fromMs: ev.fromMs,
            // the start of a step is the new releases' warm-up: its latency is not judged
            warmupMs,
            prior: {
              canary: { attempts: ev.requests + ev.connectionErrors, errors: ev.errors5xx + ev.connectionErrors },
              stable: { attempts: ev.stableRequests, errors: ev.stableErrors },
            },
          },
          liveness: plan.health.liveness,
          timeoutMs: plan.health.timeoutMs,
          compare: plan.analysis.compare ?? { max5xxRatio: 2, maxP95Ratio: 1.5, minP95DeltaMs: 25, confidence: 0.99 },
          minRequests: plan.analysis.minRequests,
          looks,
        });
        const m = j.canary;
        from = { canary: m.counters, stable: j.stable.counters };
        const absolute = judgeWindow(plan.analysis, m, { countConnectionErrors: true });
        const worse = absolute.verdict === 'pass' && j.comparison.verdict === 'fail';
        const w: AnalysisWindow = {
          step: ev.step,
          weight: ev.weight,
          fromMs: m.fromMs,
          toMs: m.toMs,
          requests: m.requests,
          errors5xx: m.errors5xx,
          p95Ms: m.p95Ms,
          ...absolute,
          ...(worse ? { verdict: 'fail' as const, because: j.comparison.because } : {}),
          stable: {
            requests: j.stable.requests,
            errors5xx: j.stable.errors5xx,
            connectionErrors: j.stable.connectionErrors,
          },
          compare: j.comparison,
        };
        ev.windows++;
        ev.requests += m.requests;
        ev.errors5xx += m.errors5xx;
        ev.connectionErrors += m.connectionErrors;
        ev.stableRequests += j.stable.requests + j.stable.connectionErrors;
        ev.stableErrors += j.stable.errors5xx + j.stable.connectionErrors;
        if (w.verdict !== 'inconclusive') ev.conclusive++;
        record(w);
        if (w.verdict === 'pass') failures = 0;
        if (w.verdict !== 'fail') return;
        failures++;
        if (failures > plan.analysis.failuresTolerated) {
          ev.status = 'failed';
          ev.toMs = m.toMs;
          fail(w);
        }
      },
    };
  }

  function record(w: AnalysisWindow) {
    state.analysis.push(w);
    metrics.analysis(plan.service, plan.environment, w.verdict);
    if (state.analysis.length > MAX_WINDOWS_KEPT) state.analysis.shift();
  }

  function fail(w: AnalysisWindow): never {
    canary.failedWindow = w;
    throw ApplicationFailure.create({
      type: ANALYSIS_FAILED,
      message: `canary analysis failed at ${w.weight}%: ${w.because}`,
      nonRetryable: true,
      details: [w],
    });
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

  /**
   * The split at a step of `weight`%: with a baseline, the baseline gets the canary's weight from the stable's share
   * (as much as is left of it), so that the judge compares two releases under the same load.
   */
  function splitFor(weight: number, stable: ReleaseRef | undefined, candidate: ReleaseRef): Record<string, number> {
    if (!stable) return { [candidate.releaseId]: 100 };
    const { baseline } = canary;
    const beside = baseline ? Math.min(weight, 100 - weight) : 0;
    return {
      [stable.releaseId]: 100 - weight - beside,
      [candidate.releaseId]: weight,
      ...(baseline ? { [baseline.releaseId]: beside } : {}),
    };
  }

  return Object.assign(canary, {
    /**
     * The steps that went on without a judgement ("unjudged at 50%: approved unjudged by alice"), for the outcome's
     * words; empty when every baked step was judged.
     */
    unjudged(): string[] {
      return (state.steps ?? [])
        .filter((s) => s.status === 'approved' || s.status === 'proceeded')
        .map((s) => `unjudged at ${s.weight}% (${s.requests} canary requests, ${s.needed} needed; ${s.unjudged})`);
    },

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
      const withCutoff = stable && plan.analysis.cutoff && platformPlanOf(plan).cutoff !== undefined;
      canary.cutoff = withCutoff && patched(CANARY_CUTOFF) ? plan.analysis.cutoff : undefined;
      if (canary.cutoff) await act.addToRoute(route, candidate, { cutoff: canary.cutoff });
      else await act.addToRoute(route, candidate);
      if (stable) {
        compensations.push({
          what: `traffic back to ${stable.version}`,
          run: async () =>
            showWeights(await safe.setTraffic(route, { [stable.releaseId]: 100, [candidate.releaseId]: 0 })),
        });
      }
      const steps = this.steps(stable);
      const judging = stable !== undefined && patched(JUDGED_STEPS);
      if (judging && stable && wantsBaseline() && patched(CANARY_BASELINE)) {
        canary.baseline = await startBaseline(stable, candidate);
      }
      for (const [index, step] of steps.entries()) {
        state.trafficStep = { index: index + 1, of: steps.length, weight: step.weight };
        enter('traffic', say.trafficStep(index + 1, steps.length, step.weight, candidate.version));
        canary.trafficMoved = true;
        // with the rate rule, the step's watch looks before the traffic moves: a canary failing from its first
        // request is seen from it, not from when the watch would start after the move (about 200 ms on a busy host)
        const early =
          judging && canary.cutoff && step.bakeMs > 0 && patched(RATE_CUTOFF) ? watchCutoff(candidate) : undefined;
        try {
          showWeights(await act.setTraffic(route, splitFor(step.weight, stable, candidate)));
        } catch (err) {
          early?.stop();
          throw err;
        }
        if (judging && stable) await bakeJudged(index + 1, step, candidate, canary.baseline ?? stable, early);
        else await bake(index + 1, step, candidate);
      }
      const { baseline } = canary;
      if (baseline && stable) {
        // the steps are over: the baseline's share (none at 100%) goes back to the stable release, and it stops
        const last = steps.at(-1)?.weight ?? 100;
        const percent = { [stable.releaseId]: 100 - last, [candidate.releaseId]: last };
        try {
          await stopBaseline(
            releaseKey(plan, platformPlanOf(plan), baseline.releaseId),
            last < 100 && Math.min(last, 100 - last) > 0 ? percent : undefined,
          );
          note(`stopped the baseline ${baseline.releaseId}: the canary's steps are over`);
        } catch (err) {
          // the canary passed its steps: a baseline the router or the runner would not let go fails no deploy
          if (isCancellation(err)) throw err;
          note(`FAILED: stop the baseline ${baseline.releaseId}: ${describeFailure(err)}; do it by hand`);
        }
        dropBaselineUndo();
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
