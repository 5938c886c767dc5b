import assert from 'node:assert/strict';
import { stepEvidenceNeed } from '../../src/shared/analysis';
import {
  compareReleases,
  fisherGreater,
  logGamma,
  looksFor,
  mannWhitneyGreater,
  warmupOf,
} from '../../src/shared/judge';
import type { AnalysisSpec, CompareSpec } from '../../src/shared/service-plan';

const SPEC: CompareSpec = { max5xxRatio: 2, maxP95Ratio: 1.5, minP95DeltaMs: 10, confidence: 0.99 };
const side = (requests: number, errors: number, p95Ms: number | null = 5) => ({
  requests,
  errors,
  p95Ms,
  samples: requests,
});
/** A deterministic spread of latencies around `center` (no Math.random: the test must not flake). */
const spread = (n: number, center: number) =>
  Array.from({ length: n }, (_, i) => center * (0.5 + ((i * 7919) % n) / n));

describe('the judge against the stable release (shared/judge.ts)', () => {
  it('logGamma matches factorials; Fisher matches the hypergeometric tail computed by hand', () => {
    assert.ok(Math.abs(logGamma(11) - Math.log(3_628_800)) < 1e-9);
    // 3 of 3 errors on the canary, 10 requests each side: C(10,3) / C(20,3) = 120 / 1140
    assert.ok(Math.abs(fisherGreater(3, 10, 0, 10) - 120 / 1140) < 1e-12);
    assert.equal(fisherGreater(0, 10, 0, 10), 1);
    assert.ok(fisherGreater(0, 100, 5, 100) > 0.99, 'a canary with fewer errors is never worse');
  });

  it('Mann-Whitney tells a shifted distribution from the same one', () => {
    assert.ok(mannWhitneyGreater(spread(200, 100), spread(200, 50)).pValue < 1e-6);
    assert.ok(mannWhitneyGreater(spread(200, 50), spread(200, 50)).pValue > 0.3);
    assert.ok(mannWhitneyGreater(spread(200, 50), spread(200, 100)).pValue > 0.99);
  });

  it('fails a canary with 5x the stable error rate, with both sides and the statistic as evidence', () => {
    const c = compareReleases(SPEC, {
      canary: side(800, 40),
      stable: side(800, 8),
      minRequests: 5,
      looks: 10,
      sinceMs: 1,
    });
    assert.equal(c.verdict, 'fail');
    assert.ok(c.errors && c.errors.worse && c.errors.ratio === 5 && c.errors.pValue < c.errors.alpha);
    assert.ok(Math.abs(c.errors.alpha - 0.001) < 1e-12, 'alpha = (1 - 0.99) / 10 looks');
    assert.match(c.because ?? '', /error rate 5.00% vs stable 1.00% \(40\/800 vs 8\/800; ratio 5.0 > 2, Fisher p=/);
  });

  it('against a baseline: the words and the comparison name it as the other side', () => {
    const c = compareReleases(SPEC, {
      canary: side(800, 40),
      stable: side(800, 8),
      minRequests: 5,
      looks: 10,
      sinceMs: 1,
      against: 'baseline',
    });
    assert.equal(c.against, 'baseline');
    assert.match(c.because ?? '', /^worse than baseline: error rate 5.00% vs baseline 1.00% \(40\/800 vs 8\/800;/);
    const none = compareReleases(SPEC, {
      canary: side(8, 0),
      stable: side(0, 0),
      minRequests: 5,
      looks: 1,
      sinceMs: 1,
      against: 'baseline',
    });
    assert.equal(none.because, 'the baseline took no traffic');
  });

  it('passes a difference chance explains, and a ratio under the limit however significant', () => {
    assert.equal(
      compareReleases(SPEC, { canary: side(50, 2), stable: side(50, 1), minRequests: 5, looks: 1, sinceMs: 1 }).verdict,
      'pass',
    );
    assert.equal(
      compareReleases(SPEC, {
        canary: side(9000, 1500),
        stable: side(9000, 1000),
        minRequests: 5,
        looks: 1,
        sinceMs: 1,
      }).verdict,
      'pass',
    );
  });

  it('fails a canary twice as slow (Mann-Whitney and the p95 ratio), passes one a few ms slower', () => {
    const slow = compareReleases(SPEC, {
      canary: side(300, 0, 100),
      stable: side(300, 0, 50),
      minRequests: 5,
      looks: 10,
      sinceMs: 1,
      distributions: { canary: spread(300, 80), stable: spread(300, 40) },
    });
    assert.equal(slow.verdict, 'fail');
    assert.equal(slow.latency?.test, 'mann-whitney');
    assert.match(slow.because ?? '', /p95 100 ms vs stable 50 ms \(ratio 2.00 > 1.5, Mann-Whitney p=/);
    const fast = compareReleases(SPEC, {
      canary: side(300, 0, 4),
      stable: side(300, 0, 2),
      minRequests: 5,
      looks: 10,
      sinceMs: 1,
      distributions: { canary: spread(300, 3), stable: spread(300, 1.5) },
    });
    assert.equal(fast.verdict, 'pass', 'a 2 ms difference is under minP95Delta');
    const cloudWatch = compareReleases(SPEC, {
      canary: side(300, 0, 100),
      stable: side(300, 0, 50),
      minRequests: 5,
      looks: 1,
      sinceMs: 1,
    });
    assert.equal(cloudWatch.latency?.test, 'p95-only');
    assert.equal(cloudWatch.verdict, 'pass', 'without distributions the p95 ratio alone fails nothing');
  });

  it('says when there is no baseline or too few requests; the need of a step comes from the plan', () => {
    assert.equal(
      compareReleases(SPEC, { canary: side(10, 0), stable: side(0, 0), minRequests: 5, looks: 1, sinceMs: 1 }).verdict,
      'no-baseline',
    );
    assert.equal(
      compareReleases(SPEC, { canary: side(3, 0), stable: side(30, 0), minRequests: 5, looks: 1, sinceMs: 1 }).verdict,
      'too-few',
    );
    assert.equal(looksFor(10_000, 1_000), 10);
    const policy: AnalysisSpec = {
      max5xxRate: 0.02,
      maxP95LatencyMs: 500,
      minRequests: 20,
      intervalMs: 10_000,
      failuresTolerated: 0,
    };
    assert.equal(stepEvidenceNeed(policy, { weight: 10, bakeMs: 60_000 }), 20);
    assert.equal(stepEvidenceNeed({ ...policy, expectedRps: 50 }, { weight: 10, bakeMs: 60_000 }), 150);
    assert.equal(stepEvidenceNeed({ ...policy, stepMinRequests: 7 }, { weight: 10, bakeMs: 60_000 }), 7);
  });
});

describe('the judge during a step warm-up', () => {
  it('records the latency of the first interval and fails nothing on it (a new release warming up)', () => {
    const c = compareReleases(SPEC, {
      canary: side(70, 0, 23),
      stable: side(560, 0, 13),
      minRequests: 5,
      looks: 6,
      sinceMs: 1,
      distributions: { canary: spread(70, 20), stable: spread(560, 10) },
      warmingUp: true,
    });
    assert.equal(c.verdict, 'pass');
    assert.equal(c.latency?.test, 'warm-up');
  });
});

describe('the latency test is of the tolerated regression (minimum effect size)', () => {
  // bench/results/judge-baseline.md, healthy run 19: v2 (5 ms more per request) against a baseline of v1, p95 41 vs
  // 15 ms over 78 and 79 samples on a loaded machine; the test of any difference said p=1.4e-13 and it rolled back
  const v1 = spread(79, 10);
  const v2 = [...spread(74, 10).map((v) => v + 5), 38, 41, 44, 47];
  const judged = (canary: number[], stable: number[], p95: [number, number]) =>
    compareReleases(SPEC, {
      canary: side(canary.length, 0, p95[0]),
      stable: side(stable.length, 0, p95[1]),
      minRequests: 5,
      looks: 6,
      sinceMs: 1,
      against: 'baseline',
      distributions: { canary, stable },
    });

  it('passes a healthy release a few ms slower whose p95 is noisy (the false alarm of run 19)', () => {
    assert.ok(mannWhitneyGreater(v2, v1).pValue < 1e-6, 'the releases do differ: the old test called it real');
    const c = judged(v2, v1, [41, 15]);
    assert.equal(c.verdict, 'pass', c.because);
    assert.equal(c.latency?.margin, true);
    assert.ok((c.latency?.pValue ?? 0) > 0.5, String(c.latency?.pValue));
  });

  it('still fails a canary twice as slow (+100%, 20 to 40 ms) within a window of samples', () => {
    const stable = spread(40, 20);
    const canary = spread(40, 40);
    const c = judged(canary, stable, [40, 20]);
    assert.equal(c.verdict, 'fail', JSON.stringify(c.latency));
    assert.match(c.because ?? '', /p95 40 ms vs baseline 20 ms \(ratio 2.00 > 1.5, Mann-Whitney p=/);
  });
});

describe("a step's warm-up (warmupOf)", () => {
  const policy: AnalysisSpec = {
    max5xxRate: 0.02,
    maxP95LatencyMs: 500,
    minRequests: 20,
    intervalMs: 10_000,
    failuresTolerated: 0,
    compare: SPEC,
  };
  it('is 250 ms against a baseline (both new processes), an interval against the warm stable release, or as set', () => {
    assert.equal(warmupOf(policy, true), 250);
    assert.equal(warmupOf(policy, false), 10_000);
    assert.equal(warmupOf({ ...policy, compare: { ...SPEC, warmupMs: 2_000 } }, true), 2_000);
    assert.equal(warmupOf({ ...policy, compare: { ...SPEC, warmupMs: 0 } }, false), 0);
  });
});
