/** What the RDS suites share: service shop in prod on RDS instance shop-prod, and the AWS answers about it. */
import type { DBInstance, DBSnapshot } from '@aws-sdk/client-rds';
import { TAG, type AwsContext } from '../../../src/platforms/aws-ecs/context';
import type { AwsEcsSpec, AwsRdsSpec } from '../../../src/shared/service-plan';
import { fakeAwsContext, testSpec, type FakeAwsContextOptions } from './fixture';

export const LIVE_URL = 'postgres://shop:s3cret@shop-prod.abc.us-east-1.rds.amazonaws.com:5432/shop?sslmode=require';
export const SNAPSHOT = 'shop-prod-pre-migrate-1a2b3c4d';
export const SNAPSHOT_ARN = `arn:aws:rds:us-east-1:123456789012:snapshot:${SNAPSHOT}`;
export const WORKFLOW = 'deploy-shop-prod-42';

export function specWith(rds: Partial<AwsRdsSpec> = {}): AwsEcsSpec {
  return testSpec({
    rds: {
      instance: 'shop-prod',
      database: 'shop',
      urlEnv: 'SHOP_DATABASE_URL',
      endpoint: { ssmParameter: '/shop/prod/db-host' },
      drill: { subnetGroup: 'drill-subnets', securityGroups: ['sg-0drill'], instanceClass: 'db.t4g.micro' },
      pollIntervalMs: 5_000,
      ...rds,
    },
  });
}

interface Harness {
  ctx: AwsContext;
  sleeps: number[];
  running: Set<string>;
}

/** The store's context: a fake clock, the live URL in SHOP_DATABASE_URL, `running` the workflows still running. */
export function harness(
  spec = specWith(),
  overrides: Pick<FakeAwsContextOptions, 'env' | 'resolveAddress'> = {},
): Harness {
  const running = new Set<string>();
  const { ctx, sleeps } = fakeAwsContext({
    spec,
    env: { SHOP_DATABASE_URL: LIVE_URL },
    isRunning: async (id) => running.has(id),
    startMs: 1_700_000_000_000,
    ...overrides,
  });
  return { ctx, sleeps, running };
}

export const takeReq = {
  snapshotId: SNAPSHOT,
  service: 'shop',
  environment: 'prod',
  database: 'shop',
  workflowId: WORKFLOW,
};

export const ourTags = [
  { Key: TAG.service, Value: 'shop' },
  { Key: TAG.environment, Value: 'prod' },
  { Key: TAG.workflow, Value: WORKFLOW },
  { Key: TAG.kind, Value: 'pre-migrate' },
];

export function snapshot(status: string, extra: Partial<DBSnapshot> = {}): DBSnapshot {
  return {
    DBSnapshotIdentifier: SNAPSHOT,
    DBInstanceIdentifier: 'shop-prod',
    DBSnapshotArn: SNAPSHOT_ARN,
    Status: status,
    AllocatedStorage: 20,
    EngineVersion: '16.4',
    SnapshotCreateTime: new Date('2024-05-01T10:00:00Z'),
    TagList: ourTags,
    ...extra,
  };
}

export function instance(
  id: string,
  status: string,
  tags: Record<string, string> = {},
  extra: Partial<DBInstance> = {},
) {
  return {
    DBInstanceIdentifier: id,
    DBInstanceArn: `arn:aws:rds:us-east-1:123456789012:db:${id}`,
    DBInstanceStatus: status,
    Endpoint: { Address: `${id}.abc.us-east-1.rds.amazonaws.com`, Port: 5432 },
    TagList: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    ...extra,
  } satisfies DBInstance;
}
