/**
 * Many runbooks at once: N services (the sample app, examples/shop) deployed at the same time, first v1 (a first
 * deploy: snapshot, migrations, start, health, smoke, 100%), then v2 through a 50% step with a short bake, on one
 * task queue served by `--workers` worker processes (the real entry point, src/worker.ts), with `--drills` drill
 * schedules registered on the same server. From the workflow histories:
 *
 *   - per-step overhead: for each activity or timer of a deploy, the time from the end of the previous step (or the
 *     start) to its start: the workflow task that decides it plus, for an activity, its dispatch; median and p95 over
 *     every step of every deploy (goal: p95 < 50 ms at 50 concurrent deploys on one worker);
 *   - workflow task latency (WorkflowTaskScheduled -> Completed) and activity schedule-to-start, median and p95;
 *   - throughput: deploys completed per minute of the phase;
 *   - the workers' CPU (share of one core) and resident memory, sampled every second from /proc.
 *
 * Run: `npm run bench:concurrency` (= `npx tsx bench/concurrency-bench.ts`); `-- --workers 3`, `-- --cluster` (the
 * Temporal server of `runbook up --cluster` instead of the dev server), `-- --services 10` for a quick run. Writes
 * bench/results/concurrency[-<workers>w][-cluster].json and .md. See bench/README.md.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { DeployResult } from '../src/shared/deploy';
import type { SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { spawnChildWorker, startTestStack, testStack, uniqueName } from '../test/harness';
import { requestFor, shopPlan, startDeploy } from '../test/workflows/deploy-fixture';
import { livePid } from '../src/system/processes';
import { clusterPids } from '../src/stack/temporal-cluster';
import { temporalPaths } from '../src/stack/temporal-server';
import {
  benchCleanup,
  cpuBusy,
  cpuTimes,
  benchCommand,
  gitState,
  intArgs,
  machineInfo,
  median,
  met,
  ms,
  pct,
  resultWithin,
  round,
  roundDeep,
  runBench,
  toolVersions,
  writeResults,
} from './common';
import { timelineOf, type HistoryTimeline } from './history';

const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '50' },
    workers: { type: 'string', default: '1' },
    drills: { type: 'string', default: '200' },
    'max-activities': { type: 'string', default: '50' },
    // the worker's RUNBOOK_WORKFLOW_THREADS (its default: 2)
    'workflow-threads': { type: 'string', default: '2' },
    'bake-ms': { type: 'string', default: '2000' },
    cluster: { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(__dirname, 'results') },
  },
});
const int = intArgs(args, (min) => `an integer ≥ ${min}`);
const settings = {
  services: int('services'),
  workers: int('workers'),
  drills: int('drills', 0),
  maxActivities: int('max-activities'),
  workflowThreads: int('workflow-threads'),
  bakeMs: int('bake-ms', 0),
  temporal: args.cluster ? 'cluster (Temporal server 1.29.1 on PostgreSQL)' : 'dev server (Temporal CLI 1.5.1)',
};
const GOAL_P95_MS = 50;
const PHASE_TIMEOUT_MS = 15 * 60_000;
/** Activities that run beside the steps for a whole traffic step, not one of them (see history.ts). */
const BESIDE_THE_STEPS = new Set(['watchCutoff']);

const nearestRank = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.max(0, Math.ceil(p * s.length) - 1)]!;
};
const spread = (xs: number[]) => ({
  count: xs.length,
  medianMs: round(median(xs), 1),
  p95Ms: round(nearestRank(xs, 0.95), 1),
  maxMs: round(nearestRank(xs, 1), 1),
});

/** Per step: from the end of the previous step (or the start) to its start; and its dispatch, for an activity. */
function stepFigures(t: HistoryTimeline) {
  const steps = t.steps.filter((s) => !BESIDE_THE_STEPS.has(s.name)).sort((a, b) => a.scheduledMs - b.scheduledMs);
  const overhead: number[] = [];
  const dispatch: number[] = [];
  let lastEnd = t.startMs;
  for (const s of steps) {
    overhead.push(Math.max(0, s.startedMs - lastEnd));
    if (s.kind === 'activity') dispatch.push(s.startedMs - s.scheduledMs);
    lastEnd = Math.max(lastEnd, s.endedMs);
  }
  return { overhead, dispatch, workflowTasks: t.workflowTasks.map((w) => w.completedMs - w.scheduledMs) };
}

/** CPU (user + system clock ticks) and resident memory of processes, sampled every second. */
function sampleProcesses(pids: () => number[]) {
  const ticksPerSecond = 100; // USER_HZ on Linux
  const read = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
      return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssKiB };
    } catch {
      return undefined;
    }
  };
  const samples: Array<{ atMs: number; cpuTicks: number; rssMiB: number }> = [];
  const take = () => {
    let cpuTicks = 0;
    let rssKiB = 0;
    for (const pid of pids()) {
      const r = read(pid);
      if (r) {
        cpuTicks += r.cpuTicks;
        rssKiB += r.rssKiB;
      }
    }
    samples.push({ atMs: Date.now(), cpuTicks, rssMiB: rssKiB / 1024 });
  };
  take();
  const timer = setInterval(take, 1_000);
  return {
    stop() {
      clearInterval(timer);
      take();
      const first = samples[0]!;
      const last = samples.at(-1)!;
      const seconds = (last.atMs - first.atMs) / 1000;
      const rates = samples
        .slice(1)
        .map((s, i) => (s.cpuTicks - samples[i]!.cpuTicks) / ticksPerSecond / ((s.atMs - samples[i]!.atMs) / 1000));
      return {
        seconds: round(seconds, 1),
        cpuCoresMean: round((last.cpuTicks - first.cpuTicks) / ticksPerSecond / seconds, 2),
        cpuCoresPeak: round(Math.max(0, ...rates), 2),
        rssMiBPeak: round(Math.max(...samples.map((s) => s.rssMiB)), 0),
      };
    },
  };
}

interface Phase {
  name: string;
  deploys: number;
  succeeded: number;
  outcomes: Record<string, number>;
  seconds: number;
  deploysPerMinute: number | null;
  stepOverhead: ReturnType<typeof spread>;
  workflowTaskLatency: ReturnType<typeof spread>;
  activityScheduleToStart: ReturnType<typeof spread>;
  workers: ReturnType<ReturnType<typeof sampleProcesses>['stop']>;
  /** The Temporal server's process (dev server or cluster). */
  server: ReturnType<ReturnType<typeof sampleProcesses>['stop']>;
  /** Share of all cores busy over the phase, everything on the machine. */
  machineCpuBusy: number | null;
}

async function runPhase(
  name: string,
  taskQueue: string,
  plans: ResolvedService[],
  version: string,
  workerPids: () => number[],
): Promise<Phase> {
  console.log(`${name}: ${plans.length} deploys of ${version} at once`);
  const sampler = sampleProcesses(workerPids);
  const serverSampler = sampleProcesses(serverPids);
  const cpuBefore = cpuTimes();
  const started = Date.now();
  const handles: Array<WorkflowHandle> = await Promise.all(plans.map((p) => startDeploy(taskQueue, p, version)));
  let done = 0;
  const results = await Promise.all(
    handles.map(async (h) => {
      const r = (await resultWithin(h, PHASE_TIMEOUT_MS, `deploy ${h.workflowId}`)) as DeployResult;
      done++;
      if (done % 10 === 0 || done === handles.length) console.log(`  ${done}/${handles.length} done`);
      return r;
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  const workers = sampler.stop();
  const server = serverSampler.stop();
  const machineCpuBusy = cpuBusy(cpuBefore, cpuTimes());
  const figures = await Promise.all(handles.map(async (h) => stepFigures(timelineOf(await h.fetchHistory()))));
  const outcomes: Record<string, number> = {};
  for (const r of results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  const failed = results.filter((r) => r.outcome !== 'succeeded');
  for (const r of failed.slice(0, 3)) console.log(`  not succeeded: ${r.outcome}: ${r.reason}`);
  return {
    name,
    deploys: results.length,
    succeeded: outcomes.succeeded ?? 0,
    outcomes,
    seconds: round(seconds, 1)!,
    deploysPerMinute: round((results.length / seconds) * 60, 1),
    stepOverhead: spread(figures.flatMap((f) => f.overhead)),
    workflowTaskLatency: spread(figures.flatMap((f) => f.workflowTasks)),
    activityScheduleToStart: spread(figures.flatMap((f) => f.dispatch)),
    workers,
    server,
    machineCpuBusy,
  };
}

/** The pids of the stack's Temporal server processes (the dev server's one, the cluster's three). */
function serverPids(): number[] {
  const { home } = testStack().settings;
  if (args.cluster) return Object.values(clusterPids(home));
  const pid = livePid(temporalPaths(home).pidFile, 'start-dev');
  return pid ? [pid] : [];
}

let workers: Array<ReturnType<typeof spawnChildWorker>> = [];
let stackStarted = false;
const schedules: string[] = [];

async function main(): Promise<void> {
  const loadAvgBefore = os.loadavg();
  if (args.cluster) process.env.RUNBOOK_TEST_TEMPORAL_SERVER = 'cluster';
  await startTestStack();
  stackStarted = true;
  const taskQueue = uniqueName('many');
  const plans: ResolvedService[] = [];
  for (let i = 0; i < settings.services; i++) {
    plans.push(
      await shopPlan({
        traffic: {
          steps: [
            { weight: 50, bakeMs: settings.bakeMs },
            { weight: 100, bakeMs: 0 },
          ],
        },
      }),
    );
  }
  // every plan is in the task queue's runbook config before the workers read it
  for (const p of plans) requestFor(taskQueue, p);
  // the worker's production default of activity slots (the test harness gives its workers 20)
  workers = Array.from({ length: settings.workers }, () =>
    spawnChildWorker(taskQueue, {
      env: {
        RUNBOOK_MAX_ACTIVITIES: String(settings.maxActivities),
        RUNBOOK_WORKFLOW_THREADS: String(settings.workflowThreads),
      },
    }),
  );
  const workerPids = () => workers.flatMap((w) => (w.process.pid ? [w.process.pid] : []));

  const { client, namespace } = testStack();
  // the phases start once every worker polls (a worker process takes seconds to start)
  for (let polling = 0; polling < settings.workers; await sleep(250)) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    polling = new Set((pollers ?? []).map((p) => p.identity)).size;
  }
  const registerStarted = Date.now();
  for (let i = 0; i < settings.drills; i++) {
    const plan = plans[i % plans.length]!;
    const scheduleId = uniqueName(`drill-${plan.service}`);
    await client.schedule.create({
      scheduleId,
      // weekly, as the seeds ask: none fires during the benchmark
      spec: { calendars: [{ dayOfWeek: 'SUNDAY', hour: 3, minute: i % 60 }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'restoreDrill',
        taskQueue,
        workflowId: scheduleId,
        args: [{ ...requestFor(taskQueue, plan), requestedBy: `schedule:${scheduleId}`.slice(0, 64) }],
      },
    });
    schedules.push(scheduleId);
  }
  const registerSeconds = (Date.now() - registerStarted) / 1000;
  if (settings.drills > 0)
    console.log(`${settings.drills} drill schedules registered in ${registerSeconds.toFixed(1)} s`);

  const first = await runPhase('first deploys (v1)', taskQueue, plans, 'v1', workerPids);
  const canary = await runPhase('canary deploys (v2, 50% then 100%)', taskQueue, plans, 'v2', workerPids);
  const phases = [first, canary];
  const goalMet =
    settings.workers === 1 && settings.services >= 50 ? canary.stepOverhead.p95Ms! < GOAL_P95_MS : undefined;

  const results = roundDeep({
    when: new Date().toISOString(),
    command: benchCommand('bench:concurrency', 'bench/concurrency-bench.ts'),
    machine: machineInfo(loadAvgBefore),
    tools: toolVersions(),
    git: gitState(),
    settings,
    drills: { registered: settings.drills, seconds: registerSeconds },
    phases,
    goal: { p95StepOverheadMs: GOAL_P95_MS, met: goalMet },
  });
  const row = (p: Phase) =>
    `| ${p.name} | ${p.succeeded}/${p.deploys} | ${p.seconds} s | ${p.deploysPerMinute} | ${ms(p.stepOverhead.medianMs)} / ${ms(p.stepOverhead.p95Ms)} (${p.stepOverhead.count}) | ${ms(p.workflowTaskLatency.medianMs)} / ${ms(p.workflowTaskLatency.p95Ms)} | ${ms(p.activityScheduleToStart.medianMs)} / ${ms(p.activityScheduleToStart.p95Ms)} | ${p.workers.cpuCoresMean} / ${p.workers.cpuCoresPeak} | ${p.workers.rssMiBPeak} MiB | ${p.server.cpuCoresMean} / ${p.server.cpuCoresPeak} | ${pct(p.machineCpuBusy)} |`;
  const md = `# Many runbooks at once

${results.when} — \`${results.command}\` — ${settings.temporal} — ${settings.workers} worker process(es) — ${results.machine.cpus} × ${results.machine.cpuModel}, load average before ${results.machine.loadAvgBefore.join(' ')}, after ${results.machine.loadAvgAfter.join(' ')}.

${settings.services} services of the sample app deployed at once on one task queue (${settings.maxActivities} activity slots and ${settings.workflowThreads} workflow thread(s) per worker); ${settings.drills} weekly drill schedules registered beside them (in ${round(registerSeconds, 1)} s; none fires during the run). v2's deploys bake ${settings.bakeMs} ms at 50%.

| goal | figure | |
| --- | --- | --- |
| p95 per-step overhead < ${GOAL_P95_MS} ms at 50 concurrent deploys on one worker | ${ms(canary.stepOverhead.p95Ms)} (canary deploys) | ${met(goalMet)} |

| phase | succeeded | wall time | deploys/min | per-step overhead median / p95 (steps) | workflow task latency median / p95 | activity schedule-to-start median / p95 | workers' CPU, cores mean / peak | workers' RSS peak | Temporal server CPU mean / peak | machine CPU busy |
| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |
${phases.map(row).join('\n')}

Per-step overhead: for each activity or timer of a deploy, from the end of the previous step (or the workflow's start) to its start: the workflow task that decides it, plus the activity's dispatch. The workers' CPU is in cores (1.0 = one core busy), from /proc, every second.
`;
  const name =
    `concurrency${settings.workers > 1 ? `-${settings.workers}w` : ''}${args.cluster ? '-cluster' : ''}` +
    `${settings.workflowThreads !== 2 ? `-${settings.workflowThreads}thread` : ''}`;
  await writeResults(String(args.out), name, results, md);
  console.log(md);
}

const cleanup = benchCleanup(
  [
    [
      'deleting the drill schedules',
      () => ({
        stop: async () => {
          for (const id of schedules)
            await testStack()
              .client.schedule.getHandle(id)
              .delete()
              .catch(() => {});
        },
      }),
    ],
    ['stopping the workers', () => ({ stop: () => Promise.all(workers.map((w) => w.kill())) })],
  ],
  () => stackStarted,
);
runBench(main, cleanup, 'the workers, the releases and the stack');
