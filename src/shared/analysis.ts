import type { AnalysisWindow } from './deploy';
import type { AnalysisSpec, InconclusiveAction, TrafficStep } from './service-plan';

/**
 * The canary requests a baked step needs before it counts as judged: analysis.stepMinRequests when set; else half of
 * what the expected rate would bring the canary at the step's weight over its bake (analysis.expectedRps), and never
 * fewer than one window's minRequests.
 */
export function stepEvidenceNeed(policy: AnalysisSpec, step: TrafficStep): number {
  if (policy.stepMinRequests !== undefined) return policy.stepMinRequests;
  const expected = policy.expectedRps ? (policy.expectedRps * step.weight * step.bakeMs) / 100 / 1000 / 2 : 0;
  return Math.max(policy.minRequests, Math.floor(expected));
}

/** The plan's action for an unjudged step (plans from before judged steps: proceed, as they did). */
export const inconclusiveActionOf = (policy: AnalysisSpec): InconclusiveAction => policy.onInconclusive ?? 'proceed';

export interface WindowFigures {
  requests: number;
  errors5xx: number;
  p95Ms: number | null;
  /**
   * Failed attempts to reach the release (connection refused or reset, empty answers) that HAProxy retried on
   * another server: clients saw no error, but the release failed them.
   */
  connectionErrors?: number;
  /** False when the new release's liveness endpoint did not answer as expected during the window. */
  live: boolean;
  liveDetail?: string;
}

/**
 * The canary analysis verdict for one window. A dead release fails at once (no traffic would otherwise
 * look "inconclusive" forever); too few responses is inconclusive; then the 5xx rate and the p95 latency
 * are held against their limits.
 */
export function judgeWindow(
  policy: AnalysisSpec,
  f: WindowFigures,
  opts: { countConnectionErrors?: boolean } = {},
): Pick<AnalysisWindow, 'verdict' | 'because' | 'errorRate'> {
  const dropped = opts.countConnectionErrors ? (f.connectionErrors ?? 0) : 0;
  const attempts = f.requests + dropped;
  const failures = f.errors5xx + dropped;
  const errorRate = attempts > 0 ? failures / attempts : 0;
  if (!f.live) return { verdict: 'fail', errorRate, because: `liveness probe failed: ${f.liveDetail ?? 'no answer'}` };
  if (attempts < policy.minRequests) {
    return { verdict: 'inconclusive', errorRate, because: `${f.requests} responses, fewer than ${policy.minRequests}` };
  }
  const problems: string[] = [];
  if (errorRate > policy.max5xxRate) {
    const what =
      dropped > 0
        ? `${f.errors5xx} 5xx + ${dropped} dropped connections of ${attempts}`
        : `${f.errors5xx} of ${f.requests}`;
    problems.push(`5xx rate ${pct(errorRate)} > ${pct(policy.max5xxRate)} (${what})`);
  }
  if (f.p95Ms !== null && f.p95Ms > policy.maxP95LatencyMs) {
    problems.push(`p95 ${Math.round(f.p95Ms)} ms > ${policy.maxP95LatencyMs} ms`);
  }
  return problems.length > 0
    ? { verdict: 'fail', errorRate, because: problems.join('; ') }
    : { verdict: 'pass', errorRate };
}

const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%`;
