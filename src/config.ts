import type { WorkerDeploymentOptions } from '@temporalio/worker';
import { z } from 'zod';
import { UserError } from './errors';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE } from './shared/constants';
import { loadTemporalConnection, type TemporalConnection } from './temporal-connection';

/**
 * The worker's configuration, from its environment. Credentials (DATABASE_URL) live here, on the worker,
 * never in workflow inputs or histories: workflows name targets, workers hold the secrets. The Temporal
 * connection (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, a profile, TLS, API key, RUNBOOK_CODEC_KEYS) is loaded by
 * loadTemporalConnection, into `temporal`.
 */
/** An empty variable (`${X:-}` in docker-compose.yml) counts as unset. */
const unsetWhenEmpty = <T extends z.ZodTypeAny>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema);

export const workerConfigSchema = z.object({
  RUNBOOK_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  HAPROXY_SOCKET: z.string().min(1, "must be the path of HAProxy's admin runtime API socket"),
  RUNBOOK_HOME: z.string().min(1),
  /**
   * The runbook config this worker trusts: every deploy, rollback and drill runs the plan resolved from this file,
   * never one from a request (docs/deploy.md). Unset: the worker refuses them (and still finishes running ones).
   */
  RUNBOOK_CONFIG: z.string().optional(),
  /** Prometheus metrics (the SDK's and the runbooks' own) on http://<host>:<port>/metrics; off when unset. */
  RUNBOOK_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  /** 0.0.0.0 in a container, so that the published port reaches it. */
  RUNBOOK_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  RUNBOOK_LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  /** Largest number of activities this worker runs at once. */
  RUNBOOK_MAX_ACTIVITIES: z.coerce.number().int().min(1).max(1000).default(50),
  /**
   * Threads that run workflow tasks (the SDK's default is one): with many runbooks at once, their workflow tasks
   * queue for that one thread (bench/results/concurrency.md).
   */
  RUNBOOK_WORKFLOW_THREADS: z.coerce.number().int().min(1).max(16).default(2),
  /**
   * on: each single-host service's database belongs to a PostgreSQL role of its own (no superuser), and its releases
   * get a URL with that role; off: they get the worker's URL (a PostgreSQL where the worker may not create roles).
   */
  RUNBOOK_SERVICE_ROLES: z.enum(['on', 'off']).default('on'),
  /** The OS user releases run as when the worker runs as root (default runbook-release, else nobody; root: none). */
  RUNBOOK_RELEASE_USER: z.string().min(1).optional(),
  /**
   * The worker's secret (signs snapshot manifests, derives role passwords); default: <RUNBOOK_HOME>/keys/worker-secret,
   * made on first use.
   */
  RUNBOOK_WORKER_SECRET: z.string().min(32, 'must have at least 32 characters (openssl rand -hex 32)').optional(),
  /**
   * Worker Versioning (docs/cluster.md): the Worker Deployment this worker belongs to. Unset: an unversioned worker,
   * as before (running runbooks move to whichever worker polls, and patched() keeps old histories replaying).
   */
  RUNBOOK_WORKER_DEPLOYMENT: unsetWhenEmpty(z.string().min(1).max(255).optional()),
  /** This worker's build within its deployment (an image tag, a git commit); required with RUNBOOK_WORKER_DEPLOYMENT. */
  RUNBOOK_WORKER_BUILD_ID: unsetWhenEmpty(
    z
      .string()
      .max(255)
      .regex(/^[^\s.][^\s]*$/, 'must have no spaces and not start with a dot')
      .optional(),
  ),
  /**
   * pinned (the default): a runbook finishes on the build it started on, new ones start on the deployment's current
   * build; auto-upgrade: a running runbook moves to the current build at its next workflow task.
   */
  RUNBOOK_WORKER_VERSIONING: unsetWhenEmpty(z.enum(['pinned', 'auto-upgrade']).optional()),
});
export type WorkerConfig = z.infer<typeof workerConfigSchema> & { temporal: TemporalConnection };

/** Where a worker connects when nothing is configured. */
export const DEFAULT_TEMPORAL = { address: '127.0.0.1:7233', namespace: DEFAULT_NAMESPACE, what: 'the defaults' };

/** Validates the environment once; every problem is reported together, by variable name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = workerConfigSchema.safeParse(env);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map(
        (i) =>
          `${String(i.path[0])}: ${i.code === 'invalid_type' && env[String(i.path[0])] === undefined ? 'is not set' : i.message}`,
      );
  let temporal: TemporalConnection | undefined;
  try {
    temporal = loadTemporalConnection(env, DEFAULT_TEMPORAL);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    problems.push(`${err.message}${err.fix ? ` (${err.fix})` : ''}`);
  }
  if (parsed.success) {
    try {
      workerDeploymentOf(parsed.data);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push(err.message);
    }
  }
  if (parsed.success && temporal && problems.length === 0) return { ...parsed.data, temporal };
  throw new UserError(
    `invalid worker configuration:\n  ${problems.join('\n  ')}`,
    'set these environment variables (runbook up sets them for the worker it starts)',
  );
}

/**
 * The worker's Worker Deployment options (Worker Versioning), or undefined for an unversioned worker. Throws a
 * UserError when only one of RUNBOOK_WORKER_DEPLOYMENT and RUNBOOK_WORKER_BUILD_ID is set.
 */
export function workerDeploymentOf(
  config: Pick<
    z.infer<typeof workerConfigSchema>,
    'RUNBOOK_WORKER_DEPLOYMENT' | 'RUNBOOK_WORKER_BUILD_ID' | 'RUNBOOK_WORKER_VERSIONING'
  >,
): WorkerDeploymentOptions | undefined {
  const deploymentName = config.RUNBOOK_WORKER_DEPLOYMENT;
  const buildId = config.RUNBOOK_WORKER_BUILD_ID;
  if (!deploymentName && !buildId) return undefined;
  if (!deploymentName || !buildId) {
    throw new UserError(
      `${deploymentName ? 'RUNBOOK_WORKER_BUILD_ID' : 'RUNBOOK_WORKER_DEPLOYMENT'}: is not set, and Worker Versioning needs both`,
      'set RUNBOOK_WORKER_DEPLOYMENT (e.g. durable-runbooks) and RUNBOOK_WORKER_BUILD_ID (e.g. the image tag), or neither',
    );
  }
  return {
    version: { deploymentName, buildId },
    useWorkerVersioning: true,
    defaultVersioningBehavior: config.RUNBOOK_WORKER_VERSIONING === 'auto-upgrade' ? 'AUTO_UPGRADE' : 'PINNED',
  };
}
