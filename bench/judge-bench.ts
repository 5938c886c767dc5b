/**
 * The judge benchmark: the canary analysis against the stable release (judged steps) on the real embedded stack,
 * under the deploy benchmark's load (500 req/s fixed rate through HAProxy's stable frontend, a 10% canary step):
 *
 *   1. false alarms: N healthy canaries in a row (v1 <-> v2 of examples/shop, both healthy), each judged against the
 *      stable release; goal 0 rolled back;
 *   2. a latency-regressed canary (+100% p95, under analysis.maxP95LatencyMs): caught, goal within 2 intervals;
 *   3. a canary with 5x the stable's error rate, under analysis.max5xxRate: caught, and in how many intervals.
 *
 * Run: `npm run bench:judge` (= `npx tsx bench/judge-bench.ts`); `--runs 20`; `--name judge-baseline` writes
 * bench/results/<name>.{json,md} (default judge); `--skip-errors` leaves case 3 out. The canary is compared with a
 * baseline where the platform runs one (analysis.compare.baseline auto; `--baseline off` compares with the stable
 * release, as before the baseline).
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { rateCutoffOf } from '../src/shared/cutoff-rate';
import type { DeployResult } from '../src/shared/deploy';
import { warmupOf } from '../src/shared/judge';
import { BASELINE_MODES, type SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { startTestStack, startWorker, uniqueName } from '../test/harness';
import { shopPlan, startDeploy } from '../test/workflows/deploy-fixture';
import { releasesWith } from '../test/workflows/judged-fixture';
import {
  benchCleanup,
  benchCommand,
  gitState,
  intArgs,
  loadSummary,
  machineInfo,
  measureUnderLoad,
  met,
  resultWithin,
  toolVersions,
  writeResults,
  runBench,
} from './common';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '50' },
    slices: { type: 'string', default: '10' },
    runs: { type: 'string', default: '20' },
    'bake-ms': { type: 'string', default: '6000' },
    'regressed-bake-ms': { type: 'string', default: '15000' },
    'interval-ms': { type: 'string', default: '1000' },
    'lead-ms': { type: 'string', default: '1000' },
    'tail-ms': { type: 'string', default: '500' },
    out: { type: 'string', default: path.join(__dirname, 'results') },
    name: { type: 'string', default: 'judge' },
    baseline: { type: 'string', default: 'auto' },
    'skip-errors': { type: 'boolean', default: false },
  },
});
const int = intArgs(args, () => 'a positive integer');
const settings = {
  rate: int('rate'),
  connections: int('connections'),
  slices: int('slices'),
  runs: int('runs'),
  bakeMs: int('bake-ms'),
  regressedBakeMs: int('regressed-bake-ms'),
  intervalMs: int('interval-ms'),
  leadMs: int('lead-ms'),
  tailMs: int('tail-ms'),
  weight: 10,
  requestTimeoutSeconds: 5,
};
const DEPLOY_SLACK_MS = 120_000;
const baselineMode = BASELINE_MODES.find((m) => m === args.baseline);
if (!baselineMode) throw new Error(`--baseline must be one of ${BASELINE_MODES.join(', ')}, got ${args.baseline}`);
const command = benchCommand('bench:judge', 'bench/judge-bench.ts');
let worker: { stop(): Promise<void> } | undefined;

function benchPlan(base: ResolvedService, bakeMs: number, releasesDir?: string): ResolvedService {
  return {
    ...base,
    ...(releasesDir ? { release: { ...base.release, cwd: path.join(releasesDir, '{version}') } } : {}),
    traffic: {
      steps: [
        { weight: settings.weight, bakeMs },
        { weight: 100, bakeMs: 0 },
      ],
    },
    analysis: {
      ...base.analysis,
      max5xxRate: 0.1,
      maxP95LatencyMs: 500,
      minRequests: 5,
      intervalMs: settings.intervalMs,
      failuresTolerated: 0,
      onInconclusive: 'fail',
      compare: {
        ...(base.analysis.compare ?? { max5xxRatio: 2, maxP95Ratio: 1.5, minP95DeltaMs: 10, confidence: 0.99 }),
        // auto is the default, which a resolved plan leaves out
        ...(baselineMode !== 'auto' ? { baseline: baselineMode } : {}),
      },
    },
  };
}

async function firstDeploy(taskQueue: string, plan: ResolvedService): Promise<void> {
  const handle = await startDeploy(taskQueue, { ...plan, traffic: { steps: [{ weight: 100, bakeMs: 0 }] } }, 'v1');
  const result = await resultWithin(handle, DEPLOY_SLACK_MS, 'the first deploy (v1)');
  if (result.outcome !== 'succeeded') throw new Error(`the first deploy ended ${result.outcome}: ${result.reason}`);
}

async function underLoad(taskQueue: string, plan: ResolvedService, version: string) {
  const m = await measureUnderLoad({
    plan,
    settings,
    budgetMs: plan.traffic.steps.reduce((n, s) => n + s.bakeMs, 0) + DEPLOY_SLACK_MS,
    keepFailures: 2_000,
    start: () => startDeploy(taskQueue, plan, version),
    what: `the deploy of ${version}`,
  });
  return { workflowId: m.handle.workflowId, result: m.result, load: loadSummary(m.figures) };
}

/** The analysis windows of the canary step up to the verdict, and the judge's evidence at the last one. */
function verdictOf(r: DeployResult) {
  const windows = r.state.analysis.filter((w) => w.step === 1);
  const failedAt = windows.findIndex((w) => w.verdict === 'fail');
  const last = windows.at(failedAt >= 0 ? failedAt : -1);
  const c = last?.compare;
  return {
    outcome: r.outcome,
    reason: r.reason ?? null,
    windows: windows.length,
    caughtInIntervals: failedAt >= 0 ? failedAt + 1 : null,
    step: r.state.steps?.[0] ?? null,
    against: r.state.baseline ? `baseline ${r.state.baseline.releaseId}` : 'stable',
    judge: c
      ? {
          verdict: c.verdict,
          canary: c.canary,
          stable: c.stable,
          fisherP: c.errors?.pValue ?? null,
          alpha: c.errors?.alpha ?? null,
          p95Ratio: c.latency?.p95Ratio ?? null,
          mannWhitneyP: c.latency?.pValue ?? null,
        }
      : null,
    minFisherP: Math.min(...windows.map((w) => w.compare?.errors?.pValue ?? 1)),
    minMannWhitneyP: Math.min(...windows.map((w) => w.compare?.latency?.pValue ?? 1)),
  };
}

const cleanup = benchCleanup([['stopping the worker', () => worker]]);

async function main() {
  const loadAvgBefore = os.loadavg();
  const startedAt = new Date();
  console.log(
    `judge benchmark: ${settings.rate} req/s, ${settings.weight}% canary, analysis every ${settings.intervalMs} ms; ` +
      `${settings.runs} healthy canaries, a +100% p95 canary, a 5x-errors canary`,
  );
  await startTestStack();
  const taskQueue = uniqueName('bench-judge');
  worker = await startWorker(taskQueue);

  const healthyPlan = benchPlan(await shopPlan(), settings.bakeMs);
  await firstDeploy(taskQueue, healthyPlan);
  const healthy = [];
  for (let i = 0; i < settings.runs; i++) {
    const version = i % 2 === 0 ? 'v2' : 'v1';
    const run = await underLoad(taskQueue, healthyPlan, version);
    const v = verdictOf(run.result);
    console.log(
      `  healthy ${i + 1}/${settings.runs} (${version}): ${v.outcome}; ${v.step?.requests} canary requests, ` +
        `min Fisher p ${v.minFisherP.toPrecision(2)}, min Mann-Whitney p ${v.minMannWhitneyP.toPrecision(2)}`,
    );
    healthy.push({ version, workflowId: run.workflowId, failedRequests: run.load.failed, ...v });
  }

  const slowReleases = releasesWith({ v1: { latencyMs: 20 }, v2: { latencyMs: 40 } });
  const slowPlan = benchPlan(await shopPlan(), settings.regressedBakeMs, slowReleases);
  await firstDeploy(taskQueue, slowPlan);
  const slow = await underLoad(taskQueue, slowPlan, 'v2');
  const slowVerdict = verdictOf(slow.result);
  console.log(`  +100% p95: ${slowVerdict.outcome} after ${slowVerdict.caughtInIntervals} interval(s)`);

  const errorReleases = releasesWith({
    v1: { errorRate: 0.01, faultAfter: 5 },
    v2: { errorRate: 0.05, faultAfter: 5 },
  });
  let errors: Awaited<ReturnType<typeof underLoad>> | undefined;
  let errorVerdict: ReturnType<typeof verdictOf> | undefined;
  if (!args['skip-errors']) {
    const base = benchPlan(await shopPlan(), settings.regressedBakeMs, errorReleases);
    // the judge is measured here, not the cut-off's rate rule, which a 5% canary trips by chance (cutoff-rate-sim.md)
    const cutoff = base.analysis.cutoff ? { cutoff: { ...base.analysis.cutoff, rate: false as const } } : {};
    const errorPlan = { ...base, analysis: { ...base.analysis, ...cutoff } };
    await firstDeploy(taskQueue, errorPlan);
    errors = await underLoad(taskQueue, errorPlan, 'v2');
    errorVerdict = verdictOf(errors.result);
    console.log(`  5x errors: ${errorVerdict.outcome} after ${errorVerdict.caughtInIntervals} interval(s)`);
  }

  const falseAlarms = healthy.filter((h) => h.outcome !== 'succeeded').length;
  const results = {
    benchmark: 'judge',
    date: startedAt.toISOString(),
    command,
    node: process.version,
    machine: machineInfo(loadAvgBefore),
    tools: await toolVersions(),
    git: gitState(),
    settings: { ...settings, analysis: healthyPlan.analysis },
    healthy,
    latencyRegressed: { behaviour: { stable: '20 ms', canary: '40 ms' }, load: slow.load, ...slowVerdict },
    errorsRegressed:
      errors && errorVerdict
        ? {
            behaviour: { stable: '1% 5xx', canary: '5% 5xx' },
            cutoffRate: 'off: the judge is measured',
            load: errors.load,
            ...errorVerdict,
          }
        : 'not run (--skip-errors)',
    goals: {
      noFalseAlarms: {
        goal: `0 of ${settings.runs} healthy canaries rolled back`,
        falseAlarms,
        met: falseAlarms === 0,
      },
      latencyCaught: {
        goal: 'a +100% p95 canary under the absolute limit rolled back within 2 intervals',
        intervals: slowVerdict.caughtInIntervals,
        met: slowVerdict.outcome === 'rolled-back' && (slowVerdict.caughtInIntervals ?? 99) <= 2,
      },
      errorsCaught: {
        goal: 'a 5x-errors canary under the absolute limit rolled back (no goal on the time: reported)',
        intervals: errorVerdict?.caughtInIntervals ?? null,
        met: errorVerdict ? errorVerdict.outcome === 'rolled-back' : null,
      },
    },
  };
  const md = [
    '# Judge benchmark',
    '',
    `${results.date} — \`${command}\` — Node ${results.node} — ${results.machine.cpus} × ${results.machine.cpuModel}` +
      ` — ${results.tools.haproxy ?? 'HAProxy ?'}.`,
    '',
    `Load: autocannon, ${settings.rate} req/s over ${settings.connections} connections, GET /api/items through HAProxy. ` +
      `A ${settings.weight}% canary step, analysis every ${settings.intervalMs} ms, judge ` +
      `${JSON.stringify(healthyPlan.analysis.compare)}; the canary compared with ${slowVerdict.against.startsWith('baseline') ? 'a baseline (a fresh process of the stable version at the canary weight)' : 'the stable release'} (absolute floor: 5xx ${healthyPlan.analysis.max5xxRate * 100}%, p95 ${healthyPlan.analysis.maxP95LatencyMs} ms).`,
    '',
    `Latency is judged after a warm-up of ${warmupOf(healthyPlan.analysis, slowVerdict.against.startsWith('baseline'))} ms ` +
      "of each step (analysis.compare.warmup), against the tolerated regression (the other side's latencies made " +
      `${healthyPlan.analysis.compare?.maxP95Ratio}x and ${healthyPlan.analysis.compare?.minP95DeltaMs} ms slower). The cut-off is on as by ` +
      `default (${JSON.stringify(healthyPlan.analysis.cutoff)}; the rate rule ${JSON.stringify(rateCutoffOf(healthyPlan.analysis.cutoff) ?? 'off')}).`,
    '',
    `Machine load (1-minute load average of the 2 cores): ${results.machine.loadAvgBefore[0]} before, ` +
      `${results.machine.loadAvgAfter[0]} after. The machine is shared: other engineers' test runs used the same cores ` +
      'during the run, so latencies are noisier than on a machine of its own.',
    '',
    '| goal | figure | |',
    '| --- | --- | --- |',
    `| ${results.goals.noFalseAlarms.goal} (${settings.bakeMs / 1000} s bake each) | ${falseAlarms} false alarm(s); smallest p-values over all windows: Fisher ${Math.min(...healthy.map((h) => h.minFisherP)).toPrecision(2)}, Mann-Whitney ${Math.min(...healthy.map((h) => h.minMannWhitneyP)).toPrecision(2)} | ${met(results.goals.noFalseAlarms.met)} |`,
    `| ${results.goals.latencyCaught.goal} (stable 20 ms, canary 40 ms) | ${slowVerdict.outcome} after ${slowVerdict.caughtInIntervals ?? 'n/a'} interval(s): ${slowVerdict.reason} | ${met(results.goals.latencyCaught.met)} |`,
    errors && errorVerdict
      ? `| ${results.goals.errorsCaught.goal} (stable 1%, canary 5% 5xx; the cut-off's rate rule off for it) | ${errorVerdict.outcome} after ${errorVerdict.caughtInIntervals ?? 'n/a'} interval(s), ${errors.load.failed} failed requests in all: ${errorVerdict.reason} | ${met(results.goals.errorsCaught.met === true)} |`
      : `| ${results.goals.errorsCaught.goal} | not run (--skip-errors) | |`,
    '',
    '## Healthy canaries',
    '',
    '| # | version | outcome | canary requests (needed) | compared with: requests | windows | min Fisher p | min Mann-Whitney p | failed requests |',
    '| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...healthy.map(
      (h, i) =>
        `| ${i + 1} | ${h.version} | ${h.outcome} | ${h.step?.requests ?? 'n/a'} (${h.step?.needed ?? 'n/a'}) | ${h.against}: ${h.step?.stableRequests ?? 'n/a'} | ${h.windows} | ${h.minFisherP.toPrecision(2)} | ${h.minMannWhitneyP.toPrecision(2)} | ${h.failedRequests} |`,
    ),
    '',
  ].join('\n');
  await writeResults(path.resolve(args.out!), args.name!, results, md);
  console.log(`\n${md}`);
}

runBench(main, cleanup, 'the load, the worker, the releases and the stack');
