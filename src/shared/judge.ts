/**
 * The judge of a canary against the stable release: pure statistics over both releases' figures since the traffic
 * step began (a sequential test, one look per analysis window). It runs in the analysis activity (measureAgainstStable),
 * so the statistic each decision used is recorded in the workflow's history with the figures; the workflow only reads
 * the verdict. Workflow-safe (no I/O) all the same, and unit-tested on its own.
 */
import { DEFAULT_WARMUP_MS, type AnalysisSpec, type CompareSpec } from './service-plan';

/** One release's figures over the compared span. */
export interface CompareSide {
  requests: number;
  /** 5xx responses plus connection errors (attempts the release failed). */
  errors: number;
  p95Ms: number | null;
  /** Latency samples the p95 came from. */
  samples: number;
}

/** The error-rate half of a comparison: Fisher's exact test, one-sided (the canary fails more often). */
export interface ErrorComparison {
  canaryRate: number;
  stableRate: number;
  /** canaryRate / stableRate; null when the stable release had no error. */
  ratio: number | null;
  maxRatio: number;
  /** P(the canary has at least its errors | both releases fail alike), hypergeometric. */
  pValue: number;
  /** The p-value below which this look calls the difference real. */
  alpha: number;
  worse: boolean;
}

/** The latency half: the p95 ratio, and a Mann-Whitney U test of the whole distributions (one-sided). */
export interface LatencyComparison {
  /** canary p95 / stable p95; null when either has no sample (or the stable's p95 is 0). */
  p95Ratio: number | null;
  deltaMs: number | null;
  maxRatio: number;
  minDeltaMs: number;
  /**
   * 'mann-whitney' when both distributions were available (single-host's per-request log), else 'p95-only';
   * 'warm-up' in a step's first interval, whose requests meet a release that just started (JIT, connection pools):
   * latency is judged on what comes after it.
   */
  test: 'mann-whitney' | 'p95-only' | 'warm-up';
  /**
   * True when the Mann-Whitney test was of the tolerated regression (canary vs the stable's latencies made
   * maxRatio times and minDeltaMs slower, see toleratedLatency); absent in figures judged before it (any difference).
   */
  margin?: boolean;
  z: number | null;
  pValue: number | null;
  alpha: number;
  worse: boolean;
}

/** The decision of one look, with its evidence (what `status --json` and the report show). */
export interface Comparison {
  /** The figures are since the step began (both releases over the same time). */
  sinceMs: number;
  canary: CompareSide;
  stable: CompareSide;
  /** `no-baseline`: the stable release took no traffic (100% steps); `too-few`: below analysis.minRequests. */
  verdict: 'pass' | 'fail' | 'no-baseline' | 'too-few';
  because?: string;
  errors?: ErrorComparison;
  latency?: LatencyComparison;
  /**
   * What the `stable` side is: absent, the stable release itself; `baseline`, a fresh process of the stable version
   * at the canary's weight (analysis.compare.baseline), so that both sides carry the same load.
   */
  against?: 'baseline';
}

/**
 * The start of a judged step whose latency is not judged: analysis.compare.warmup when set; else, against a baseline
 * (a new process like the canary, warming up alike) {@link DEFAULT_WARMUP_MS}, against the warm stable release one
 * analysis interval (a cold canary would look slower than it is).
 */
export function warmupOf(analysis: AnalysisSpec, againstBaseline: boolean): number {
  const set = analysis.compare?.warmupMs;
  if (set !== undefined) return set;
  return againstBaseline ? Math.min(DEFAULT_WARMUP_MS, analysis.intervalMs) : analysis.intervalMs;
}

/** Looks a step's test is split across (a Bonferroni bound over its windows keeps the false-alarm rate per step). */
export function looksFor(bakeMs: number, intervalMs: number): number {
  return Math.max(1, Math.ceil(bakeMs / Math.max(1, intervalMs)));
}

/**
 * Compares the canary with the stable release. Fails only when the canary is worse both by the configured ratio and
 * significantly (p < (1 - confidence) / looks); a difference the test cannot tell from chance passes. Latency is
 * tested against the tolerated regression (the canary slower than maxP95Ratio times and minP95DeltaMs more than
 * the stable release), so a small real difference plus a noisy p95 fails nothing.
 * `distributions` are the two releases' latency samples (ms) when the platform has them.
 */
export function compareReleases(
  spec: CompareSpec,
  args: {
    canary: CompareSide;
    stable: CompareSide;
    minRequests: number;
    looks: number;
    sinceMs: number;
    distributions?: { canary: number[]; stable: number[] };
    /** True while the step is in its warm-up (its first interval): the latency half records and does not fail. */
    warmingUp?: boolean;
    /** The stable side is a baseline (a fresh process of the stable version at the canary's weight): so worded. */
    against?: 'baseline';
  },
): Comparison {
  const { canary, stable } = args;
  const side = args.against ?? 'stable';
  const base = { sinceMs: args.sinceMs, canary, stable, ...(args.against ? { against: args.against } : {}) };
  if (stable.requests === 0) {
    return {
      ...base,
      verdict: 'no-baseline',
      because: `the ${side === 'stable' ? 'stable release' : side} took no traffic`,
    };
  }
  const minimum = Math.max(1, args.minRequests);
  if (canary.requests < minimum || stable.requests < minimum) {
    return {
      ...base,
      verdict: 'too-few',
      because: `${canary.requests} canary and ${stable.requests} ${side} requests, fewer than ${minimum} on a side`,
    };
  }
  const alpha = (1 - spec.confidence) / Math.max(1, args.looks);
  const errors = compareErrors(spec, canary, stable, alpha);
  const latency = compareLatency(spec, canary, stable, alpha, args.distributions, args.warmingUp ?? false);
  const problems: string[] = [];
  if (errors.worse) {
    problems.push(
      `error rate ${pct(errors.canaryRate)} vs ${side} ${pct(errors.stableRate)} (${canary.errors}/${canary.requests} vs ` +
        `${stable.errors}/${stable.requests}; ratio ${errors.ratio === null ? 'inf' : errors.ratio.toFixed(1)} > ` +
        `${spec.max5xxRatio}, Fisher p=${sci(errors.pValue)} < ${sci(alpha)})`,
    );
  }
  if (latency.worse) {
    problems.push(
      `p95 ${canary.p95Ms} ms vs ${side} ${stable.p95Ms} ms (ratio ${latency.p95Ratio?.toFixed(2)} > ${spec.maxP95Ratio}` +
        `${latency.pValue !== null ? `, Mann-Whitney p=${sci(latency.pValue)} < ${sci(alpha)}` : ''})`,
    );
  }
  return problems.length > 0
    ? { ...base, verdict: 'fail', because: `worse than ${side}: ${problems.join('; ')}`, errors, latency }
    : { ...base, verdict: 'pass', errors, latency };
}

function compareErrors(spec: CompareSpec, c: CompareSide, s: CompareSide, alpha: number): ErrorComparison {
  const canaryRate = c.errors / c.requests;
  const stableRate = s.errors / s.requests;
  const ratio = s.errors > 0 ? canaryRate / stableRate : null;
  const pValue = fisherGreater(c.errors, c.requests, s.errors, s.requests);
  const byRatio = ratio === null ? c.errors > 0 : ratio > spec.max5xxRatio;
  return { canaryRate, stableRate, ratio, maxRatio: spec.max5xxRatio, pValue, alpha, worse: byRatio && pValue < alpha };
}

function compareLatency(
  spec: CompareSpec,
  c: CompareSide,
  s: CompareSide,
  alpha: number,
  distributions: { canary: number[]; stable: number[] } | undefined,
  warmingUp: boolean,
): LatencyComparison {
  const p95Ratio = c.p95Ms !== null && s.p95Ms !== null && s.p95Ms > 0 ? c.p95Ms / s.p95Ms : null;
  const deltaMs = c.p95Ms !== null && s.p95Ms !== null ? c.p95Ms - s.p95Ms : null;
  const common = { p95Ratio, deltaMs, maxRatio: spec.maxP95Ratio, minDeltaMs: spec.minP95DeltaMs, alpha };
  const byRatio =
    deltaMs !== null && deltaMs >= spec.minP95DeltaMs && (p95Ratio === null || p95Ratio > spec.maxP95Ratio);
  if (warmingUp) return { ...common, test: 'warm-up', z: null, pValue: null, worse: false };
  if (!distributions || distributions.canary.length === 0 || distributions.stable.length === 0) {
    // Without the distributions (CloudWatch's p95 only) there is no test to tell a real regression from noise.
    return { ...common, test: 'p95-only', z: null, pValue: null, worse: false };
  }
  // The test is of the tolerated regression, not of any difference: is the canary slower than the stable release's
  // latencies made maxP95Ratio times (and minP95DeltaMs) slower? A canary a few ms slower than its baseline is
  // "significantly" slower over a few hundred requests, and a noisy p95 of a loaded machine then did the rest
  // (bench/results/judge-baseline.md, run 19: +5 ms, p95 41 vs 15 ms over 78 samples, Mann-Whitney p=1.4e-13).
  const tolerated = distributions.stable.map((v) => toleratedLatency(spec, v));
  const { z, pValue } = mannWhitneyGreater(distributions.canary, tolerated);
  return { ...common, test: 'mann-whitney', margin: true, z, pValue, worse: byRatio && pValue < alpha };
}

/** The slowest a canary may answer where the stable release took `ms`: maxP95Ratio times, and minP95DeltaMs more. */
export function toleratedLatency(spec: CompareSpec, ms: number): number {
  return Math.max(ms * spec.maxP95Ratio, ms + spec.minP95DeltaMs);
}

/**
 * Fisher's exact test, one-sided: the probability of the canary having `e1` or more of the `e1 + e2` errors among
 * `n1 + n2` requests when both releases fail alike (hypergeometric upper tail).
 */
export function fisherGreater(e1: number, n1: number, e2: number, n2: number): number {
  const total = n1 + n2;
  const errors = e1 + e2;
  if (errors === 0 || n1 === 0 || n2 === 0) return 1;
  const hi = Math.min(errors, n1);
  const logDenominator = logChoose(total, errors);
  let p = 0;
  for (let k = e1; k <= hi; k++) {
    p += Math.exp(logChoose(n1, k) + logChoose(n2, errors - k) - logDenominator);
  }
  return Math.min(1, p);
}

/**
 * Mann-Whitney U, one-sided (the canary's values tend to be larger), normal approximation with the tie correction and
 * a continuity correction; fine from about 10 samples a side.
 */
export function mannWhitneyGreater(canary: number[], stable: number[]): { z: number; pValue: number } {
  const n1 = canary.length;
  const n2 = stable.length;
  const all = [...canary.map((v) => ({ v, c: true })), ...stable.map((v) => ({ v, c: false }))];
  all.sort((a, b) => a.v - b.v);
  let rankSum = 0;
  let ties = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k]!.c) rankSum += rank;
    const t = j - i + 1;
    ties += t * t * t - t;
    i = j + 1;
  }
  const n = n1 + n2;
  const u = rankSum - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1)));
  if (variance <= 0) return { z: 0, pValue: 1 };
  const z = (u - mean - 0.5) / Math.sqrt(variance);
  return { z, pValue: 0.5 * erfc(z / Math.SQRT2) };
}

function logChoose(n: number, k: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7): about 15 significant digits. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let a = LANCZOS[0]!;
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The complementary error function (Numerical Recipes' erfcc: relative error below 1.2e-7, in the tails too). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%`;
const sci = (x: number) => (x === 0 ? '0' : x < 0.001 ? x.toExponential(1) : x.toFixed(3));
