import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkerConfig } from '../src/config';
import { databaseUrl } from '../src/stack/postgres';
import { haproxyPaths } from '../src/stack/haproxy';
import { freePort } from '../src/stack/processes';
import { resolveStackSettings, temporalAddress, type StackSettings } from '../src/stack/settings';
import { down, up } from '../src/stack/stack';
import { findTemporalCli } from '../src/stack/tools';
import { connectClient } from '../src/temporal-connection';
import { createRunbookWorker, PAYLOAD_CONVERTER_PATH } from '../src/worker';

/**
 * The real servers that the tests share: PostgreSQL, HAProxy and the Temporal dev server, started once per
 * run on free ports in a temporary folder (so a developer's own `runbook up` stack is untouched), or the
 * Temporal server named by TEMPORAL_ADDRESS.
 */
export interface TestStack {
  settings: StackSettings;
  temporalAddress: string;
  namespace: string;
  client: Client;
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
    },
  );
  const started = Date.now();
  await up(settings, (line) => process.env.RUNBOOK_TEST_VERBOSE && console.log(`    [stack] ${line}`), {
    worker: false,
    temporal: !externalTemporal,
  });
  const address = externalTemporal ?? temporalAddress(settings);
  const namespace = process.env.TEMPORAL_NAMESPACE ?? settings.namespace;
  const client = await connectClient(address, namespace);
  console.log(
    `    test stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: Temporal ${address}, data ${home}`,
  );
  current = {
    settings,
    temporalAddress: address,
    namespace,
    client,
    workerConfig: (taskQueue) => ({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: databaseUrl(settings),
      HAPROXY_SOCKET: haproxyPaths(settings.home).adminSocket,
      RUNBOOK_HOME: settings.home,
      RUNBOOK_MAX_ACTIVITIES: 20,
      RUNBOOK_METRICS_HOST: '127.0.0.1',
      RUNBOOK_LOG_LEVEL: 'WARN',
    }),
  };
  return current;
}

export async function stopTestStack(): Promise<void> {
  if (!current) return;
  await current.client.connection.close();
  await down(current.settings, () => {});
  if (ownsHome) rmSync(current.settings.home, { recursive: true, force: true });
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

/** A unique task queue (and id prefix) per test, so tests never pick up each other's tasks. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** What an in-process worker may take besides the test stack's config (see createRunbookWorker). */
type WorkerExtras = Omit<
  NonNullable<Parameters<typeof createRunbookWorker>[1]>,
  'workflowBundle' | 'shutdownGraceTime' | 'identity'
>;

/** An in-process worker on the test stack; `stop()` shuts it down and closes its clients. */
export async function startWorker(
  taskQueue: string,
  identity?: string,
  extra: WorkerExtras = {},
): Promise<{ stop(): Promise<void> }> {
  const { worker, close } = await createRunbookWorker(testStack().workerConfig(taskQueue), {
    workflowBundle: await workflowBundle(),
    shutdownGraceTime: '1s',
    ...(identity ? { identity } : {}),
    ...extra,
  });
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
 * crashed machine. `kill()` resolves once the process is gone.
 */
export function spawnChildWorker(taskQueue: string): { process: ChildProcess; kill(): Promise<void> } {
  const config = testStack().workerConfig(taskQueue);
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, '../src/worker.ts')], {
    env: { ...process.env, ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])) },
    stdio: 'ignore',
  });
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
