/**
 * The rollback benchmark (issue "Rollback as its own durable workflow"): `rollbackService` on the real embedded stack
 * (Temporal dev server, PostgreSQL, HAProxy, an in-process worker, real release processes of examples/shop), under a
 * fixed-rate autocannon load through HAProxy's stable frontend:
 *
 *   1. the switch back to the previous release (no database restore), from the workflow's start to the completion of
 *      the setTraffic that puts it at 100%, in two cases: the previous release still runs (the rollback adopts it;
 *      goal: under 2 s) and it was stopped (the rollback starts it anew); `--repeat` runs of each, alternating;
 *   2. the failed requests during those rollbacks (goal: 0);
 *   3. the database restore path with a database of `--scale` pgbench scale units (70 ≈ 1 GB) in the service's
 *      database before the deploy that snapshots it: the phases (safety snapshot, restore with pg_restore -j2, verify
 *      against the manifest, swap) and the maintenance window, with the 503 answers (and their Retry-After) the load
 *      got during it.
 *
 * Run: `npm run bench:rollback` (= `npx tsx bench/rollback-bench.ts`); `-- --scale 5` for a quick run, `--scale 0`
 * to skip the restore. Writes bench/results/rollback.json and bench/results/rollback.md. See bench/README.md.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import type { RunningRelease } from '../src/platforms/types';
import type { DeployResult } from '../src/shared/deploy';
import type { RollbackRequest } from '../src/shared/request';
import type { SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { releaseIdFor } from '../src/shared/ids';
import { approveUpdate } from '../src/shared/messages';
import { databaseUrl } from '../src/stack/postgres';
import { startTestStack, startWorker, testStack, uniqueName } from '../test/harness';
import {
  runner,
  shopPlan,
  snapshotManifest,
  startDeploy,
  startRollback,
  waitingAt,
} from '../test/workflows/deploy-fixture';
import {
  benchCleanup,
  benchCommand,
  countBy,
  databaseBytes,
  failureReport,
  failureRows,
  gitState,
  intArgs,
  loadSummary,
  machineInfo,
  measureUnderLoad,
  median,
  met,
  ms,
  pct,
  pgTool,
  proxy,
  resultWithin,
  round,
  roundDeep,
  toolVersions,
  waitReady,
  writeResults,
  runBench,
} from './common';
import {
  orchestrationOverhead,
  stepsBetween,
  timelineOf,
  trafficChanges,
  type HistoryTimeline,
  type Step,
} from './history';
import { endedBetween, type LoadFailure } from './load';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '50' },
    slices: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '3' },
    scale: { type: 'string', default: '70' },
    'lead-ms': { type: 'string', default: '2000' },
    'tail-ms': { type: 'string', default: '2000' },
    out: { type: 'string', default: path.join(__dirname, 'results') },
    /** Re-renders rollback.md from an existing rollback.json (no measurement). */
    'render-from': { type: 'string' },
  },
});
const int = intArgs(args);
const settings = {
  rate: int('rate'),
  connections: int('connections'),
  slices: int('slices'),
  repeat: int('repeat'),
  /** pgbench scale of the restore run's database (1 ≈ 15 MB); 0 skips the restore run. */
  scale: int('scale', 0),
  leadMs: int('lead-ms'),
  tailMs: int('tail-ms'),
  requestTimeoutSeconds: 5,
  restoreJobs: 2,
};
const SWITCH_GOAL_MS = 2_000;
/** Longest a deploy (setup, no load) or a switch-back rollback may take before the bench gives up on it. */
const SETUP_MAX_MS = 120_000;
const SWITCH_MAX_MS = 60_000;
/** Longest the restore rollback may take (a 1 GB database takes a few minutes on 2 cores). */
const RESTORE_MAX_MS = 20 * 60_000;
const APPROVER = 'alice';
const REQUESTER = 'dave';

const command = benchCommand('bench:rollback', 'bench/rollback-bench.ts');

let worker: { stop(): Promise<void> } | undefined;
let stackStarted = false;
let poller: { stop(): Promise<ActivitySeen[]> } | undefined;

/** The sample service's plan with a single 100% traffic step (the setup deploys need no canary). */
async function benchPlan(): Promise<ResolvedService> {
  const base = await shopPlan();
  return {
    ...base,
    traffic: { steps: [{ weight: 100, bakeMs: 0 }] },
    rollback: {
      ...base.rollback,
      dbRestoreApprovers: ['alice', 'bob'],
      approvals: { ...base.rollback.approvals, gates: [], timeoutMs: 10 * 60_000 },
    },
  };
}

async function deploy(taskQueue: string, plan: ResolvedService, version: string) {
  const handle = await startDeploy(taskQueue, plan, version, REQUESTER);
  const result = await resultWithin(handle, SETUP_MAX_MS + (plan.database ? RESTORE_MAX_MS : 0), `deploy ${version}`);
  if (result.outcome !== 'succeeded')
    throw new Error(`the deploy of ${version} ended ${result.outcome}: ${result.reason}`);
  return { result, timeline: timelineOf(await handle.fetchHistory()) };
}

/** A rollback requested by the bench's requester, its workflow id prefixed rollback-bench. */
const startBenchRollback = (taskQueue: string, plan: ResolvedService, extra: Partial<RollbackRequest> = {}) =>
  startRollback(
    taskQueue,
    plan,
    { requestedBy: REQUESTER, reason: 'rollback benchmark', ...extra },
    uniqueName('rollback-bench'),
  );

/** Stops the service's remaining releases once it is measured, so that idle processes do not pile up. */
async function stopServiceReleases(plan: ResolvedService): Promise<void> {
  const rs = runner();
  for (const r of await rs.list()) {
    if (r.service === plan.service) await rs.stop(r.service, r.environment, r.releaseId, 2_000);
  }
}

const first = (t: HistoryTimeline, name: string, pred: (s: Step) => boolean = () => true) =>
  t.steps.find((s) => s.name === name && pred(s));

/** A non-2xx answer, by who gave it (no x-app-version: HAProxy) and its Retry-After. */
const answeredBy = (f: LoadFailure) =>
  `${f.status} from ${f.version === '?' ? 'HAProxy' : f.version}${f.retryAfter ? ` (Retry-After: ${f.retryAfter})` : ''}`;

/** The fields that open the result of each rollback run. */
const runIdentity = (plan: ResolvedService, handle: WorkflowHandle, result: DeployResult) => ({
  service: plan.service,
  workflowId: handle.workflowId,
  outcome: result.outcome,
  reason: result.reason ?? null,
  version: result.version,
  from: result.stableVersion ?? null,
});

// ---------------------------------------------------------------------------------------------------------------
// 1 + 2: the switch back to the previous release, under load

type SwitchCase = 'still-running' | 'started-anew';

async function switchBack(taskQueue: string, which: SwitchCase, run: number) {
  const plan = await benchPlan();
  await deploy(taskQueue, plan, 'v1');
  await deploy(taskQueue, plan, 'v2'); // stops v1 in its finalize step
  let prestarted: RunningRelease | undefined;
  if (which === 'still-running') {
    // v1 runs again next to v2 (as an operator or a crashed deploy's leftover would have it), ready, out of the route.
    prestarted = await runner().start({
      service: plan.service,
      environment: plan.environment,
      releaseId: releaseIdFor('v1', uniqueName('bench-prestart')),
      version: 'v1',
      release: plan.release,
      database: { name: plan.database!.name },
    });
    await waitReady(
      prestarted,
      20_000,
      `${prestarted.version} (${prestarted.releaseId}) did not become ready within 20 s`,
    );
  }
  let clientStartMs = NaN;
  const { handle, result, figures, machineCpuBusy, haproxy, timeline } = await measureUnderLoad({
    plan,
    settings,
    budgetMs: SWITCH_MAX_MS,
    keepFailures: 2_000,
    start: () => {
      clientStartMs = Date.now();
      return startBenchRollback(taskQueue, plan);
    },
    what: `rollback (${which})`,
  });
  await stopServiceReleases(plan);

  const targetId = result.state.candidate?.releaseId ?? '';
  const full = trafficChanges(timeline).find((c) => c.percent[targetId] === 100);
  const adopted = prestarted !== undefined && targetId === prestarted.releaseId;
  const during = endedBetween(figures, timeline.startMs, timeline.endMs);
  const untilTraffic: HistoryTimeline = {
    startMs: timeline.startMs,
    endMs: full?.endedMs ?? NaN,
    steps: timeline.steps.filter((s) => full && s.endedMs <= full.endedMs),
    workflowTasks: [],
  };
  const overhead = full ? orchestrationOverhead(untilTraffic) : undefined;
  const row = {
    case: which,
    run,
    ...runIdentity(plan, handle, result),
    adopted,
    /** Workflow start (WorkflowExecutionStarted) to the completion of the setTraffic that put the target at 100%. */
    toFullTrafficMs: full ? round(full.endedMs - timeline.startMs, 1) : null,
    /** The same from just before the client's start call (includes the StartWorkflowExecution round trip). */
    toFullTrafficFromClientMs: full ? round(full.endedMs - clientStartMs, 1) : null,
    workflowMs: round(timeline.endMs - timeline.startMs, 1),
    steps: full ? stepsBetween(timeline, timeline.startMs, full.endedMs) : [],
    untilFullTraffic: overhead
      ? {
          activities: overhead.activities,
          inActivitiesMs: round(overhead.inActivitiesMs, 1),
          overheadMs: round(overhead.overheadMs, 1),
          dispatchMs: round(overhead.dispatchMs, 1),
          gapMedianMs: round(overhead.gaps.medianMs, 1),
          byActivity: roundDeep(overhead.byActivity),
        }
      : null,
    load: loadSummary(figures),
    requestsDuringRollback: during.requests,
    machineCpuBusy,
    haproxy,
    failures: failureReport(figures.failures, timeline, answeredBy),
  };
  console.log(
    `  ${which} #${run}: ${row.outcome}, ${row.adopted ? 'adopted' : 'started'} ${row.version}, 100% after ` +
      `${row.toFullTrafficMs} ms; ${figures.failed} failed of ${figures.requests} requests`,
  );
  return row;
}

// ---------------------------------------------------------------------------------------------------------------
// 3: the database restore path

/** Fills the service's database with pgbench's tables (`pgbench -i -s <scale>`: ~15 MB per scale unit). */
async function pgbenchInit(database: string, scale: number): Promise<number> {
  const started = Date.now();
  await pgTool('pgbench', ['-i', '-s', String(scale), '-q'], database, 'pgbench -i');
  return Date.now() - started;
}

/** One statement PostgreSQL ran: seen by polling pg_stat_activity (start exact, end within the poll interval). */
interface ActivitySeen {
  datname: string;
  app: string;
  query: string;
  startMs: number;
  lastSeenMs: number;
}

const POLL_MS = 200;

/**
 * Polls pg_stat_activity every 200 ms while the restore rollback runs, to split its long steps into what PostgreSQL
 * did (pg_dump's COPY … TO stdout, pg_restore's COPY … FROM stdin then CREATE INDEX / ADD CONSTRAINT, the fingerprint
 * queries of the manifest comparison).
 */
async function pollPostgres(): Promise<{ stop(): Promise<ActivitySeen[]> }> {
  const client = new pg.Client({ connectionString: databaseUrl(testStack().settings, 'postgres') });
  client.on('error', () => {});
  await client.connect();
  const seen = new Map<string, ActivitySeen>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const now = Date.now();
      const { rows } = await client
        .query<{ pid: number; datname: string; app: string; query: string; started: Date }>(
          `SELECT pid, datname, application_name AS app, left(query, 500) AS query, query_start AS started
             FROM pg_stat_activity
            WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
        )
        .catch(() => ({ rows: [] }));
      for (const r of rows) {
        const key = `${r.pid}|${r.started.getTime()}`;
        const s = seen.get(key);
        if (s) s.lastSeenMs = now;
        else
          seen.set(key, {
            datname: r.datname,
            app: r.app,
            query: r.query.replace(/\s+/g, ' ').trim(),
            startMs: r.started.getTime(),
            lastSeenMs: now,
          });
      }
      await sleep(POLL_MS);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end().catch(() => {});
      return [...seen.values()].sort((a, b) => a.startMs - b.startMs);
    },
  };
}

/** What a statement was, in a few words. */
function statementKind(q: string): string {
  const copyIn = /^COPY (\S+) .*FROM stdin/i.exec(q);
  if (copyIn) return `COPY ${copyIn[1]} FROM stdin (pg_restore data)`;
  const copyOut = /^COPY (\S+) .*TO stdout/i.exec(q);
  if (copyOut) return `COPY ${copyOut[1]} TO stdout (pg_dump)`;
  const index = /^CREATE (?:UNIQUE )?INDEX (\S+)/i.exec(q);
  if (index) return `CREATE INDEX ${index[1]} (pg_restore)`;
  const constraint = /^ALTER TABLE (?:ONLY )?(\S+)\s+ADD CONSTRAINT (\S+)/i.exec(q);
  if (constraint) return `ADD CONSTRAINT ${constraint[2]} on ${constraint[1]} (pg_restore)`;
  const fingerprint = /md5\(count\(\*\).*FROM ONLY (\S+)/i.exec(q);
  if (fingerprint) return `fingerprint ${(fingerprint[1] ?? '').replace(/"/g, '')}`;
  return q.slice(0, 80);
}

async function restorePath(taskQueue: string) {
  const plan = await benchPlan();
  const database = plan.database!.name;
  const v1 = await deploy(taskQueue, plan, 'v1');
  console.log(`  pgbench -i -s ${settings.scale} into ${database}…`);
  const generateMs = await pgbenchInit(database, settings.scale);
  const liveBytes = await databaseBytes(database);
  console.log(`  ${(liveBytes / 2 ** 30).toFixed(2)} GiB in ${(generateMs / 1000).toFixed(1)} s; deploying v2`);
  const v2 = await deploy(taskQueue, plan, 'v2');
  const snapshotId = v2.result.snapshotId;
  if (!snapshotId) throw new Error('the v2 deploy took no snapshot');
  const manifest = JSON.parse(readFileSync(snapshotManifest(plan, snapshotId), 'utf8')) as {
    bytes: number;
    tables: Array<{ table: string; rows: number }>;
  };
  const preMigrate = first(v2.timeline, 'takeSnapshot');

  let statements: ActivitySeen[] = [];
  const { handle, result, figures, machineCpuBusy, haproxy, timeline } = await measureUnderLoad({
    plan,
    settings,
    budgetMs: RESTORE_MAX_MS,
    // Every 503 is kept with its time, so that each one can be placed inside or outside the maintenance window.
    keepFailures: settings.rate * Math.ceil(RESTORE_MAX_MS / 1000),
    start: async () => {
      poller = await pollPostgres();
      const h = await startBenchRollback(taskQueue, plan, { restoreSnapshotId: snapshotId, toVersion: 'v1' });
      console.log(`  rollback ${h.workflowId} started; approving the restore-database gate as ${APPROVER}`);
      await waitingAt(h, 'restore-database', 600_000);
      await h.executeUpdate(approveUpdate, { args: [{ by: APPROVER, note: 'rollback benchmark' }] });
      return h;
    },
    what: 'the restore rollback',
    beforeStop: async () => {
      statements = await poller!.stop();
      poller = undefined;
    },
  });
  const restoredBytes = await databaseBytes(database);
  const restore = result.state.restore;
  await stopServiceReleases(plan);

  const on = first(timeline, 'setMaintenance', (s) => s.input[1] === true);
  const off = first(timeline, 'setMaintenance', (s) => s.input[1] === false);
  const inspect = first(timeline, 'inspectSnapshot');
  const safety = first(timeline, 'takeSnapshot');
  const swap = first(timeline, 'swapDatabase');
  const targetId = result.state.candidate?.releaseId ?? '';
  const full = trafficChanges(timeline).find((c) => c.percent[targetId] === 100);
  const base = on?.endedMs ?? timeline.startMs;
  const rel = (x: number | undefined) => (x === undefined ? null : round(x - base, 1));
  const phase = (name: string, pred?: (s: Step) => boolean) => {
    const s = first(timeline, name, pred);
    return s
      ? {
          step: name,
          scheduledMs: rel(s.scheduledMs),
          startedMs: rel(s.startedMs),
          endedMs: rel(s.endedMs),
          durationMs: round(s.endedMs - s.startedMs, 1),
          outcome: s.outcome,
          attempt: s.attempt,
        }
      : null;
  };
  const phases = [
    ['inspectSnapshot', 'check the snapshot (exists, sha256, pg_restore --list) and what would be lost (fingerprint)'],
    ['takeSnapshot', 'safety snapshot of the current database (pg_dump -Fc + fingerprint)'],
    ['setMaintenance', 'maintenance on (HAProxy answers 503 + Retry-After)', (s: Step) => s.input[1] === true],
    ['restoreSnapshot', `restore: verify the dump again, CREATE DATABASE, pg_restore -j${settings.restoreJobs}`],
    ['compareWithSnapshot', 'verify: fingerprint of the restored database vs the manifest'],
    ['swapDatabase', 'swap: terminate connections, rename the live database away, rename the restored one in'],
    ['findRelease', `is ${result.version} running?`],
    ['startRelease', `start ${result.version}`],
    ['waitHealthy', 'health gate'],
    ['runSmokeChecks', 'smoke checks'],
    ['addToRoute', 'add to the route'],
    ['setTraffic', '100% on the target'],
    ['setMaintenance', 'maintenance off', (s: Step) => s.input[1] === false],
  ] as const;
  const phaseRows = phases.map(([name, what, pred]) => ({ what, ...(phase(name, pred) ?? { step: name }) }));

  // The 503s HAProxy gave during the maintenance (no x-app-version: no release answered), and everything else.
  const inWindow = (ms: number) => !!on && !!off && ms >= on.startedMs && ms <= off.endedMs;
  const maintenance503 = figures.failures.filter((f) => f.status === 503 && f.version === '?');
  const withRetryAfter = maintenance503.filter((f) => f.retryAfter !== undefined);
  const outside503 = maintenance503.filter((f) => !inWindow(f.atMs));
  const otherFailures = figures.failures.filter((f) => !(f.status === 503 && f.version === '?'));
  const longStatements = statements
    .filter((s) => s.lastSeenMs - s.startMs >= POLL_MS)
    .map((s) => ({
      kind: statementKind(s.query),
      database: s.datname,
      app: s.app,
      startMs: rel(s.startMs),
      lastSeenMs: rel(s.lastSeenMs),
      seenForMs: round(s.lastSeenMs - s.startMs),
    }));
  const out = {
    ...runIdentity(plan, handle, result),
    data: {
      pgbenchScale: settings.scale,
      generateMs: generateMs,
      liveDatabaseBytes: liveBytes,
      restoredDatabaseBytes: restoredBytes,
      snapshotId,
      snapshotDumpBytes: manifest.bytes,
      snapshotRows: manifest.tables.reduce((n, t) => n + t.rows, 0),
      snapshotTables: manifest.tables.map((t) => `${t.table}: ${t.rows}`),
      preMigrationSnapshotMs: preMigrate ? round(preMigrate.endedMs - preMigrate.startedMs) : null,
      v1DeployMs: round(v1.timeline.endMs - v1.timeline.startMs),
      v2DeployMs: round(v2.timeline.endMs - v2.timeline.startMs),
    },
    state: restore
      ? {
          verified: restore.verified ?? null,
          safetySnapshotId: restore.safetySnapshotId ?? null,
          restoredInto: restore.restoredInto ?? null,
          replacedAs: restore.replacedAs ?? null,
          /** The workflow's own figure: from before maintenance on to after the swap (release start not included). */
          maintenanceMs: restore.maintenanceMs ?? null,
        }
      : null,
    /** Times in ms after maintenance went on (the completion of setMaintenance(true)). */
    phases: phaseRows,
    window: {
      /** setMaintenance(true) completed → setMaintenance(false) completed: how long HAProxy answered 503. */
      maintenanceMs: on && off ? round(off.endedMs - on.endedMs, 1) : null,
      /** Of the window: maintenance on → the swap completed (what state.restore.maintenanceMs approximates). */
      untilSwapMs: rel(swap?.endedMs),
      /** Of the window: the swap → maintenance off (release start, health, smoke, traffic). */
      afterSwapMs: off && swap ? round(off.endedMs - swap.endedMs, 1) : null,
      workflowMs: round(timeline.endMs - timeline.startMs, 1),
      workflowStartToFullTrafficMs: full ? round(full.endedMs - timeline.startMs, 1) : null,
      approvalWaitMs: inspect && safety ? round(safety.scheduledMs - inspect.endedMs, 1) : null,
    },
    responses503: {
      total: maintenance503.length,
      withRetryAfter: withRetryAfter.length,
      retryAfterValues: countBy(withRetryAfter.map((f) => f.retryAfter!)),
      outsideTheWindow: outside503.length,
      firstAtMs: rel(maintenance503[0]?.atMs),
      lastAtMs: rel(maintenance503.at(-1)?.atMs),
      byStatusAndRetryAfter: figures.non2xxByRetryAfter,
    },
    otherFailures: otherFailures.length,
    failuresKept: figures.failuresKept,
    failuresSeen: figures.failuresSeen,
    failures: failureReport(figures.failures, timeline, answeredBy),
    load: loadSummary(figures),
    machineCpuBusy,
    haproxy,
    postgres: longStatements,
  };
  console.log(
    `  restore: ${out.outcome}; maintenance ${out.window.maintenanceMs} ms; ${out.responses503.total} × 503 ` +
      `(${out.responses503.withRetryAfter} with Retry-After); ${out.otherFailures} other failures`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

const cleanup = benchCleanup(
  [
    ['stopping the pg_stat_activity poller', () => poller],
    ['stopping the worker', () => worker],
  ],
  () => stackStarted,
);

function caseSummary(rows: Awaited<ReturnType<typeof switchBack>>[]) {
  const ms = rows.map((r) => r.toFullTrafficMs).filter((x): x is number => x !== null);
  return {
    runs: rows.length,
    succeeded: rows.filter((r) => r.outcome === 'succeeded').length,
    adopted: rows.filter((r) => r.adopted).length,
    toFullTrafficMs: {
      min: ms.length ? Math.min(...ms) : null,
      median: round(median(ms), 1),
      max: ms.length ? Math.max(...ms) : null,
    },
    failed: rows.reduce((n, r) => n + r.load.failed, 0),
    requests: rows.reduce((n, r) => n + r.load.requests, 0),
    requestsDuringRollbacks: rows.reduce((n, r) => n + r.requestsDuringRollback, 0),
  };
}

async function renderOnly(file: string) {
  const results = JSON.parse(readFileSync(file, 'utf8')) as Results;
  const out = path.resolve(args.out!);
  await writeResults(out, 'rollback', results, renderMarkdown(results));
  console.log(`re-rendered ${path.relative(process.cwd(), path.join(out, 'rollback.md'))} from ${file}`);
}

async function main() {
  if (args['render-from']) return renderOnly(args['render-from']);
  const loadAvgBefore = os.loadavg();
  const startedAt = new Date();
  console.log(
    `rollback benchmark: ${settings.rate} req/s over ${settings.connections} connections in ${settings.slices} ` +
      `staggered autocannon instances; ${settings.repeat} × 2 switch-back rollbacks; ` +
      (settings.scale > 0 ? `restore of a pgbench -s ${settings.scale} database` : 'no restore run (--scale 0)'),
  );
  stackStarted = true; // set first: a stack that fails half-way up is taken down too
  await startTestStack();
  const taskQueue = uniqueName('bench-rollback');
  worker = await startWorker(taskQueue);

  const switches: Awaited<ReturnType<typeof switchBack>>[] = [];
  console.log('1+2: switch back to v1 under load (v1, v2 deployed; v1 still running or stopped)');
  for (let run = 1; run <= settings.repeat; run++) {
    for (const which of ['still-running', 'started-anew'] as const)
      switches.push(await switchBack(taskQueue, which, run));
  }
  let restore: Awaited<ReturnType<typeof restorePath>> | null = null;
  if (settings.scale > 0) {
    console.log(`3: database restore path (pgbench scale ${settings.scale})`);
    restore = await restorePath(taskQueue);
  }

  const running = caseSummary(switches.filter((r) => r.case === 'still-running'));
  const anew = caseSummary(switches.filter((r) => r.case === 'started-anew'));
  const results = {
    benchmark: 'rollback',
    date: startedAt.toISOString(),
    command,
    node: process.version,
    machine: machineInfo(loadAvgBefore),
    tools: await toolVersions(),
    git: gitState(),
    settings: { ...settings, switchGoalMs: SWITCH_GOAL_MS },
    switchBack: { stillRunning: running, startedAnew: anew, runs: switches },
    restore,
    goals: {
      switchUnder2s: {
        goal: `previous release still running: 100% on it within ${SWITCH_GOAL_MS} ms of the rollback workflow's start (every run)`,
        maxMs: running.toFullTrafficMs.max,
        medianMs: running.toFullTrafficMs.median,
        met:
          running.adopted === running.runs &&
          running.succeeded === running.runs &&
          running.toFullTrafficMs.max !== null &&
          running.toFullTrafficMs.max < SWITCH_GOAL_MS,
      },
      zeroFailedRequests: {
        goal: '0 failed requests (non-2xx + errors + timeouts) during the switch-back rollbacks, both cases',
        failed: running.failed + anew.failed,
        requests: running.requests + anew.requests,
        met: running.failed + anew.failed === 0 && running.succeeded + anew.succeeded === switches.length,
      },
      ...(restore
        ? {
            restore503sCarryRetryAfter: {
              goal: 'during the restore, only HAProxy 503s with Retry-After, and only inside the maintenance window',
              responses503: restore.responses503.total,
              withRetryAfter: restore.responses503.withRetryAfter,
              outsideTheWindow: restore.responses503.outsideTheWindow,
              otherFailures: restore.otherFailures,
              met:
                restore.outcome === 'succeeded' &&
                restore.responses503.withRetryAfter === restore.responses503.total &&
                restore.responses503.outsideTheWindow === 0 &&
                restore.otherFailures === 0,
            },
          }
        : {}),
    },
  };
  const out = path.resolve(args.out!);
  const md = renderMarkdown(results);
  await writeResults(out, 'rollback', results, md);
  console.log(`\n${md}`);
  console.log(`wrote ${path.relative(process.cwd(), path.join(out, 'rollback.json'))} and rollback.md`);
}

type Results = {
  date: string;
  command: string;
  node: string;
  machine: ReturnType<typeof machineInfo>;
  tools: Awaited<ReturnType<typeof toolVersions>>;
  git: ReturnType<typeof gitState>;
  settings: typeof settings;
  switchBack: {
    stillRunning: ReturnType<typeof caseSummary>;
    startedAnew: ReturnType<typeof caseSummary>;
    runs: Awaited<ReturnType<typeof switchBack>>[];
  };
  restore: Awaited<ReturnType<typeof restorePath>> | null;
  goals: Record<string, { goal: string; met: boolean } & Record<string, unknown>>;
};

function renderMarkdown(r: Results): string {
  const s = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(x / 1000).toFixed(1)} s`);
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const sb = r.switchBack;
  const medianRun = (which: SwitchCase) => {
    const rows = sb.runs.filter((x) => x.case === which && x.toFullTrafficMs !== null);
    const sorted = [...rows].sort((a, b) => a.toFullTrafficMs! - b.toFullTrafficMs!);
    return sorted[Math.floor((sorted.length - 1) / 2)];
  };
  const stepTable = (which: SwitchCase) => {
    const run = medianRun(which);
    if (!run) return ['(no run)'];
    return [
      `${which}, run ${run.run} (${run.toFullTrafficMs} ms; ${run.untilFullTraffic?.activities} activities, ` +
        `${run.untilFullTraffic?.inActivitiesMs} ms inside them, ${run.untilFullTraffic?.overheadMs} ms between ` +
        `them of which ${run.untilFullTraffic?.dispatchMs} ms task-queue dispatch; median gap ${run.untilFullTraffic?.gapMedianMs} ms):`,
      '',
      '| step | scheduled | started | ended |',
      '| --- | ---: | ---: | ---: |',
      ...run.steps.map((x) => `| ${x.step} | ${x.scheduledMs} | ${x.startedMs} | ${x.endedMs} |`),
    ];
  };
  const g = r.goals;
  const rs = r.restore;
  const lines = [
    '# Rollback benchmark',
    '',
    `${r.date} — \`${r.command}\` — Node ${r.node} — ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ${r.machine.os}`,
    `— ${r.tools.haproxy ?? 'HAProxy ?'}, ${r.tools.postgres ?? 'PostgreSQL ?'}, Temporal CLI ${r.tools.temporalCli ?? '?'} — ` +
      `commit ${r.git.commit?.slice(0, 10) ?? '?'}${r.git.uncommittedChangesIn.length ? ` (uncommitted changes in ${r.git.uncommittedChangesIn.length} files of src/ test/ examples/, listed in rollback.json)` : ''}.`,
    '',
    `Load: autocannon, ${r.settings.rate} req/s fixed rate over ${r.settings.connections} connections ` +
      `(${r.settings.slices} instances started ${1000 / r.settings.slices} ms apart), GET /api/items on the service's ` +
      `HAProxy frontend, from ${r.settings.leadMs / 1000} s before the rollback starts to ${r.settings.tailMs / 1000} s after it ends. ` +
      'One machine: the load generator, HAProxy, the releases, PostgreSQL, Temporal and the worker share its cores.',
    '',
    '## Goals',
    '',
    '| goal | figure | |',
    '| --- | --- | --- |',
    `| previous release still running: 100% on it < 2 s after the rollback starts | median ${ms(sb.stillRunning.toFullTrafficMs.median)}, max ${ms(sb.stillRunning.toFullTrafficMs.max)} over ${sb.stillRunning.runs} runs (${sb.stillRunning.adopted} adopted the running release) | ${met(g.switchUnder2s?.met)} |`,
    `| 0 failed requests during the switch-back rollbacks | ${sb.stillRunning.failed + sb.startedAnew.failed} failed of ${sb.stillRunning.requests + sb.startedAnew.requests} (${sb.stillRunning.requestsDuringRollbacks + sb.startedAnew.requestsDuringRollbacks} while the rollbacks ran) | ${met(g.zeroFailedRequests?.met)} |`,
    ...(rs
      ? [
          `| restore: only 503 + Retry-After, only while in maintenance | ${rs.responses503.total} × 503 from HAProxy, ${rs.responses503.withRetryAfter} with Retry-After, ${rs.responses503.outsideTheWindow} outside the window; ${rs.otherFailures} other failures | ${met(g.restore503sCarryRetryAfter?.met)} |`,
        ]
      : []),
    '',
    '## 1 + 2. Switch back to the previous release (no database restore)',
    '',
    'Each run: a new service, v1 deployed, then v2 (whose finalize step stops v1); **still-running**: v1 started again ' +
      'through the release runner and ready before the rollback (the rollback adopts it, `findRelease`); ' +
      '**started-anew**: the rollback starts v1 itself. Time: `WorkflowExecutionStarted` → `ActivityTaskCompleted` of ' +
      'the `setTraffic` that puts v1 at 100% (client: from just before `workflow.start()`).',
    '',
    '| case | run | outcome | v1 | **to 100%** | from the client | failed / requests | p50 / p99 | HAProxy retries / redispatches / conn. errors | machine CPU busy |',
    '| --- | ---: | --- | --- | ---: | ---: | ---: | --- | --- | ---: |',
    ...sb.runs.map(
      (x) =>
        `| ${x.case} | ${x.run} | ${x.outcome} | ${x.adopted ? 'adopted' : 'started'} | **${ms(x.toFullTrafficMs)}** | ${ms(x.toFullTrafficFromClientMs)} | ${x.load.failed} / ${x.load.requests} | ${x.load.latencyMs.p50} / ${x.load.latencyMs.p99} ms | ${proxy(x.haproxy)} | ${pct(x.machineCpuBusy)} |`,
    ),
    '',
    '| case | min | median | max |',
    '| --- | ---: | ---: | ---: |',
    `| still-running | ${ms(sb.stillRunning.toFullTrafficMs.min)} | ${ms(sb.stillRunning.toFullTrafficMs.median)} | ${ms(sb.stillRunning.toFullTrafficMs.max)} |`,
    `| started-anew | ${ms(sb.startedAnew.toFullTrafficMs.min)} | ${ms(sb.startedAnew.toFullTrafficMs.median)} | ${ms(sb.startedAnew.toFullTrafficMs.max)} |`,
    '',
    'Steps of the median run of each case, ms after the workflow started:',
    '',
    ...stepTable('still-running'),
    '',
    ...stepTable('started-anew'),
    '',
    'Failed requests of the switch-back runs:',
    '',
    ...(sb.runs.some((x) => x.failures.length > 0)
      ? sb.runs.flatMap((x) => (x.failures.length ? [`${x.case} #${x.run}:`, '', ...failureRows(x.failures), ''] : []))
      : ['(none)']),
    '',
  ];
  if (rs) {
    const w = rs.window;
    lines.push(
      `## 3. Database restore path (pgbench scale ${rs.data.pgbenchScale})`,
      '',
      `The service's database held ${mib(rs.data.liveDatabaseBytes)} (pg_database_size; \`pgbench -i -s ${rs.data.pgbenchScale}\` took ` +
        `${s(rs.data.generateMs)}) when v2's deploy took its pre-migration snapshot (${s(rs.data.preMigrationSnapshotMs)}): ` +
        `${rs.data.snapshotRows} rows, a ${mib(rs.data.snapshotDumpBytes)} pg_dump -Fc archive. The rollback to v1 restores it ` +
        `(\`restoreSnapshotId\`, \`toVersion: v1\`); the bench approves the restore-database gate as soon as it waits ` +
        `(${ms(w.approvalWaitMs)} from the end of the inspection to the safety snapshot). Outcome: ${rs.outcome}` +
        `${rs.reason ? ` (${rs.reason})` : ''}; restored database ${mib(rs.data.restoredDatabaseBytes)}.`,
      '',
      `**Maintenance window (setMaintenance on → off, completions): ${ms(w.maintenanceMs)}** = ${ms(w.untilSwapMs)} until the swap ` +
        `+ ${ms(w.afterSwapMs)} after it (release start, health gate, smoke check, traffic). The workflow's own ` +
        `\`state.restore.maintenanceMs\` (maintenance on → swapped) is ${ms(rs.state?.maintenanceMs)}. ` +
        `Whole rollback: ${s(w.workflowMs)}; workflow start → v1 at 100%: ${s(w.workflowStartToFullTrafficMs)}.`,
      '',
      'Phases (ms after maintenance went on; negative = before):',
      '',
      '| step | what | scheduled | started (last attempt) | ended | attempts | **duration** (last attempt) |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rs.phases.map((p) =>
        'durationMs' in p
          ? `| ${p.step} | ${p.what} | ${p.scheduledMs} | ${p.startedMs} | ${p.endedMs} | ${p.attempt} | **${ms(p.durationMs)}** |`
          : `| ${p.step} | ${p.what} | | | | | not run |`,
      ),
      '',
      ...rs.phases.flatMap((p) =>
        'attempt' in p && p.attempt > 1
          ? [
              `**${p.step} took ${p.attempt} attempts**: scheduled at ${p.scheduledMs}, last attempt started at ` +
                `${p.startedMs}, so ${ms(round(p.startedMs! - p.scheduledMs!, 1))} went to attempts that did not ` +
                'complete (the history records only the last attempt; the PostgreSQL statements below show the ' +
                'earlier ones).',
              '',
            ]
          : [],
      ),
      `**503 answers during the restore rollback:** ${rs.responses503.total} from HAProxy (no release answered), ` +
        `${rs.responses503.withRetryAfter} with Retry-After (${Object.entries(rs.responses503.retryAfterValues)
          .map(([v, n]) => `${n} × \`Retry-After: ${v}\``)
          .join(', ')}), first at ${ms(rs.responses503.firstAtMs)} and last at ${ms(rs.responses503.lastAtMs)} after ` +
        `maintenance on; ${rs.responses503.outsideTheWindow} outside the window. Other failures: ${rs.otherFailures}. ` +
        `Load: ${rs.load.requests} requests, ${rs.load.achievedRate} req/s over ${rs.load.seconds} s, p50 / p99 ` +
        `${rs.load.latencyMs.p50} / ${rs.load.latencyMs.p99} ms; HAProxy retries / redispatches / connection errors ` +
        `${proxy(rs.haproxy)}; machine CPU busy ${pct(rs.machineCpuBusy)}.` +
        (rs.failuresSeen > rs.failuresKept
          ? ` (Only the first ${rs.failuresKept} of ${rs.failuresSeen} failures were kept with their time.)`
          : ''),
      '',
      ...failureRows(rs.failures),
      '',
      `What PostgreSQL ran for ${POLL_MS} ms or more (pg_stat_activity polled every ${POLL_MS} ms: start exact, end within ${POLL_MS} ms), ms after maintenance went on:`,
      '',
      '| statement | database | start | last seen | seen for |',
      '| --- | --- | ---: | ---: | ---: |',
      ...rs.postgres.map((p) => `| ${p.kind} | ${p.database} | ${p.startMs} | ${p.lastSeenMs} | ${p.seenForMs} ms |`),
      '',
    );
  }
  return lines.join('\n');
}

runBench(main, cleanup, 'the load, pgbench, the worker, the releases and the stack');
