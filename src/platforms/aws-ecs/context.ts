import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationAutoScalingClient } from '@aws-sdk/client-application-auto-scaling';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { ECSClient } from '@aws-sdk/client-ecs';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { RDSClient } from '@aws-sdk/client-rds';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { STSClient } from '@aws-sdk/client-sts';
import type { AwsEcsSpec } from '../../shared/service-plan';

/** The real AWS SDK v3 clients of one region (and endpoint). Credentials: the SDK's default chain on the worker. */
export interface AwsClients {
  ecs: ECSClient;
  elb: ElasticLoadBalancingV2Client;
  cloudwatch: CloudWatchClient;
  rds: RDSClient;
  ssm: SSMClient;
  secrets: SecretsManagerClient;
  sts: STSClient;
  /** The colours' scalable targets (namespace ecs), see colour-scaling.ts. */
  autoscaling: ApplicationAutoScalingClient;
}

const cache = new Map<string, AwsClients>();

/** The clients for a region and optional endpoint (a local moto_server in tests), created once per worker. */
export function awsClients(region: string, endpoint?: string): AwsClients {
  const key = `${region} ${endpoint ?? ''}`;
  let clients = cache.get(key);
  if (!clients) {
    const config = { region, ...(endpoint ? { endpoint } : {}), maxAttempts: 3 };
    clients = {
      ecs: new ECSClient(config),
      elb: new ElasticLoadBalancingV2Client(config),
      cloudwatch: new CloudWatchClient(config),
      rds: new RDSClient(config),
      ssm: new SSMClient(config),
      secrets: new SecretsManagerClient(config),
      sts: new STSClient(config),
      autoscaling: new ApplicationAutoScalingClient(config),
    };
    cache.set(key, clients);
  }
  return clients;
}

const logsCache = new Map<string, CloudWatchLogsClient>();

/**
 * CloudWatch Logs' GetLogEvents in any region (a task's awslogs-region may differ from the service's), through one
 * client per region and endpoint: what the ECS command runner reads a one-off task's output with.
 */
export function cloudWatchLogsReader(endpoint?: string) {
  return {
    getLogEvents(
      region: string,
      input: { logGroupName: string; logStreamName: string; startFromHead: false; limit: number },
    ) {
      const key = `${region} ${endpoint ?? ''}`;
      let client = logsCache.get(key);
      if (!client) {
        client = new CloudWatchLogsClient({ region, ...(endpoint ? { endpoint } : {}), maxAttempts: 3 });
        logsCache.set(key, client);
      }
      return client.send(new GetLogEventsCommand(input));
    },
  };
}

/** The activity a platform call runs in, as far as the platform needs to know it (the worker reads Temporal's). */
export interface ActivityScope {
  /** The workflow of the activity. */
  workflowId?: string;
  /** When the activity was first scheduled (ms since epoch): the same for every retry of it. */
  scheduledTimestampMs?: number;
  /** When the current attempt times out (ms since epoch), when the activity has a start-to-close timeout. */
  attemptDeadlineMs?: number;
  /** Writes a line to the activity's log. */
  log(message: string): void;
  /** Records progress that a retried attempt resumes from (Temporal's heartbeat details). */
  heartbeat?(details?: unknown): void;
  /** The details the previous attempt last heartbeated, if any. */
  heartbeatDetails?(): unknown;
}

/** What every part of the aws-ecs platform works with: the service's settings and the worker's side of things. */
export interface AwsContext {
  spec: AwsEcsSpec;
  clients: AwsClients;
  /**
   * Where this worker reaches an address that AWS returns (a load balancer's DNS name and a listener port, or an
   * RDS endpoint). The identity in production; the moto contract tests map them to local servers, because moto
   * runs no tasks and no databases.
   */
  resolveAddress(host: string, port: number): { host: string; port: number };
  /** The worker's environment (database URLs with credentials, named by the plan's urlEnv). */
  env: NodeJS.ProcessEnv;
  /** pg_amcheck and friends (PostgreSQL client binaries) for the drill's checks over an RDS endpoint. */
  pgBinDir: string;
  /** Whether a workflow still runs (a drill instance of a workflow that ended is a leftover). */
  isRunning(workflowId: string): Promise<boolean>;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  now(): number;
  /** The activity this call runs in; undefined outside one (a script, a unit test). */
  activity(): ActivityScope | undefined;
}

export const realTime = {
  sleep: (ms: number, signal?: AbortSignal) => sleep(ms, undefined, signal ? { signal } : {}),
  now: () => Date.now(),
};

/** Tags every resource the platform creates carries (ECS services it updates, snapshots, drill instances). */
export const TAG = {
  service: 'runbook:service',
  environment: 'runbook:environment',
  workflow: 'runbook:workflow',
  release: 'runbook:release',
  version: 'runbook:version',
  kind: 'runbook:kind',
} as const;
