import type { Pool } from 'pg';
import type { AwsEcsSpec } from '../../shared/service-plan';
import { createPgManifestStore } from '../../orchestrator-store/manifests';
import { createDrillChecks } from '../../pg/drill-checks';
import { createMigrator } from '../../pg/migrator';
import type { PlatformParts } from '../types';
import { awsClients, cloudWatchLogsReader, realTime, type ActivityScope, type AwsContext } from './context';
import { createEcsCommandRunner } from './ecs-commands';
import { createEcsReleaseRunner } from './ecs-releases';
import { createElbRouter } from './elb-router';
import { createRdsSnapshotStore } from './rds-snapshot-store';
import { createRdsSwap } from './rds-swap';
import { rdsUrlFor } from './rds-urls';

export interface AwsPlatformOptions {
  /** The orchestrator's database: snapshot manifests are kept there (RDS snapshots have no room for them). */
  db: Pool;
  env: NodeJS.ProcessEnv;
  pgBinDir: string;
  isRunning(workflowId: string): Promise<boolean>;
  /** See AwsContext.resolveAddress; the identity unless a test maps AWS addresses to local servers. */
  resolveAddress?: (host: string, port: number) => { host: string; port: number };
  /** The activity a call runs in (the worker passes Temporal's); without it, calls run as outside an activity. */
  activity?: () => ActivityScope | undefined;
}

/**
 * The aws-ecs platform for one service's `aws` settings: ECS blue/green releases, release commands as one-off ECS
 * tasks, ELBv2 weighted traffic with CloudWatch analysis, RDS snapshots and drills, through the real AWS SDK v3
 * clients (cached per region and endpoint). Credentials: the SDK's default chain on the worker, never the workflow's
 * input. A command's output tail is read from its task's CloudWatch Logs stream.
 */
export function createAwsPlatform(spec: AwsEcsSpec, opts: AwsPlatformOptions): PlatformParts {
  const ctx: AwsContext = {
    spec,
    clients: awsClients(spec.region, spec.endpoint),
    resolveAddress: opts.resolveAddress ?? ((host, port) => ({ host, port })),
    env: opts.env,
    pgBinDir: opts.pgBinDir,
    isRunning: opts.isRunning,
    ...realTime,
    activity: opts.activity ?? (() => undefined),
  };
  const urlFor = rdsUrlFor(ctx);
  return {
    router: createElbRouter(ctx),
    releases: createEcsReleaseRunner(ctx),
    commands: createEcsCommandRunner(ctx, { logs: cloudWatchLogsReader(spec.endpoint) }),
    snapshots: createRdsSnapshotStore(ctx, createPgManifestStore(opts.db)),
    migrator: createMigrator(urlFor),
    drillChecks: createDrillChecks({ urlFor, binDir: opts.pgBinDir }),
    swapDatabases: createRdsSwap(ctx),
  };
}
