import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Runtime, Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import pg from 'pg';
import { createActivities, type Activities } from './activities';
import { autoHeartbeat } from './activities/auto-heartbeat';
import { currentActivityScope } from './activities/scope';
import { loadConfig, workerDeploymentOf, type WorkerConfig } from './config';
import { adoptFirstVersion, describeFirstVersion } from './worker-versioning';
import { UserError, errorMessage } from './errors';
import { jsonLogger } from './logging';
import { loadRunbookConfig } from './runbook-config';
import { migrateOrchestratorDb, recordDrillRun } from './orchestrator-store/orchestrator-db';
import { createPgRecords } from './orchestrator-store/records';
import { createWorkerPlatforms, type WorkerPlatformOptions } from './platforms';
import { siblingDatabaseUrl } from './platforms/single-host';
import { watchQueueOf } from './shared/constants';
import { createScrubber, secretValuesOf } from './shared/redact';
import { resolveReleaseUser } from './system/release-user';
import { loadWorkerSecret } from './system/worker-secret';
import { connectClient, connectNative, dataConverter, describeConnection } from './temporal-connection';
import { connectionFailure, explainError } from './temporal-diagnosis';
import { scheduleStartedBy } from './temporal-schedules';
import { stackPgbackrest } from './stack/postgres';
import { resolveStackSettings } from './stack/settings';
import type { PgbackrestRunner } from './platforms/single-host/pgbackrest';

/** The payload converter of the workflow bundle and the activities (tests bundle the workflows with it too). */
export const PAYLOAD_CONVERTER_PATH = require.resolve('./shared/payload-converter');

/** How many step-long watches one worker runs at once (each is a timer and a runtime API read every 20 ms). */
const WATCH_SLOTS = 1_000;

/** The worker of the runbooks' task queue and the one of its watch queue, run and shut down together. */
export type WorkerPair = Pick<Worker, 'run' | 'shutdown' | 'getState'>;

function pairOf(main: Worker, watch: Worker): WorkerPair {
  return {
    async run() {
      // one stopping (a shutdown, a fatal error) stops the other, and the first error is the one thrown
      const stopOther = (other: Worker) => () => {
        if (other.getState() === 'RUNNING') other.shutdown();
      };
      const runs = [main.run().finally(stopOther(watch)), watch.run().finally(stopOther(main))];
      const settled = await Promise.allSettled(runs);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown() {
      for (const w of [main, watch]) if (w.getState() === 'RUNNING') w.shutdown();
    },
    getState: () => main.getState(),
  };
}

export interface RunbookWorker {
  worker: WorkerPair;
  /** Who its releases run as (resolveReleaseUser): undefined, the worker's own user. */
  releaseUser: ReturnType<typeof resolveReleaseUser>;
  /** Closes the clients the worker used; call after `worker.run()` resolves. */
  close(): Promise<void>;
}

/**
 * The composition root: config -> clients -> activities -> Worker. Tests build in-process workers with it
 * (pass `workflowBundle` to skip re-bundling the workflow code).
 */
export async function createRunbookWorker(
  config: WorkerConfig,
  extra: Pick<WorkerOptions, 'workflowBundle' | 'identity' | 'shutdownGraceTime'> & {
    /** Where AWS addresses are reached (tests against moto map them to local servers). */
    resolveAwsAddress?: WorkerPlatformOptions['resolveAwsAddress'];
    /** The environment the aws-ecs platform and prepareDatabase read database URLs from (default: the process's). */
    env?: NodeJS.ProcessEnv;
    /** Tests: replaces activities (e.g. one that fails for good) around the real ones. */
    wrapActivities?: (activities: Activities) => Activities;
  } = {},
): Promise<RunbookWorker> {
  const deployment = workerDeploymentOf(config);
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 10 });
  pool.on('error', () => {}); // an idle client's broken connection is replaced on the next query
  let connection: NativeConnection | undefined;
  let client: Client | undefined;
  const close = async () => {
    await connection?.close();
    await client?.connection.close();
    await pool.end();
  };
  try {
    try {
      connection = await connectNative(config.temporal);
      // A client for activities that ask Temporal about other workflows (is a lock holder still running?).
      client = await connectClient(config.temporal, 10_000);
    } catch (err) {
      throw await connectionFailure(err, config.temporal);
    }
    const temporal = client;
    const isRunning = async (workflowId: string) => {
      try {
        return (await temporal.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
      } catch {
        return false;
      }
    };
    const scheduleStarted = scheduleStartedBy(temporal);
    await migrateOrchestratorDb(pool);
    const workerSecret = loadWorkerSecret(
      config.RUNBOOK_WORKER_SECRET ? { RUNBOOK_WORKER_SECRET: config.RUNBOOK_WORKER_SECRET } : {},
      config.RUNBOOK_HOME,
    );
    const releaseUser = resolveReleaseUser(
      config.RUNBOOK_RELEASE_USER ? { RUNBOOK_RELEASE_USER: config.RUNBOOK_RELEASE_USER } : {},
    );
    const { registry, singleHost } = createWorkerPlatforms({
      home: config.RUNBOOK_HOME,
      haproxySocket: config.HAPROXY_SOCKET,
      urlFor: (database) => siblingDatabaseUrl(config.DATABASE_URL, database),
      workerSecret,
      serviceRoles: config.RUNBOOK_SERVICE_ROLES === 'on',
      ...(releaseUser ? { releaseUser } : {}),
      db: pool,
      env: extra.env ?? process.env,
      isRunning,
      activity: currentActivityScope,
      ...(extra.resolveAwsAddress ? { resolveAwsAddress: extra.resolveAwsAddress } : {}),
    });
    // Failure messages never carry a secret this worker holds, even one printed bare.
    const scrub = createScrubber([...secretValuesOf(extra.env ?? process.env, [config.DATABASE_URL]), workerSecret]);
    const activities = createActivities(
      {
        runbookConfig: runbookConfigOf(config),
        scheduleStarted,
        db: pool,
        haproxy: singleHost.runtime,
        platforms: registry,
        env: extra.env ?? process.env,
        records: createPgRecords(pool, isRunning),
        drillRuns: { record: (row) => recordDrillRun(pool, row) },
        backups: () => stackBackups(config.RUNBOOK_HOME),
        copyUrl: (port, database) => {
          const url = new URL(siblingDatabaseUrl(config.DATABASE_URL, database));
          url.hostname = '127.0.0.1';
          url.port = String(port);
          return url.toString();
        },
      },
      scrub,
    );
    const registered = extra.wrapActivities ? extra.wrapActivities(activities) : activities;
    const common = {
      connection,
      namespace: config.temporal.namespace,
      // The payload codec (RUNBOOK_CODEC_KEYS) runs here, outside the workflow sandbox. The payload converter reads a
      // signal whose payload cannot be read as a refused decision instead of a workflow task that fails for good.
      dataConverter: { ...dataConverter(config.temporal), payloadConverterPath: PAYLOAD_CONVERTER_PATH },
      // Worker Versioning when RUNBOOK_WORKER_DEPLOYMENT is set: runbooks are pinned to the build they started on
      ...(deployment ? { workerDeploymentOptions: deployment } : {}),
      ...(extra.identity ? { identity: extra.identity } : {}),
      shutdownGraceTime: extra.shutdownGraceTime ?? '10s',
    };
    const explained = async (err: unknown): Promise<never> => {
      // a namespace that does not exist, refused credentials: said in words
      throw explainError(err, config.temporal) ? await connectionFailure(err, config.temporal) : err;
    };
    const main = await Worker.create({
      ...common,
      taskQueue: config.RUNBOOK_TASK_QUEUE,
      ...(extra.workflowBundle
        ? { workflowBundle: extra.workflowBundle }
        : { workflowsPath: require.resolve('./workflows') }),
      activities: registered,
      maxConcurrentActivityTaskExecutions: config.RUNBOOK_MAX_ACTIVITIES,
      workflowThreadPoolSize: config.RUNBOOK_WORKFLOW_THREADS,
      // every activity heartbeats, so a dead worker's activity moves to another within its heartbeat timeout
      interceptors: { activity: [autoHeartbeat] },
    }).catch(explained);
    // The watches that last a whole traffic step (watchCutoff) poll a queue of their own, with slots of their own:
    // on the main queue, as many canaries baking at once as it has slots would hold them all, and their analysis
    // windows would wait for a slot that never frees (a watch ends with its step).
    const watch = await Worker.create({
      ...common,
      taskQueue: watchQueueOf(config.RUNBOOK_TASK_QUEUE),
      activities: { watchCutoff: registered.watchCutoff },
      maxConcurrentActivityTaskExecutions: WATCH_SLOTS,
    }).catch(explained);
    const worker = pairOf(main, watch);
    return { worker, close, releaseUser };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The worker's runbook config, absolute; undefined when it has none. */
export function runbookConfigOf(config: Pick<WorkerConfig, 'RUNBOOK_CONFIG'>): string | undefined {
  return config.RUNBOOK_CONFIG ? path.resolve(config.RUNBOOK_CONFIG) : undefined;
}

/**
 * Whether the worker's runbook config can be used now, in words for its log. A bad config does not stop the worker:
 * the runbooks already running have their plans in their histories and must be able to finish (or roll back).
 */
/**
 * The pgBackRest repository of the stack whose data folder is `home` (its stack.json, not this process's environment),
 * asked at each backup; undefined when that stack's PostgreSQL is an external server or was never brought up.
 */
function stackBackups(home: string): PgbackrestRunner | undefined {
  try {
    const settings = resolveStackSettings({}, { home });
    if (settings.externalDatabaseUrl) return undefined;
    const runner = stackPgbackrest(settings);
    return existsSync(runner.paths.config) ? runner : undefined;
  } catch {
    return undefined;
  }
}

function runbookConfigStatus(config: WorkerConfig): { ok: boolean; detail: string } {
  const file = runbookConfigOf(config);
  if (!file)
    return { ok: false, detail: 'none (RUNBOOK_CONFIG is not set): deploys, rollbacks and drills are refused' };
  try {
    const services = Object.keys(loadRunbookConfig(file).services);
    return { ok: true, detail: `${file} (${services.join(', ')})` };
  } catch (err) {
    return { ok: false, detail: `${file}: ${errorMessage(err)}; runbooks are refused until it is fixed` };
  }
}

/** Who releases run as and which database role they get, in words for the worker's log. */
function releasesRunAs(config: WorkerConfig, user: RunbookWorker['releaseUser']): string {
  const who = user
    ? `as ${user.name} (uid ${user.uid})`
    : process.getuid?.() === 0
      ? "as root (RUNBOOK_RELEASE_USER=root): they can read the worker's environment"
      : "as the worker's user";
  const db =
    config.RUNBOOK_SERVICE_ROLES === 'on'
      ? "with their service's own PostgreSQL role"
      : "with the worker's PostgreSQL URL (RUNBOOK_SERVICE_ROLES=off)";
  return `${who}, ${db}`;
}

/** Runs a worker until SIGINT/SIGTERM (the SDK's runtime handles both and drains in-flight tasks). */
export async function main(): Promise<void> {
  const config = loadConfig();
  const logger = jsonLogger(config.RUNBOOK_LOG_LEVEL);
  const metricsAddress = config.RUNBOOK_METRICS_PORT
    ? `${config.RUNBOOK_METRICS_HOST}:${config.RUNBOOK_METRICS_PORT}`
    : undefined;
  Runtime.install({
    logger,
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } } : {}),
  });
  const { worker, close, releaseUser } = await createRunbookWorker(config);
  const runbookConfig = runbookConfigStatus(config);
  const deployment = workerDeploymentOf(config);
  logger.info('worker started', {
    taskQueue: config.RUNBOOK_TASK_QUEUE,
    temporal: describeConnection(config.temporal),
    pid: process.pid,
    metrics: metricsAddress ? `http://${metricsAddress}/metrics` : 'off',
    runbookConfig: runbookConfig.detail,
    releases: releasesRunAs(config, releaseUser),
    versioning: deployment
      ? `worker deployment ${deployment.version.deploymentName}, build ${deployment.version.buildId}, runbooks ${deployment.defaultVersioningBehavior === 'PINNED' ? 'pinned to their build' : 'auto-upgraded'}`
      : 'off (unversioned worker)',
  });
  if (!runbookConfig.ok) logger.warn(`runbook config: ${runbookConfig.detail}`);
  if (deployment) {
    // after the first poll registers this build: the first build of a deployment makes itself current
    void adoptFirstVersion(config.temporal, deployment, `runbook worker ${process.pid}`).then((outcome) => {
      const line = describeFirstVersion(deployment, outcome);
      if (outcome.kind === 'not-current' || outcome.kind === 'unknown') logger.warn(line);
      else logger.info(line);
    });
  }
  try {
    await worker.run();
  } finally {
    await close();
  }
  logger.info('worker stopped', { pid: process.pid });
}

if (require.main === module) {
  main().catch((err) => {
    console.error(
      err instanceof UserError
        ? `worker: ${err.message}${err.fix ? `\n  fix: ${err.fix}` : ''}`
        : `worker: ${errorMessage(err)}`,
    );
    process.exit(1);
  });
}
