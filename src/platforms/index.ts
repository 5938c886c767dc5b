import type { Pool } from 'pg';
import { createAwsPlatform, type AwsPlatformOptions } from './aws-ecs';
import { createPlatformRegistry } from './registry';
import { createSingleHostPlatform, type SingleHostOptions, type SingleHostPlatform } from './single-host';
import type { PlatformRegistry } from './types';

export interface WorkerPlatformOptions extends Pick<
  SingleHostOptions,
  'workerSecret' | 'serviceRoles' | 'releaseUser'
> {
  /** The embedded stack's data folder (HAProxy routes, releases, snapshots). */
  home: string;
  haproxySocket: string;
  /** The URL of a database on the worker's PostgreSQL (credentials stay on the worker). */
  urlFor: (database: string) => string;
  /** The orchestrator's database (aws-ecs keeps snapshot manifests there). */
  db: Pool;
  env: NodeJS.ProcessEnv;
  isRunning(workflowId: string): Promise<boolean>;
  /** Where AWS addresses are reached (tests against moto map them to local servers). */
  resolveAwsAddress?: AwsPlatformOptions['resolveAddress'];
  /** The activity a platform call runs in (the worker passes Temporal's). */
  activity?: AwsPlatformOptions['activity'];
}

/**
 * Every platform a worker runs, each built by its own factory: single-host once (the stack's HAProxy, processes,
 * pg_dump), aws-ecs once per service's aws settings on the first request that needs it. Returns the registry the
 * activities ask, and the single-host platform (the stack check talks to its HAProxy).
 */
export function createWorkerPlatforms(opts: WorkerPlatformOptions): {
  registry: PlatformRegistry;
  singleHost: SingleHostPlatform;
} {
  const singleHost = createSingleHostPlatform({
    home: opts.home,
    haproxySocket: opts.haproxySocket,
    urlFor: opts.urlFor,
    workerSecret: opts.workerSecret,
    serviceRoles: opts.serviceRoles,
    ...(opts.releaseUser ? { releaseUser: opts.releaseUser } : {}),
  });
  const aws: AwsPlatformOptions = {
    db: opts.db,
    env: opts.env,
    pgBinDir: singleHost.binDir,
    isRunning: opts.isRunning,
    ...(opts.activity ? { activity: opts.activity } : {}),
    ...(opts.resolveAwsAddress ? { resolveAddress: opts.resolveAwsAddress } : {}),
  };
  const registry = createPlatformRegistry({
    'single-host': () => singleHost,
    'aws-ecs': (target) => createAwsPlatform(target.aws, aws),
  });
  return { registry, singleHost };
}
