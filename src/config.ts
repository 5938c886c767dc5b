import { z } from 'zod';
import { UserError } from './errors';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE } from './shared/constants';

/**
 * The worker's configuration, from its environment. Credentials (DATABASE_URL) live here, on the worker,
 * never in workflow inputs or histories: workflows name targets, workers hold the secrets.
 */
export const workerConfigSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default(DEFAULT_NAMESPACE),
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
});
export type WorkerConfig = z.infer<typeof workerConfigSchema>;

/** Validates the environment once; every problem is reported together, by variable name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = workerConfigSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (i) =>
      `${String(i.path[0])}: ${i.code === 'invalid_type' && env[String(i.path[0])] === undefined ? 'is not set' : i.message}`,
  );
  throw new UserError(
    `invalid worker configuration:\n  ${problems.join('\n  ')}`,
    'set these environment variables (runbook up sets them for the worker it starts)',
  );
}
