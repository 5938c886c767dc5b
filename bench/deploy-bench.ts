/**
 * The deploy benchmark: on the real embedded stack (Temporal dev server, PostgreSQL, HAProxy, an in-process worker,
 * real release processes of examples/shop), under a fixed-rate autocannon load through HAProxy's stable frontend:
 *
 *   1. a good deploy (v1, then v2 through canary steps): failed requests (goal: 0 of at least 20 000);
 *   2. an automatic rollback (v1 stable, then the faulty v3): failed requests, and the time from the traffic shift
 *      that put v3 in service to 100% back on v1 (goal: within two analysis intervals + 250 ms);
 *   3. the orchestration overhead per activity/timer step of the good deploy, from its workflow history;
 *   4. the cut-off (analysis.cutoff: HAProxy's on-error mark-down of the canary after consecutive errors, and the
 *      watch's rate rule): a faulty canary (v3, 50% of its answers 500; and a hard fault, every answer 500) with it
 *      (as by default), with HAProxy's rule only (v3; analysis.cutoff.rate off) and without it: failed requests from
 *      the canary before it was out (goal with the cut-off: at most 5), and the time from its first 5xx to its being
 *      out (goal: under 100 ms with the cut-off, at most one analysis interval without).
 *
 * Run: `npm run bench:deploy` (= `npx tsx bench/deploy-bench.ts`); options below. Writes bench/results/deploy.json
 * and bench/results/deploy.md (`--name x`: x.json and x.md). See bench/README.md.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { rateCutoffOf } from '../src/shared/cutoff-rate';
import type { DeployResult } from '../src/shared/deploy';
import type { SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { startTestStack, startWorker, uniqueName } from '../test/harness';
import { shopPlan, startDeploy } from '../test/workflows/deploy-fixture';
import { releasesWith } from '../test/workflows/judged-fixture';
import {
  benchCleanup,
  benchCommand,
  countBy,
  failureReport,
  failureRows,
  gitState,
  intArgs,
  loadSummary,
  machineInfo,
  measureUnderLoad,
  met,
  median,
  ms,
  pct,
  proxy,
  resultWithin,
  round,
  roundDeep,
  toolVersions,
  writeResults,
  runBench,
} from './common';
import { orchestrationOverhead, rollbackTiming, stepsBetween, trafficChanges, type HistoryTimeline } from './history';
import { endedBetween } from './load';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '50' },
    slices: { type: 'string', default: '10' },
    'bake-ms': { type: 'string', default: '15000' },
    /** Runs of each faulty canary with and without the cut-off (the v3 rollback above is the first of v3 with it). */
    'cutoff-runs': { type: 'string', default: '3' },
    'interval-ms': { type: 'string', default: '1000' },
    'lead-ms': { type: 'string', default: '2000' },
    'tail-ms': { type: 'string', default: '2000' },
    out: { type: 'string', default: path.join(__dirname, 'results') },
    /** bench/results/<name>.{json,md} */
    name: { type: 'string', default: 'deploy' },
  },
});
const int = intArgs(args, () => 'a positive integer');
const settings = {
  rate: int('rate'),
  connections: int('connections'),
  slices: int('slices'),
  bakeMs: int('bake-ms'),
  cutoffRuns: int('cutoff-runs'),
  intervalMs: int('interval-ms'),
  leadMs: int('lead-ms'),
  tailMs: int('tail-ms'),
  weights: [10, 50, 100],
  requestTimeoutSeconds: 5,
};
const MIN_REQUESTS = 20_000;
const CUTOFF_MAX_FAILED = 5;
const CUTOFF_MAX_OUT_MS = 100;
const ROLLBACK_SLACK_MS = 250;
/** Longest a deploy under load may take beyond its bakes before the bench gives up on it. */
const DEPLOY_SLACK_MS = 120_000;

const command = benchCommand('bench:deploy', 'bench/deploy-bench.ts');

let worker: { stop(): Promise<void> } | undefined;

function benchPlan(base: ResolvedService): ResolvedService {
  return {
    ...base,
    traffic: { steps: settings.weights.map((weight) => ({ weight, bakeMs: settings.bakeMs })) },
    analysis: {
      ...base.analysis,
      max5xxRate: 0.02,
      maxP95LatencyMs: 500,
      minRequests: 5,
      intervalMs: settings.intervalMs,
      failuresTolerated: 0,
    },
  };
}

/** The first deploy of a service: no load, no bake (the route and v1 come up). */
async function firstDeploy(taskQueue: string, plan: ResolvedService): Promise<DeployResult> {
  const handle = await startDeploy(taskQueue, { ...plan, traffic: { steps: [{ weight: 100, bakeMs: 0 }] } }, 'v1');
  const result = await resultWithin(handle, DEPLOY_SLACK_MS, 'the first deploy (v1)');
  if (result.outcome !== 'succeeded')
    throw new Error(`the first deploy of v1 ended ${result.outcome}: ${result.reason}`);
  return result;
}

/** Deploys `version` on top of v1 while autocannon hits the stable frontend; returns the figures and the history. */
async function deployUnderLoad(taskQueue: string, plan: ResolvedService, version: string) {
  const { handle, result, figures, timeline, machineCpuBusy, haproxy } = await measureUnderLoad({
    plan,
    settings,
    budgetMs: settings.weights.length * settings.bakeMs + DEPLOY_SLACK_MS,
    keepFailures: 2_000,
    start: () => startDeploy(taskQueue, plan, version),
    what: `the deploy of ${version}`,
  });
  return { workflowId: handle.workflowId, result, figures, timeline, machineCpuBusy, haproxy };
}

function trafficTimeline(t: HistoryTimeline) {
  return trafficChanges(t).map((c) => ({ completedAtMs: Math.round(c.endedMs - t.startMs), percent: c.percent }));
}

const cleanup = benchCleanup([['stopping the worker', () => worker]]);

async function main() {
  const loadAvgBefore = os.loadavg();
  const startedAt = new Date();
  console.log(
    `deploy benchmark: ${settings.rate} req/s over ${settings.connections} connections in ${settings.slices} ` +
      `staggered autocannon instances; canary ` +
      `${settings.weights.join('/')}% with ${settings.bakeMs / 1000} s bakes; analysis every ${settings.intervalMs} ms`,
  );
  await startTestStack();
  const taskQueue = uniqueName('bench-deploy');
  worker = await startWorker(taskQueue);

  console.log('1/3 good deploy: v1 (first deploy), then v2 under load');
  const goodPlan = benchPlan(await shopPlan());
  await firstDeploy(taskQueue, goodPlan);
  const good = await deployUnderLoad(taskQueue, goodPlan, 'v2');
  if (good.result.outcome !== 'succeeded') {
    console.error(`  the good deploy ended ${good.result.outcome}: ${good.result.reason}`);
  }

  console.log('2/3 automatic rollback: v1, then the faulty v3 under load (the cut-off on, as by default)');
  const badPlan = benchPlan(await shopPlan());
  const v1 = await firstDeploy(taskQueue, badPlan);
  const bad = await deployUnderLoad(taskQueue, badPlan, 'v3');

  console.log('3/3 the cut-off: faulty canaries with and without it');
  // v9: a hard fault, every /api answer 500 after its first 5 (its health gate and smoke pass)
  const hardFault = releasesWith({ v1: {}, v9: { errorRate: 1, faultAfter: 5 } });
  const cutoffRuns: CutoffRun[] = [{ fault: 'v3 (50% 5xx)', version: 'v3', cutoff: 'on', run: bad, v1 }];
  const kinds = [
    ['v3 (50% 5xx)', 'v3', 'on'],
    ['v3 (50% 5xx)', 'v3', 'HAProxy only'],
    ['v3 (50% 5xx)', 'v3', 'off'],
    ['v9 (every answer 5xx)', 'v9', 'on'],
    ['v9 (every answer 5xx)', 'v9', 'off'],
  ] as const;
  for (let i = 1; i <= settings.cutoffRuns; i++) {
    for (const [fault, version, cutoff] of kinds) {
      if (i === 1 && version === 'v3' && cutoff === 'on') continue; // the rollback run above
      console.log(`  run ${i}: ${fault}, cut-off ${cutoff}`);
      const base = benchPlan(await shopPlan());
      const withReleases =
        version === 'v9' ? { ...base, release: { ...base.release, cwd: path.join(hardFault, '{version}') } } : base;
      const { cutoff: on, ...analysis } = withReleases.analysis;
      if (!on) throw new Error('the plan has no analysis.cutoff: it is on by default');
      const plan =
        cutoff === 'on'
          ? withReleases
          : cutoff === 'off'
            ? { ...withReleases, analysis }
            : { ...withReleases, analysis: { ...analysis, cutoff: { ...on, rate: false as const } } };
      const first = await firstDeploy(taskQueue, plan);
      cutoffRuns.push({ fault, version, cutoff, run: await deployUnderLoad(taskQueue, plan, version), v1: first });
    }
  }

  const results = summarize({
    startedAt,
    loadAvgBefore,
    tools: await toolVersions(),
    goodPlan,
    good,
    bad,
    v1,
    cutoffRuns,
  });

  const out = path.resolve(args.out!);
  const md = renderMarkdown(results);
  await writeResults(out, args.name!, results, md);
  console.log(`\n${md}`);
  console.log(`wrote ${path.relative(process.cwd(), path.join(out, `${args.name}.json`))} and ${args.name}.md`);
}

interface Measured {
  startedAt: Date;
  loadAvgBefore: number[];
  tools: Awaited<ReturnType<typeof toolVersions>>;
  goodPlan: ResolvedService;
  good: Awaited<ReturnType<typeof deployUnderLoad>>;
  bad: Awaited<ReturnType<typeof deployUnderLoad>>;
  /** The first deploy of the rollback scenario's service (its v1 is the stable release). */
  v1: DeployResult;
  cutoffRuns: CutoffRun[];
}

/** One faulty canary, with the cut-off (both rules, as by default), HAProxy's rule only, or without. */
interface CutoffRun {
  fault: string;
  version: string;
  cutoff: 'on' | 'HAProxy only' | 'off';
  run: Awaited<ReturnType<typeof deployUnderLoad>>;
  v1: DeployResult;
}

/**
 * A faulty canary's blast radius: its 5xx as the client saw them, and the time from the first to its being out of
 * service: with the cut-off, the last 5xx it answered (HAProxy sends it nothing after marking it down; a request in
 * flight then still ends after); without, the setTraffic that gave it weight 0 (the stable release back at 100%).
 */
function cutoffFigures(c: CutoffRun) {
  const { run } = c;
  const t0 = run.timeline.startMs;
  const fromCanary = run.figures.failures.filter((f) => f.version === c.version);
  const others = run.figures.failures.length - fromCanary.length;
  const first = fromCanary[0]?.atMs;
  const last = fromCanary.at(-1)?.atMs;
  const timing = rollbackTiming(
    run.timeline,
    run.result.state.candidate?.releaseId ?? '',
    c.v1.state.candidate?.releaseId ?? '',
  );
  const byCutoff = run.result.failedWindow?.cutoff;
  const outMs = byCutoff ? last : timing?.stableBackMs;
  const firstToOut = first !== undefined && outMs !== undefined ? round(outMs - first, 1) : null;
  const withCutoff = c.cutoff !== 'off';
  const goalOutMs = withCutoff ? CUTOFF_MAX_OUT_MS : settings.intervalMs;
  return {
    fault: c.fault,
    cutoff: c.cutoff,
    workflowId: run.workflowId,
    outcome: run.result.outcome,
    reason: run.result.reason ?? null,
    decidedBy: byCutoff?.rate
      ? 'cut-off (rate rule)'
      : byCutoff
        ? 'cut-off (HAProxy)'
        : run.result.failedWindow
          ? 'analysis window'
          : 'none',
    failedFromCanary: fromCanary.length,
    failedOther: others,
    firstCanary5xxAtMs: first !== undefined ? round(first - t0, 1) : null,
    lastCanary5xxAtMs: last !== undefined ? round(last - t0, 1) : null,
    cutoffNoticedAtMs: byCutoff ? round(byCutoff.atMs - t0, 1) : null,
    stableBackAtMs: timing ? round(timing.stableBackMs - t0, 1) : null,
    firstToOutMs: firstToOut,
    firstToStableBackMs: first !== undefined && timing ? round(timing.stableBackMs - first, 1) : null,
    goals: {
      failed: withCutoff
        ? {
            goal: `at most ${CUTOFF_MAX_FAILED} failed requests from the canary`,
            met: fromCanary.length <= CUTOFF_MAX_FAILED,
          }
        : null,
      out: {
        goal: withCutoff
          ? `first 5xx to the canary out under ${CUTOFF_MAX_OUT_MS} ms`
          : `first 5xx to the canary at weight 0 within one analysis interval (${settings.intervalMs} ms)`,
        met: firstToOut !== null && (withCutoff ? firstToOut < goalOutMs : firstToOut <= goalOutMs),
      },
    },
    load: loadSummary(run.figures),
    failures: failureReport(run.figures.failures, run.timeline),
  };
}

/** The figures, goals and context that go into deploy.json. */
function summarize({ startedAt, loadAvgBefore, tools, goodPlan, good, bad, v1, cutoffRuns }: Measured) {
  const overhead = orchestrationOverhead(good.timeline);
  const during = endedBetween(good.figures, good.timeline.startMs, good.timeline.endMs);
  const candidateId = bad.result.state.candidate?.releaseId ?? '';
  const stableId = v1.state.candidate?.releaseId ?? '';
  const timing = rollbackTiming(bad.timeline, candidateId, stableId);
  const budgetMs = 2 * settings.intervalMs + ROLLBACK_SLACK_MS;
  const v3Failures = bad.figures.failures.filter((f) => f.version === 'v3');
  const otherFailures = bad.figures.failures.filter((f) => f.version !== 'v3');
  const goodFailures = failureReport(good.figures.failures, good.timeline);
  return {
    benchmark: 'deploy',
    date: startedAt.toISOString(),
    command,
    node: process.version,
    machine: machineInfo(loadAvgBefore),
    tools,
    git: gitState(),
    settings: {
      ...settings,
      analysis: goodPlan.analysis,
      drainMs: goodPlan.release.drainMs,
      trafficSteps: goodPlan.traffic.steps,
    },
    goodDeploy: {
      workflowId: good.workflowId,
      outcome: good.result.outcome,
      reason: good.result.reason ?? null,
      load: loadSummary(good.figures),
      machineCpuBusy: good.machineCpuBusy,
      haproxy: good.haproxy,
      failures: goodFailures,
      traffic: trafficTimeline(good.timeline),
      analysisWindows: countBy(good.result.state.analysis.map((w) => w.verdict)),
    },
    rollback: {
      workflowId: bad.workflowId,
      outcome: bad.result.outcome,
      reason: bad.result.reason ?? null,
      failedWindow: bad.result.failedWindow ?? null,
      load: loadSummary(bad.figures),
      machineCpuBusy: bad.machineCpuBusy,
      haproxy: bad.haproxy,
      failuresFromV3: v3Failures.length,
      failuresOther: otherFailures.length,
      failures: failureReport(bad.figures.failures, bad.timeline),
      traffic: trafficTimeline(bad.timeline),
      timing: timing
        ? {
            rollbackMs: round(timing.rollbackMs, 1),
            candidateWeight: timing.candidateWeight,
            faultOnsetAtMs: round(timing.faultOnsetMs - bad.timeline.startMs, 1),
            stableBackAtMs: round(timing.stableBackMs - bad.timeline.startMs, 1),
            firstV3FailureSeenAtMs: round((v3Failures[0]?.atMs ?? NaN) - bad.timeline.startMs, 1),
            lastV3FailureSeenAtMs: round((v3Failures.at(-1)?.atMs ?? NaN) - bad.timeline.startMs, 1),
            /** What happened between the shift and the return to stable, in ms after the shift. */
            steps: stepsBetween(bad.timeline, timing.faultOnsetMs, timing.stableBackMs),
          }
        : null,
    },
    overhead: roundDeep(overhead),
    cutoff: cutoffRuns.map(cutoffFigures),
    cutoffSummary: cutoffSummary(cutoffRuns.map(cutoffFigures)),
    goals: {
      zeroFailedRequests: {
        goal: `0 failed requests (non-2xx + errors + timeouts) of at least ${MIN_REQUESTS} during a good deploy`,
        requests: good.figures.requests,
        /** Of `requests`, those that ended between the v2 workflow's start and its completion. */
        requestsDuringDeploy: during.requests,
        /** Over the whole load, lead and tail included. */
        failed: good.figures.failed,
        met: good.result.outcome === 'succeeded' && good.figures.failed === 0 && during.requests >= MIN_REQUESTS,
      },
      rollbackWithinTwoIntervals: {
        goal: `100% back on stable within 2 analysis intervals + ${ROLLBACK_SLACK_MS} ms of the fault's onset`,
        intervalMs: settings.intervalMs,
        budgetMs,
        rollbackMs: timing ? round(timing.rollbackMs, 1) : null,
        intervals: timing ? round(timing.rollbackMs / settings.intervalMs, 2) : null,
        ofBudget: timing ? round(timing.rollbackMs / budgetMs, 2) : null,
        met: bad.result.outcome === 'rolled-back' && timing !== undefined && timing.rollbackMs <= budgetMs,
      },
    },
  };
}

/** Per faulty release and setting: the runs' medians and how many met the goals. */
function cutoffSummary(runs: Array<ReturnType<typeof cutoffFigures>>) {
  const kinds = [...new Set(runs.map((r) => `${r.fault}|${r.cutoff}`))];
  return kinds.map((k) => {
    const of = runs.filter((r) => `${r.fault}|${r.cutoff}` === k);
    const outs = of.map((r) => r.firstToOutMs).filter((x): x is number => x !== null);
    return {
      fault: of[0]!.fault,
      cutoff: of[0]!.cutoff,
      runs: of.length,
      failedFromCanary: of.map((r) => r.failedFromCanary),
      medianFailed: median(of.map((r) => r.failedFromCanary)),
      firstToOutMs: outs,
      medianFirstToOutMs: round(median(outs), 1),
      byCutoff: of.filter((r) => r.decidedBy.startsWith('cut-off')).length,
      goalsMet: of.filter((r) => (r.goals.failed?.met ?? true) && r.goals.out.met).length,
    };
  });
}

type Results = ReturnType<typeof summarize>;

function renderMarkdown(r: Results): string {
  const g = r.goodDeploy.load;
  const b = r.rollback.load;
  const o = r.overhead;
  const t = r.rollback.timing;
  const goal = r.goals;
  return [
    '# Deploy benchmark',
    '',
    `${r.date} — \`${r.command}\` — Node ${r.node} — ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ${r.machine.os}`,
    `— ${r.tools.haproxy ?? 'HAProxy ?'}, ${r.tools.postgres ?? 'PostgreSQL ?'}, Temporal CLI ${r.tools.temporalCli ?? '?'}.`,
    '',
    `Load: autocannon, ${r.settings.rate} req/s fixed rate over ${r.settings.connections} connections ` +
      `(${r.settings.slices} instances started ${1000 / r.settings.slices} ms apart), GET /api/items on the ` +
      `service's HAProxy frontend. Canary ${r.settings.weights.join('% / ')}% with ${r.settings.bakeMs / 1000} s bakes, ` +
      `analysis every ${r.settings.intervalMs} ms, release drain ${r.settings.drainMs} ms. ` +
      'One machine: the load generator, HAProxy, the releases, PostgreSQL, Temporal and the worker share its cores.',
    '',
    `Machine load (1-minute load average of its ${r.machine.cpus} cores): ${r.machine.loadAvgBefore[0]} before, ` +
      `${r.machine.loadAvgAfter[0]} after; the machine is shared with other engineers' test runs.`,
    '',
    '| figure | good deploy (v1 → v2) | rollback (v1 → v3) |',
    '| --- | ---: | ---: |',
    `| outcome | ${r.goodDeploy.outcome} | ${r.rollback.outcome} |`,
    `| requests | ${g.requests} | ${b.requests} |`,
    `| non-2xx | ${g.non2xx} | ${b.non2xx} |`,
    `| errors | ${g.errors} | ${b.errors} |`,
    `| timeouts | ${g.timeouts} | ${b.timeouts} |`,
    `| **failed** | **${g.failed}** | **${b.failed}** (${r.rollback.failuresFromV3} answered by v3) |`,
    `| latency p50 / p95 / p99 | ${g.latencyMs.p50} / ${g.latencyMs.p95} / ${g.latencyMs.p99} ms | ${b.latencyMs.p50} / ${b.latencyMs.p95} / ${b.latencyMs.p99} ms |`,
    `| achieved rate | ${g.achievedRate} req/s over ${g.seconds} s | ${b.achievedRate} req/s over ${b.seconds} s |`,
    `| HAProxy retries / redispatches / connection errors (backend) | ${proxy(r.goodDeploy.haproxy)} | ${proxy(r.rollback.haproxy)} |`,
    `| machine CPU busy (all processes, both cores) | ${pct(r.goodDeploy.machineCpuBusy)} | ${pct(r.rollback.machineCpuBusy)} |`,
    '',
    '| goal | figure | |',
    '| --- | --- | --- |',
    `| 0 failed of ≥ 20 000 requests during a good deploy | ${goal.zeroFailedRequests.failed} failed of ${goal.zeroFailedRequests.requests} (${goal.zeroFailedRequests.requestsDuringDeploy} while the v2 workflow ran) | ${met(goal.zeroFailedRequests.met)} |`,
    `| stable back at 100% within 2 × ${goal.rollbackWithinTwoIntervals.intervalMs} ms + 250 ms = ${goal.rollbackWithinTwoIntervals.budgetMs} ms | ` +
      `${ms(goal.rollbackWithinTwoIntervals.rollbackMs)} = ${goal.rollbackWithinTwoIntervals.intervals} intervals (${goal.rollbackWithinTwoIntervals.ofBudget} of the budget) | ${met(goal.rollbackWithinTwoIntervals.met)} |`,
    '',
    '## Orchestration overhead of the good deploy (from its workflow history)',
    '',
    '| workflow | inside activities | in timers | steps (activities + timers) | overhead | **per step** |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${o.workflowMs} ms | ${o.inActivitiesMs} ms | ${o.inTimersMs} ms | ${o.steps} (${o.activities} + ${o.timers}) | ${o.overheadMs} ms | **${o.perStepMs} ms** |`,
    '',
    `The overhead is ${o.betweenStepsMs} ms from the end of a step to the scheduling of the next (the workflow task ` +
      `that decides it: ${o.gaps.count} gaps, median ${o.gaps.medianMs} ms, p95 ${o.gaps.p95Ms} ms, max ${o.gaps.maxMs} ms) ` +
      `plus ${o.dispatchMs} ms from ActivityTaskScheduled to ActivityTaskStarted (task-queue dispatch to the worker, ` +
      `${round(o.dispatchMs / o.activities, 1)} ms per activity).`,
    '',
    '## Failed requests during the good deploy',
    '',
    ...failureRows(r.goodDeploy.failures),
    '',
    '## Rollback timeline (ms after the v3 workflow started)',
    '',
    t
      ? `v3 given ${t.candidateWeight}% at ${t.faultOnsetAtMs}; first 5xx from v3 seen by the client at ${t.firstV3FailureSeenAtMs}, ` +
        `last at ${t.lastV3FailureSeenAtMs}; v1 back at 100% at ${t.stableBackAtMs} (${t.rollbackMs} ms after the shift). ` +
        `Why: ${r.rollback.reason ?? 'n/a'}`
      : `no rollback timing: the v3 deploy ended ${r.rollback.outcome} (${r.rollback.reason ?? 'no reason'})`,
    '',
    ...(t
      ? [
          'Steps from the shift to v3 (0) to v1 back at 100% (ms after the shift):',
          '',
          '| step | scheduled | started | ended |',
          '| --- | ---: | ---: | ---: |',
          ...t.steps.map((s) => `| ${s.step} | ${s.scheduledMs} | ${s.startedMs} | ${s.endedMs} |`),
          '',
          'Failed requests of the rollback run:',
          '',
        ]
      : []),
    ...failureRows(r.rollback.failures),
    '',
    '## The cut-off: a faulty canary with and without it',
    '',
    `Each run: a new service at v1, then the faulty release under the same load (canary ${r.settings.weights[0]}%, ` +
      `analysis every ${r.settings.intervalMs} ms). Cut-off "on" is the default: HAProxy's rule (errorLimit ` +
      'consecutive errors) and the rate rule of the watch ' +
      `(${JSON.stringify(rateCutoffOf(r.settings.analysis.cutoff) ?? 'off')}); "HAProxy only" has the rate rule off. ` +
      '"Out": with the cut-off, the last 5xx the canary answered (HAProxy sends it nothing after marking it down or ' +
      'after the watch set its weight to 0; a request in flight still ends after); without, the setTraffic that gave ' +
      'it weight 0. Times are ms after the workflow started, as the client (autocannon) saw the answers.',
    '',
    '| fault | cut-off | outcome | decided by | 5xx from the canary | first 5xx | out | **first 5xx → out** | router noticed | stable at 100% | goals |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...r.cutoff.map(
      (c) =>
        `| ${c.fault} | ${c.cutoff === 'off' ? 'off' : `${c.cutoff} (errorLimit ${r.settings.analysis.cutoff?.errorLimit ?? '?'}${c.cutoff === 'on' ? ', rate rule' : ''})`} | ${c.outcome} | ${c.decidedBy} | ` +
        `${c.failedFromCanary}${c.failedOther ? ` (+${c.failedOther} other)` : ''} | ${c.firstCanary5xxAtMs ?? 'n/a'} | ` +
        `${(c.decidedBy.startsWith('cut-off') ? c.lastCanary5xxAtMs : c.stableBackAtMs) ?? 'n/a'} | **${ms(c.firstToOutMs)}** | ` +
        `${c.cutoffNoticedAtMs ?? '-'} | ${c.stableBackAtMs ?? 'n/a'} | ` +
        [
          c.goals.failed ? `≤ ${CUTOFF_MAX_FAILED} failed: ${met(c.goals.failed.met)}` : '',
          `${c.goals.out.goal}: ${met(c.goals.out.met)}`,
        ]
          .filter(Boolean)
          .join('; ') +
        ' |',
    ),
    '',
    'Per faulty release and setting:',
    '',
    '| fault | cut-off | runs | 5xx from the canary (each run) | median | first 5xx → out (each run) | median | taken out by the cut-off | runs meeting the goals |',
    '| --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |',
    ...r.cutoffSummary.map(
      (k) =>
        `| ${k.fault} | ${k.cutoff} | ${k.runs} | ${k.failedFromCanary.join(', ')} | **${k.medianFailed}** | ` +
        `${k.firstToOutMs.map((x) => `${x} ms`).join(', ')} | **${k.medianFirstToOutMs} ms** | ${k.byCutoff} | ${k.goalsMet} of ${k.runs} |`,
    ),
    '',
    'Why each ended:',
    '',
    ...r.cutoff.map((c) => `- ${c.fault}, cut-off ${c.cutoff}: ${c.reason ?? 'n/a'}`),
    '',
  ].join('\n');
}

runBench(main, cleanup, 'the load, the worker, the releases and the stack');
