import type { Client } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import pg from 'pg';
import { createActivities, type Activities } from './activities';
import { loadConfig, type WorkerConfig } from './config';
import { UserError, errorMessage } from './errors';
import { jsonLogger } from './logging';
import { migrateOrchestratorDb, recordDrillRun } from './platforms/postgres/orchestrator-db';
import { createPgRecords } from './platforms/postgres/records';
import { createWorkerPlatforms, type WorkerPlatformOptions } from './platforms';
import { siblingDatabaseUrl } from './platforms/single-host';
import { connectClient } from './temporal-connection';

/** The payload converter of the workflow bundle and the activities (tests bundle the workflows with it too). */
export const PAYLOAD_CONVERTER_PATH = require.resolve('./shared/payload-converter');

export interface RunbookWorker {
  worker: Worker;
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
    /** The environment the aws-ecs platform reads database URLs from (default: the process's). */
    env?: NodeJS.ProcessEnv;
    /** Tests: replaces activities (e.g. one that fails for good) around the real ones. */
    wrapActivities?: (activities: Activities) => Activities;
  } = {},
): Promise<RunbookWorker> {
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
    connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    // A client for activities that ask Temporal about other workflows (is a lock holder still running?).
    const temporal = await connectClient(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE, 10_000);
    client = temporal;
    const isRunning = async (workflowId: string) => {
      try {
        return (await temporal.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
      } catch {
        return false;
      }
    };
    await migrateOrchestratorDb(pool);
    const { registry, singleHost } = createWorkerPlatforms({
      home: config.RUNBOOK_HOME,
      haproxySocket: config.HAPROXY_SOCKET,
      urlFor: (database) => siblingDatabaseUrl(config.DATABASE_URL, database),
      db: pool,
      env: extra.env ?? process.env,
      isRunning,
      ...(extra.resolveAwsAddress ? { resolveAwsAddress: extra.resolveAwsAddress } : {}),
    });
    const activities = createActivities({
      db: pool,
      haproxy: singleHost.runtime,
      platforms: registry,
      records: createPgRecords(pool, isRunning),
      drillRuns: { record: (row) => recordDrillRun(pool, row) },
    });
    const registered = extra.wrapActivities ? extra.wrapActivities(activities) : activities;
    const worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.RUNBOOK_TASK_QUEUE,
      ...(extra.workflowBundle
        ? { workflowBundle: extra.workflowBundle }
        : { workflowsPath: require.resolve('./workflows') }),
      activities: registered,
      // A signal whose payload cannot be read becomes a refused decision instead of a workflow task that fails for good.
      dataConverter: { payloadConverterPath: PAYLOAD_CONVERTER_PATH },
      maxConcurrentActivityTaskExecutions: config.RUNBOOK_MAX_ACTIVITIES,
      ...(extra.identity ? { identity: extra.identity } : {}),
      shutdownGraceTime: extra.shutdownGraceTime ?? '10s',
    });
    return { worker, close };
  } catch (err) {
    await close();
    throw err;
  }
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
  const { worker, close } = await createRunbookWorker(config);
  logger.info('worker started', {
    taskQueue: config.RUNBOOK_TASK_QUEUE,
    temporal: config.TEMPORAL_ADDRESS,
    pid: process.pid,
    metrics: metricsAddress ? `http://${metricsAddress}/metrics` : 'off',
  });
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
