import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { withTransientFailures, type ChaosLog } from './helpers/chaos';
import type { WorkerConfig } from '../src/config';
import { databaseUrl, removeCluster } from '../src/stack/postgres';
import { haproxyPaths } from '../src/platforms/single-host/haproxy-control';
import { freePort } from '../src/system/processes';
import { openPrivateLog } from '../src/system/private-files';
import { embeddedConnection, resolveStackSettings, type StackSettings } from '../src/stack/settings';
import { down, up } from '../src/stack/stack';
import { findTemporalCli } from '../src/stack/tools';
import { embeddedProfileEnv } from '../src/stack/worker-process';
import { connectClient, loadTemporalConnection, type TemporalConnection } from '../src/temporal-connection';
import { createRunbookWorker, PAYLOAD_CONVERTER_PATH } from '../src/worker';

/**
 * The real servers that the tests share: PostgreSQL, HAProxy and the Temporal dev server (or, with
 * RUNBOOK_TEST_TEMPORAL_SERVER=cluster, the Temporal server on PostgreSQL of `runbook up --cluster`), started once per
 * run on free ports in a temporary folder (so a developer's own `runbook up` stack is untouched), or the
 * Temporal server named by TEMPORAL_ADDRESS.
 */
export interface TestStack {
  settings: StackSettings;
  temporalAddress: string;
  namespace: string;
  /** How the tests' clients and workers connect: the test stack's dev server, or TEMPORAL_ADDRESS's (a profile). */
  connection: TemporalConnection;
  /** Whether Temporal is the operator's (TEMPORAL_ADDRESS) rather than the test stack's dev server. */
  externalTemporal: boolean;
  client: Client;
  /** The config of an in-process worker on `taskQueue`; its runbook config is runbookConfigFor(taskQueue). */
  workerConfig(taskQueue: string): WorkerConfig;
}

let current: TestStack | undefined;
let metricsUrl: string | undefined;

/** The Prometheus endpoint of the test run's in-process workers (set by test/hooks.ts). */
export function testMetricsUrl(): string {
  if (!metricsUrl) throw new Error('metrics are off: run the tests through mocha (test/hooks.ts)');
  return metricsUrl;
}
export function setMetricsUrl(url: string): void {
  metricsUrl = url;
}
let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
let ownsHome = false;

export function testStack(): TestStack {
  if (!current) throw new Error('the test stack is not started: run the tests through mocha (test/hooks.ts)');
  return current;
}

export async function startTestStack(): Promise<TestStack> {
  const externalTemporal = process.env.TEMPORAL_ADDRESS;
  const home = process.env.RUNBOOK_TEST_HOME ?? mkdtempSync(path.join(os.tmpdir(), 'runbook-test-'));
  ownsHome = !process.env.RUNBOOK_TEST_HOME;
  const settings = resolveStackSettings(
    {},
    {
      home,
      temporalPort: await freePort(),
      uiPort: await freePort(),
      postgresPort: await freePort(),
      haproxyStatsPort: await freePort(),
      metricsPort: await freePort(),
      ...(process.env.DATABASE_URL ? { externalDatabaseUrl: process.env.DATABASE_URL } : {}),
      // npm run test:cluster: the Temporal server built from its Go module, on the stack's PostgreSQL
      ...(process.env.RUNBOOK_TEST_TEMPORAL_SERVER === 'cluster' ? { temporalServer: 'cluster' as const } : {}),
    },
  );
  const started = Date.now();
  try {
    await up(settings, (line) => process.env.RUNBOOK_TEST_VERBOSE && console.log(`    [stack] ${line}`), {
      worker: false,
      temporal: !externalTemporal,
    });
  } catch (err) {
    // what did start (PostgreSQL, HAProxy, some of the cluster's processes) would outlive the run: stopTestStack
    // has nothing to stop yet
    await down(settings, () => {}).catch(() => {});
    if (ownsHome) {
      removeCluster(home);
      rmSync(home, { recursive: true, force: true });
    }
    throw err;
  }
  // An external server is reached as the CLI would (TEMPORAL_* variables, a profile: TLS, API keys work).
  const connection = externalTemporal
    ? loadTemporalConnection(process.env, { address: externalTemporal, namespace: settings.namespace, what: 'tests' })
    : embeddedConnection(settings);
  const { address, namespace } = connection;
  const client = await connectClient(connection);
  console.log(
    `    test stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: Temporal ${address}, data ${home}`,
  );
  current = {
    settings,
    temporalAddress: address,
    namespace,
    connection,
    externalTemporal: !!externalTemporal,
    client,
    workerConfig: (taskQueue) => ({
      temporal: connection,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: databaseUrl(settings),
      HAPROXY_SOCKET: haproxyPaths(settings.home).adminSocket,
      RUNBOOK_HOME: settings.home,
      RUNBOOK_MAX_ACTIVITIES: 20,
      // the SDK's one workflow thread: a test worker runs a few workflows (the benchmarks pass their own)
      RUNBOOK_WORKFLOW_THREADS: 1,
      RUNBOOK_SERVICE_ROLES: 'on',
      ...(process.env.RUNBOOK_RELEASE_USER ? { RUNBOOK_RELEASE_USER: process.env.RUNBOOK_RELEASE_USER } : {}),
      RUNBOOK_METRICS_HOST: '127.0.0.1',
      RUNBOOK_LOG_LEVEL: 'WARN',
      RUNBOOK_CONFIG: runbookConfigFor(taskQueue, settings.home),
    }),
  };
  return current;
}

export async function stopTestStack(): Promise<void> {
  if (!current) return;
  await current.client.connection.close();
  await down(current.settings, () => {});
  if (ownsHome) {
    removeCluster(current.settings.home);
    rmSync(current.settings.home, { recursive: true, force: true });
  }
  current = undefined;
}

/** The workflow code, bundled once per test run. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../src/workflows'),
    payloadConverterPath: PAYLOAD_CONVERTER_PATH,
    logger: quietLogger,
  });
  return bundle;
}

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} };

/**
 * The runbook config that the test workers of `taskQueue` trust (they resolve every plan from it): one file per task
 * queue in the test stack's folder. The fixtures put each plan a test composes into it before they start a runbook
 * (test/helpers/worker-config.ts), as a team puts a service into its reviewed runbook.yaml; a test may instead give
 * its worker a file of its own (`useWorker(prefix, () => ({ runbookConfig }))`).
 */
export function runbookConfigFor(taskQueue: string, home = testStack().settings.home): string {
  return path.join(home, 'runbook-configs', `${taskQueue}.yaml`);
}

/** A unique task queue (and id prefix) per test, so tests never pick up each other's tasks. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** What an in-process worker may take besides the test stack's config (see createRunbookWorker). */
type WorkerExtras = Omit<
  NonNullable<Parameters<typeof createRunbookWorker>[1]>,
  'workflowBundle' | 'shutdownGraceTime' | 'identity'
> & {
  /** The runbook config it trusts, instead of runbookConfigFor(taskQueue). */
  runbookConfig?: string;
  /** Worker settings over the test stack's (e.g. RUNBOOK_WORKER_DEPLOYMENT and RUNBOOK_WORKER_BUILD_ID). */
  config?: Partial<WorkerConfig>;
};

/** An in-process worker on the test stack; `stop()` shuts it down and closes its clients. */
export async function startWorker(
  taskQueue: string,
  identity?: string,
  extra: WorkerExtras = {},
): Promise<{ stop(): Promise<void> }> {
  const { runbookConfig, config: settings, ...options } = extra;
  // RUNBOOK_TEST_CHAOS=0.3: every in-process worker fails that share of first activity attempts (test/helpers/chaos.ts).
  const chaos = Number(process.env.RUNBOOK_TEST_CHAOS ?? 0);
  if (chaos > 0 && !options.wrapActivities) {
    const log: ChaosLog = { before: [], after: [] };
    options.wrapActivities = (activities) =>
      withTransientFailures(activities, chaos, log, process.env.RUNBOOK_TEST_CHAOS_SEED ?? 'chaos');
  }
  const config = { ...testStack().workerConfig(taskQueue), ...settings };
  const { worker, close } = await createRunbookWorker(
    runbookConfig ? { ...config, RUNBOOK_CONFIG: runbookConfig } : config,
    {
      workflowBundle: await workflowBundle(),
      shutdownGraceTime: '1s',
      ...(identity ? { identity } : {}),
      ...options,
    },
  );
  const running = worker.run();
  return {
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await close();
    },
  };
}

/**
 * One in-process worker for the tests of the enclosing `describe`, on a task queue of its own named after
 * `prefix`: registers a mocha `before` that starts it and an `after` that stops it (an `after` runs also when an
 * earlier `before` failed or skipped the suite, and then has nothing to stop). Call it where the worker's start
 * belongs among the suite's other `before` hooks; `options` is called when the worker starts, so it may use
 * what earlier hooks set up. Returns the task queue that the suite's workflows run on.
 */
export function useWorker(prefix: string, options?: () => WorkerExtras): { readonly taskQueue: string } {
  const taskQueue = uniqueName(prefix);
  let worker: { stop(): Promise<void> } | undefined;
  before(async () => {
    worker = await startWorker(taskQueue, undefined, options?.());
  });
  after(async () => {
    await worker?.stop();
    worker = undefined;
  });
  return { taskQueue };
}

/**
 * A worker in a child process (the real entry point, src/worker.ts) that a test can SIGKILL to simulate a
 * crashed machine; it trusts the same runbook config as the in-process workers of `taskQueue`. `kill()` resolves once
 * the process is gone. `env` is added to its environment (after the test stack's worker config); its output goes to
 * `logFile` (0600) when given. `entry`: another entry point than src/worker.ts (a test's kill-point worker,
 * test/helpers/kill-point-worker.ts).
 */
export function spawnChildWorker(
  taskQueue: string,
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; entry?: string } = {},
): { process: ChildProcess; kill(): Promise<void> } {
  const stack = testStack();
  const { temporal: _connection, ...config } = stack.workerConfig(taskQueue);
  const connectionEnv = stack.externalTemporal
    ? process.env
    : embeddedProfileEnv(process.env, stack.settings, path.join(stack.settings.home, 'worker', 'temporal.toml'));
  const log = opts.logFile ? openPrivateLog(opts.logFile) : 'ignore';
  const child = spawn(
    process.execPath,
    ['--require', 'tsx/cjs', opts.entry ?? path.join(__dirname, '../src/worker.ts')],
    {
      env: {
        ...connectionEnv,
        ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])),
        ...opts.env,
      },
      stdio: ['ignore', log, log],
    },
  );
  if (typeof log === 'number') closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Writes a workflow's history as the CLI exports it (`temporal workflow show --output json`: the format the Web UI
 * downloads and historyFromJSON reads) to `file`, for the committed replay histories.
 */
export async function exportHistory(
  stack: Pick<TestStack, 'temporalAddress' | 'namespace'>,
  workflowId: string,
  file: string,
): Promise<void> {
  const cli = await findTemporalCli();
  if (!cli) throw new Error('the Temporal CLI is missing');
  const { stdout } = await promisify(execFile)(
    cli.path,
    [
      'workflow',
      'show',
      '--workflow-id',
      workflowId,
      '--address',
      stack.temporalAddress,
      '--namespace',
      stack.namespace,
      '--output',
      'json',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  writeFileSync(file, stdout.endsWith('\n') ? stdout : `${stdout}\n`);
}
