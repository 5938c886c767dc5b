/**
 * The rate cut-off's rule (src/shared/cutoff-rate.ts) on random answer sequences, one reading per answer: how many
 * failed requests a canary failing half its requests gives before the rule trips, and how often a healthy canary
 * trips it by chance in 1,000 requests at a few background error rates. No stack: the rule alone (the real watch
 * reads every 20 ms, so a canary may answer a request or two more before its weight is 0: see bench:deploy).
 *
 * Run: `npx tsx bench/cutoff-rate-sim.ts` (seeded: the same figures every run); writes
 * bench/results/cutoff-rate-sim.{json,md}.
 */
import path from 'node:path';
import { rateWindow } from '../src/shared/cutoff-rate';
import type { RateCutoffSpec } from '../src/shared/service-plan';
import { writeResults } from './common';

/** mulberry32: a small seeded generator, so that the committed figures can be reproduced. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The index of the answer at which the rule trips (undefined: never), for answers failing with probability p. */
function tripAt(rule: RateCutoffSpec, p: number, n: number, next: () => number): { at?: number; failed: number } {
  const w = rateWindow(rule);
  w.add({ attempts: 0, errors: 0 });
  let errors = 0;
  for (let i = 1; i <= n; i++) {
    if (next() < p) errors++;
    if (w.add({ attempts: i, errors })) return { at: i, failed: errors };
  }
  return { failed: errors };
}

const RULES: RateCutoffSpec[] = [
  { max5xxRate: 0.25, overRequests: 20, minErrors: 3 },
  { max5xxRate: 0.4, overRequests: 20, minErrors: 3 },
  { max5xxRate: 0.5, overRequests: 20, minErrors: 3 },
  { max5xxRate: 0.25, overRequests: 20, minErrors: 4 },
  { max5xxRate: 0.5, overRequests: 20, minErrors: 4 },
];
const HALF_RUNS = 10_000;
const HEALTHY_RUNS = 2_000;
const SPAN = 1_000;
const BACKGROUND = [0.001, 0.01, 0.02, 0.05];

async function main() {
  const next = random(17);
  const rows = RULES.map((rule) => {
    const failed = Array.from({ length: HALF_RUNS }, () => tripAt(rule, 0.5, 200, next).failed).sort((a, b) => a - b);
    const q = (f: number) => failed[Math.min(failed.length - 1, Math.floor(failed.length * f))]!;
    const chance = BACKGROUND.map((p) => {
      let trips = 0;
      for (let i = 0; i < HEALTHY_RUNS; i++) if (tripAt(rule, p, SPAN, next).at !== undefined) trips++;
      return { backgroundErrorRate: p, tripsPerSpan: trips / HEALTHY_RUNS };
    });
    return { rule, halfFailing: { median: q(0.5), p90: q(0.9), max: failed.at(-1)! }, chance };
  });
  const results = {
    benchmark: 'cutoff-rate-sim',
    date: new Date().toISOString(),
    command: 'npx tsx bench/cutoff-rate-sim.ts',
    settings: { halfFailingRuns: HALF_RUNS, healthyRuns: HEALTHY_RUNS, span: SPAN, seed: 17 },
    rows,
  };
  const pct = (x: number) => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)}%`;
  const md = [
    '# The rate cut-off rule, simulated',
    '',
    `${results.date} — \`${results.command}\` — the rule of src/shared/cutoff-rate.ts on seeded random sequences, one ` +
      `reading per answer: ${HALF_RUNS} canaries failing half their requests, and ${HEALTHY_RUNS} spans of ${SPAN} ` +
      'requests of a healthy canary at each background error rate. The real watch reads every 20 ms: a canary may ' +
      'answer a request or two more before its weight is 0 (bench:deploy measures that).',
    '',
    `| rule (max5xxRate, overRequests, minErrors) | half-failing: failed before out, median / 90% / max | ${BACKGROUND.map((p) => `chance trips at ${pct(p)}`).join(' | ')} |`,
    `| --- | --- | ${BACKGROUND.map(() => '---:').join(' | ')} |`,
    ...rows.map(
      (r) =>
        `| ${pct(r.rule.max5xxRate)}, ${r.rule.overRequests}, ${r.rule.minErrors} | ${r.halfFailing.median} / ` +
        `${r.halfFailing.p90} / ${r.halfFailing.max} | ${r.chance.map((c) => pct(c.tripsPerSpan)).join(' | ')} |`,
    ),
    '',
  ].join('\n');
  await writeResults(path.join(__dirname, 'results'), 'cutoff-rate-sim', results, md);
  console.log(md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
