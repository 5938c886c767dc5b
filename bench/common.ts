/**
 * What the benchmarks share besides the load (load.ts) and the history reading (history.ts): the machine, tool and
 * git context that goes into every result file, CPU readings, HAProxy's counters of a route, rounding, stopping the
 * release processes a bench started, and writing the results as `npm run format` would leave them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { DeployResult } from '../src/shared/deploy';
import type { SingleHostService as ServicePlan } from '../src/shared/service-plan';
import { createHaproxyRuntime } from '../src/platforms/single-host/haproxy-runtime';
import { haproxyRouteNames, parseStatCsv } from '../src/platforms/single-host/haproxy-router';
import { haproxyPaths } from '../src/stack/haproxy';
import { findTemporalCli, haproxyTool, postgresTool } from '../src/stack/tools';
import { testStack } from '../test/harness';
import { runner } from '../test/workflows/deploy-fixture';
import type { LoadFigures } from './load';

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

/** Waits for a deploy's (or rollback's) result; terminates it and throws when it takes longer than `ms`. */
export async function resultWithin(handle: WorkflowHandle, ms: number, what: string): Promise<DeployResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return (await Promise.race([handle.result(), late])) as DeployResult;
  } catch (err) {
    await handle.terminate('the benchmark gave up on it').catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
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
export async function haproxyCounters(plan: ServicePlan) {
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

/** Stops every release process the bench started, before the stack, so that none outlives a `down` that fails. */
export async function stopReleases(): Promise<void> {
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
 * Runs a benchmark's `main`, then always its `cleanup` (also on Ctrl-C, saying what it stops), and exits
 * with 1 when `main` failed: no server, release or load process outlives a bench.
 */
export function runBench(main: () => Promise<void>, cleanup: () => Promise<void>, stopping: string): void {
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
