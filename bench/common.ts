/**
 * What the benchmarks share besides the load generator (load.ts) and the history reading (history.ts): the
 * machine, tool and git context that goes into every result file, CPU readings, HAProxy's counters of a route,
 * measuring a workflow under load, PostgreSQL tools and queries, rounding, the markdown cells of the results,
 * stopping what a bench started, and writing the results as `npm run format` would leave them.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { createHaproxyRuntime } from '../src/platforms/single-host/haproxy-runtime';
import { haproxyRouteNames } from '../src/platforms/single-host/haproxy-route-config';
import { parseStatCsv } from '../src/platforms/single-host/haproxy-stats';
import { libpqEnv } from '../src/pg/client-tools';
import { haproxyPaths } from '../src/platforms/single-host/haproxy-control';
import { databaseUrl } from '../src/stack/postgres';
import { postgresBinDir, postgresClientBinDir } from '../src/pg/bin-dir';
import { findTemporalCli, haproxyTool, postgresTool } from '../src/stack/tools';
import { stopTestStack, testStack } from '../test/harness';
import { queryDb, runner } from '../test/workflows/deploy-fixture';
import { stepAt, timelineOf, type HistoryTimeline } from './history';
import { startAutocannon, type LoadFailure, type LoadFigures, type RunningLoad } from './load';

export const round = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits;

/** Numbers rounded to 2 decimals, all the way down. */
export function roundDeep<T>(x: T): T {
  if (typeof x === 'number') return round(x, 2) as T;
  if (Array.isArray(x)) return x.map(roundDeep) as T;
  if (x && typeof x === 'object') {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, roundDeep(v)])) as T;
  }
  return x;
}

export function countBy(xs: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const x of xs) counts[x] = (counts[x] ?? 0) + 1;
  return counts;
}

/** The median, NaN for none (which `round` turns into null). */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Reads integer options from parseArgs' values: `int(name, min = 1)` throws `--<name> must be <must(min)>, got …`
 * for anything else.
 */
export function intArgs<K extends string>(
  args: Partial<Record<K, unknown>>,
  must = (min: number) => `an integer ≥ ${min}`,
): (name: K, min?: number) => number {
  return (name, min = 1) => {
    const n = Number(args[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be ${must(min)}, got ${args[name]}`);
    return n;
  };
}

/**
 * Waits for a workflow's result; terminates the workflow and throws `timeoutMessage` when it takes longer than `ms`.
 */
export async function resultWithin<H extends WorkflowHandle>(
  handle: H,
  ms: number,
  what: string,
  timeoutMessage = `${what} did not finish within ${ms / 1000} s`,
): Promise<Awaited<ReturnType<H['result']>>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(timeoutMessage)), ms);
  });
  try {
    return (await Promise.race([handle.result(), late])) as Awaited<ReturnType<H['result']>>;
  } catch (err) {
    await handle.terminate('the benchmark gave up on it').catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Polls a release's readiness directly (not through HAProxy) every 100 ms; throws `notReady` after `ms`. */
export async function waitReady(r: { host: string; port: number }, ms: number, notReady: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await fetch(`http://${r.host}:${r.port}/health/ready`, { signal: AbortSignal.timeout(1_000) })
      .then((res) => res.ok)
      .catch(() => false);
    if (ok) return;
    await sleep(100);
  }
  throw new Error(notReady);
}

/** The command line that ran the bench, as `npm run <script> -- …` when run through npm. */
export function benchCommand(script: string, file: string): string {
  return process.env.npm_lifecycle_event === script
    ? `npm run ${script}${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
    : [`npx tsx ${file}`, ...process.argv.slice(2)].join(' ');
}

/** The machine's CPU time counters (the `cpu` line of /proc/stat), or undefined off Linux. */
export function cpuTimes(): { idle: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    return { idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
  } catch {
    return undefined;
  }
}

/** The fraction of all cores' time that was busy between two readings (everything on the machine, not only us). */
export function cpuBusy(a: ReturnType<typeof cpuTimes>, b: ReturnType<typeof cpuTimes>): number | null {
  if (!a || !b || b.total <= a.total) return null;
  return round(1 - (b.idle - a.idle) / (b.total - a.total), 2);
}

export function machineInfo(loadAvgBefore: number[]) {
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAvgBefore: loadAvgBefore.map((x) => round(x, 2)),
    loadAvgAfter: os.loadavg().map((x) => round(x, 2)),
    note: 'the load generator, HAProxy, the release processes, PostgreSQL, Temporal and the worker share these cores',
  };
}

export function toolVersions() {
  return Promise.all([haproxyTool(), postgresTool(), findTemporalCli()]).then(([h, p, t]) => ({
    haproxy: h?.version.split(' - ')[0] ?? null,
    postgres: p?.version ?? null,
    temporalCli: t?.version ?? null,
  }));
}

export function gitState() {
  try {
    const git = (...a: string[]) =>
      execFileSync('git', a, { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'examples', 'test');
    return {
      commit: git('rev-parse', 'HEAD'),
      uncommittedChangesIn: dirty ? dirty.split('\n').map((l) => l.trim()) : [],
    };
  } catch {
    return { commit: null, uncommittedChangesIn: [] };
  }
}

/**
 * HAProxy's own counters of the route's backend and of each server that took traffic, since the route's last reload
 * (the service's first deploy): retried (wretr) and redispatched (wredis) attempts, connection and response errors,
 * 5xx answers. Zero failed requests with retries > 0 would mean that HAProxy hid failures from the client.
 */
async function haproxyCounters(plan: ResolvedService) {
  const names = haproxyRouteNames({ service: plan.service, environment: plan.environment });
  const runtime = createHaproxyRuntime(haproxyPaths(testStack().settings.home).adminSocket);
  const rows = parseStatCsv(await runtime.command(`show stat ${names.backend} 6 -1`));
  const pick = (r: Record<string, string>) => ({
    name: r.svname,
    responses: ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'].reduce(
      (n, k) => n + Number(r[k] || 0),
      0,
    ),
    hrsp_5xx: Number(r.hrsp_5xx || 0),
    retries: Number(r.wretr || 0),
    redispatches: Number(r.wredis || 0),
    connectionErrors: Number(r.econ || 0),
    responseErrors: Number(r.eresp || 0),
  });
  return rows
    .filter((r) => r.pxname === names.backend && (r.svname === 'BACKEND' || Number(r.stot || 0) > 0))
    .map(pick);
}

export function loadSummary(f: LoadFigures) {
  return {
    url: f.url,
    rate: f.rate,
    connections: f.connections,
    slices: f.slices,
    seconds: round(f.seconds, 1),
    achievedRate: round(f.achievedRate, 1),
    requests: f.requests,
    non2xx: f.non2xx,
    errors: f.errors,
    timeouts: f.timeouts,
    failed: f.failed,
    latencyMs: {
      p50: round(f.latencyMs.p50, 2),
      p95: round(f.latencyMs.p95, 2),
      p99: round(f.latencyMs.p99, 2),
      max: round(f.latencyMs.max, 2),
    },
    byStatus: f.byStatus,
    byVersion: f.byVersion,
    errorsByCode: f.errorsByCode,
  };
}

/** The load a bench measures a workflow under. */
interface LoadSettings {
  rate: number;
  connections: number;
  slices: number;
  leadMs: number;
  tailMs: number;
  requestTimeoutSeconds: number;
}

/** The load under way, for the cleanup to kill. */
let runningLoad: RunningLoad | undefined;

/**
 * Measures one workflow under a fixed-rate autocannon load on the plan's stable frontend: the load starts, runs
 * `leadMs`, then `start` starts the workflow (and may drive it, e.g. approve a gate) and the workflow has `budgetMs`
 * to finish (see resultWithin); the load runs on `tailMs` after it, `beforeStop` runs, and the load stops. Returns
 * the workflow's result and history, the load's figures, the machine's CPU busy fraction over the load and
 * HAProxy's counters.
 */
export async function measureUnderLoad<H extends WorkflowHandle>(o: {
  plan: ResolvedService;
  settings: LoadSettings;
  budgetMs: number;
  /** How many failures the load keeps with their time. */
  keepFailures: number;
  start: () => Promise<H>;
  /** What the workflow is, for resultWithin's message. */
  what: string;
  beforeStop?: () => Promise<void>;
}) {
  const { settings } = o;
  const load = await startAutocannon({
    url: `http://127.0.0.1:${o.plan.listen.port}/api/items`,
    rate: settings.rate,
    connections: settings.connections,
    slices: settings.slices,
    maxSeconds: Math.ceil((settings.leadMs + o.budgetMs + settings.tailMs) / 1000),
    timeoutSeconds: settings.requestTimeoutSeconds,
    keepFailures: o.keepFailures,
  });
  runningLoad = load;
  const cpuBefore = cpuTimes();
  await sleep(settings.leadMs);
  const handle = await o.start();
  const result = await resultWithin(handle, o.budgetMs, o.what);
  await sleep(settings.tailMs);
  await o.beforeStop?.();
  const figures = await load.stop();
  runningLoad = undefined;
  const machineCpuBusy = cpuBusy(cpuBefore, cpuTimes());
  const haproxy = await haproxyCounters(o.plan);
  const timeline = timelineOf(await handle.fetchHistory());
  return { handle, result, figures, machineCpuBusy, haproxy, timeline };
}

/** Failed requests of one kind during one step of a workflow, in ms after the workflow started. */
export interface FailureGroup {
  what: string;
  during: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

/**
 * Where each failure happened, relative to the workflow's start and by the step under way; `non2xx` names an
 * answer that was not 2xx.
 */
export function failureReport(
  failures: LoadFailure[],
  t: HistoryTimeline,
  non2xx = (f: LoadFailure) => `${f.status} from ${f.version}`,
): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const f of failures) {
    const what = f.kind === 'non-2xx' ? non2xx(f) : `${f.kind} ${f.code}`;
    const during = stepAt(t, f.atMs);
    const key = `${what}|${during}`;
    const at = Math.round(f.atMs - t.startMs);
    const g = groups.get(key) ?? { what, during, count: 0, firstMs: at, lastMs: at };
    g.count++;
    g.lastMs = at;
    groups.set(key, g);
  }
  return [...groups.values()];
}

// Markdown cells and tables of the results.
export const met = (x: boolean | undefined) => (x === undefined ? 'n/a' : x ? '**met**' : '**missed**');
export const pct = (x: number | null) => (x === null ? 'n/a' : `${Math.round(x * 100)}%`);
export const ms = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${x} ms`);
/** HAProxy's retries / redispatches / connection errors of the route's backend. */
export const proxy = (
  rows: Array<{ name?: string; retries: number; redispatches: number; connectionErrors: number }>,
) => {
  const b = rows.find((x) => x.name === 'BACKEND');
  return b ? `${b.retries} / ${b.redispatches} / ${b.connectionErrors}` : 'n/a';
};
export const failureRows = (rows: FailureGroup[]) =>
  rows.length === 0
    ? ['(none)']
    : [
        '| failure | during | count | first / last (ms after the workflow started) |',
        '| --- | --- | ---: | --- |',
        ...rows.map((f) => `| ${f.what} | ${f.during} | ${f.count} | ${f.firstMs} / ${f.lastMs} |`),
      ];

/** A PostgreSQL program: pgbench from the server's binaries, the others from the client's (newest) when found. */
export const pgBin = (tool: string) => {
  const dir = tool === 'pgbench' ? postgresBinDir() : (postgresClientBinDir() ?? postgresBinDir());
  if (!dir) throw new Error(`PostgreSQL binaries not found (${tool})`);
  return path.join(dir, tool);
};

/** The PostgreSQL tool under way, for the cleanup to kill. */
let runningTool: ChildProcess | undefined;

/**
 * Runs a PostgreSQL tool against `database` of the test stack; resolves with its stdout, rejects with
 * `<what> failed: <stderr>`.
 */
export function pgTool(name: string, argv: string[], database: string, what = `${name} ${argv.join(' ')}`) {
  return new Promise<string>((resolve, reject) => {
    runningTool = execFile(
      pgBin(name),
      argv,
      {
        env: { ...libpqEnv(databaseUrl(testStack().settings, database)), PGAPPNAME: `bench-${name}` },
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        runningTool = undefined;
        if (err) reject(new Error(`${what} failed: ${stderr || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/** pg_database_size of a database of the test stack. */
export const databaseBytes = async (name: string) =>
  Number((await queryDb<{ b: string }>('postgres', 'SELECT pg_database_size($1) AS b', [name]))[0]?.b ?? NaN);

/** Stops every release process the bench started, before the stack, so that none outlives a `down` that fails. */
async function stopReleases(): Promise<void> {
  const dir = path.join(testStack().settings.home, 'releases');
  if (!existsSync(dir)) return;
  for (const group of readdirSync(dir)) {
    for (const id of readdirSync(path.join(dir, group))) {
      const file = path.join(dir, group, id, 'release.json');
      if (!existsSync(file)) continue;
      const r = JSON.parse(readFileSync(file, 'utf8')) as { service: string; environment: string; releaseId: string };
      await runner().stop(r.service, r.environment, r.releaseId, 2_000);
    }
  }
}

/**
 * Writes `<name>.json` and `<name>.md` into `out`, formatted as `npm run format` would leave them, so that
 * formatting the repository does not rewrite results.
 */
export async function writeResults(out: string, name: string, results: unknown, md: string): Promise<void> {
  mkdirSync(out, { recursive: true });
  const prettier = await import('prettier');
  const style = (await prettier.resolveConfig(path.join(out, `${name}.md`))) ?? {};
  writeFileSync(
    path.join(out, `${name}.json`),
    await prettier.format(JSON.stringify(results), { ...style, parser: 'json' }),
  );
  writeFileSync(path.join(out, `${name}.md`), await prettier.format(md, { ...style, parser: 'markdown' }));
}

/**
 * A bench's cleanup, which runs once however often it is called: kills the load and the PostgreSQL tool under
 * way, stops each of `stoppers` that is there (in order: a poller, the worker), then, once the stack was started
 * (always when `stackStarted` is not given), the release processes and the stack. A step that fails is reported and
 * the next one runs.
 */
export function benchCleanup(
  stoppers: Array<[what: string, get: () => { stop(): Promise<unknown> } | undefined]>,
  stackStarted: () => boolean = () => true,
): () => Promise<void> {
  let cleaning: Promise<void> | undefined;
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup: ${what} failed: ${(err as Error).message}`);
    }
  };
  return () => {
    cleaning ??= (async () => {
      runningLoad?.kill();
      runningTool?.kill('SIGTERM');
      for (const [what, get] of stoppers) {
        const s = get();
        if (s) await step(what, () => s.stop());
      }
      if (stackStarted()) {
        await step('stopping the releases', stopReleases);
        await step('stopping the stack', stopTestStack);
      }
    })();
    return cleaning;
  };
}

/**
 * Runs a benchmark's `main`, then always its `cleanup` (also on Ctrl-C, saying what it stops), and exits
 * with 1 when `main` failed: no server, release or load process outlives a bench.
 */
export function runBench(main: () => Promise<void>, cleanup: () => Promise<void>, stopping: string): void {
  // The SDK's own INFO logs would drown the report (as in test/hooks.ts).
  Runtime.install({ logger: new DefaultLogger('WARN') });
  process.once('SIGINT', () => {
    console.error(`interrupted: stopping ${stopping}`);
    void cleanup().finally(() => process.exit(130));
  });
  main()
    .then(
      () => cleanup(),
      async (err) => {
        console.error(err);
        process.exitCode = 1;
        await cleanup();
      },
    )
    .finally(() => process.exit());
}
