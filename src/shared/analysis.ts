import type { AnalysisWindow } from './deploy';
import type { AnalysisSpec } from './service-plan';

export interface WindowFigures {
  requests: number;
  errors5xx: number;
  p95Ms: number | null;
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
): Pick<AnalysisWindow, 'verdict' | 'because' | 'errorRate'> {
  const errorRate = f.requests > 0 ? f.errors5xx / f.requests : 0;
  if (!f.live) return { verdict: 'fail', errorRate, because: `liveness probe failed: ${f.liveDetail ?? 'no answer'}` };
  if (f.requests < policy.minRequests) {
    return { verdict: 'inconclusive', errorRate, because: `${f.requests} responses, fewer than ${policy.minRequests}` };
  }
  const problems: string[] = [];
  if (errorRate > policy.max5xxRate) {
    problems.push(`5xx rate ${pct(errorRate)} > ${pct(policy.max5xxRate)} (${f.errors5xx} of ${f.requests})`);
  }
  if (f.p95Ms !== null && f.p95Ms > policy.maxP95LatencyMs) {
    problems.push(`p95 ${Math.round(f.p95Ms)} ms > ${policy.maxP95LatencyMs} ms`);
  }
  return problems.length > 0
    ? { verdict: 'fail', errorRate, because: problems.join('; ') }
    : { verdict: 'pass', errorRate };
}

const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%`;
