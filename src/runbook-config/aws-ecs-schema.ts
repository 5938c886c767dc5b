/**
 * The zod schema of the `aws` block of an aws-ecs service: ECS services, load balancer ARNs and the RDS database,
 * turned into an AwsEcsSpec.
 */
import { z } from 'zod';
import type { AwsEcsSpec, AwsRdsRestoreSpec } from '../shared/service-plan';
import { duration } from './durations';
import { describeValue, unlessMissing } from './problems';
import { envVarName, rate, releaseEnvKey, template } from './values';

/** AWS ARNs of one service kind, e.g. `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/...`. */
function arn(service: string, resource: string) {
  const pattern = new RegExp(`^arn:aws[a-z-]*:${service}:[a-z0-9-]+:\\d{12}:${resource}/\\S+$`);
  return z.string().regex(pattern, {
    error: (iss) =>
      `must be the ARN of a ${resource}, e.g. arn:aws:${service}:eu-west-1:123456789012:${resource}/..., got ${describeValue(iss.input)}`,
  });
}

const awsName = (what: string) =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$/, {
    error: (iss) => `must be ${what} (letters, digits, '-', '_', '.', ':', '/'), got ${describeValue(iss.input)}`,
  });

const blueGreen = (item: z.ZodType<string>, example: string) =>
  z.strictObject({ blue: item, green: item }).describe(`{ blue: ${example}, green: ... }`);

const targetGroupArn = arn('elasticloadbalancing', 'targetgroup');
const listenerArn = arn('elasticloadbalancing', 'listener');
const listenerRuleArn = arn('elasticloadbalancing', 'listener-rule');

const endpointHolderSchema = z
  .union(
    [
      z.strictObject({ ssmParameter: z.string().regex(/^[A-Za-z0-9_./-]{1,2048}$/, 'must be an SSM parameter name') }),
      z.strictObject({
        secret: z.string().min(1, 'must name a Secrets Manager secret (name or ARN)'),
        key: z.string().optional(),
      }),
      z.strictObject({ taskEnv: envVarName }),
    ],
    {
      error: unlessMissing(
        (v) =>
          `must be one of { ssmParameter: /shop/db-host }, { secret: shop/db, key: host } or { taskEnv: DATABASE_HOST }, got ${describeValue(v)}`,
      ),
    },
  )
  .describe('{ ssmParameter } | { secret, key } | { taskEnv }');

const rdsIdentifier = (what: string) =>
  z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/, {
    error: (iss) =>
      `must be an RDS ${what} identifier (letters, digits, '-'; at most 63), got ${describeValue(iss.input)}`,
  });

const securityGroup = z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id like sg-0123456789abcdef0');
const instanceClass = z.string().regex(/^db\.[a-z0-9]+\.[a-z0-9]+$/, 'must be an instance class like db.t4g.medium');

/** Exactly one of instance and cluster: serviceCrossChecks() says so, with instanceClass required for a cluster. */
const awsRdsSchema = z
  .strictObject({
    instance: rdsIdentifier('DB instance').optional(),
    cluster: rdsIdentifier('Aurora DB cluster').optional(),
    endpoint: endpointHolderSchema.optional(),
    drill: z
      .strictObject({
        subnetGroup: awsName('a DB subnet group name').optional(),
        securityGroups: z.array(securityGroup).default([]),
        instanceClass: instanceClass.optional(),
      })
      .prefault({}),
    pollInterval: duration({ positive: true }).default(30_000),
    fingerprint: z
      .enum(['full', 'counts', 'none'], {
        error: (iss) =>
          `must be counts (the default: row counts and schema), full (also checksums: only when nothing writes) ` +
          `or none (schema and migration version), got ${describeValue(iss.input)}`,
      })
      .optional(),
    countTolerance: rate.optional(),
    restore: z
      .strictObject({
        instanceClass: instanceClass.optional(),
        subnetGroup: awsName('a DB subnet group name').optional(),
        securityGroups: z.array(securityGroup).optional(),
        parameterGroup: awsName('a DB parameter group name').optional(),
        clusterParameterGroup: awsName('a DB cluster parameter group name').optional(),
        optionGroup: awsName('an option group name').optional(),
        multiAz: z.boolean().optional(),
        storageType: z.enum(['gp2', 'gp3', 'io1', 'io2', 'standard', 'aurora', 'aurora-iopt1']).optional(),
        deletionProtection: z.boolean().optional(),
        iamAuth: z.boolean().optional(),
        monitoringInterval: z
          .union(
            [z.literal(0), z.literal(1), z.literal(5), z.literal(10), z.literal(15), z.literal(30), z.literal(60)],
            {
              error: 'must be one of 0, 1, 5, 10, 15, 30, 60 (seconds of Enhanced Monitoring; 0 turns it off)',
            },
          )
          .optional(),
        monitoringRoleArn: z
          .string()
          .regex(
            /^arn:aws[a-z-]*:iam::\d{12}:role\/\S+$/,
            'must be an IAM role ARN like arn:aws:iam::123456789012:role/rds-monitoring',
          )
          .optional(),
        kmsKeyId: z.string().min(1).optional(),
      })
      .optional(),
    retention: z
      .strictObject({
        keep: z.number().int().min(1, 'must keep at least 1 snapshot').optional(),
        maxAge: duration({ positive: true }).optional(),
      })
      .refine((r) => r.keep !== undefined || r.maxAge !== undefined, {
        error: 'needs keep (how many of the newest to keep) and/or maxAge (e.g. 30d), or remove retention',
      })
      .optional(),
  })
  .describe(
    '{ instance | cluster, endpoint, drill: { subnetGroup, securityGroups, instanceClass }, pollInterval, fingerprint, countTolerance, restore, retention }',
  );

/** The `aws` block of an aws-ecs service; which of its keys are required together is checked in cross-checks.ts. */
export const awsEcsSchema = z
  .strictObject({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, {
      error: (iss) => `must be an AWS region like eu-west-1, got ${describeValue(iss.input)}`,
    }),
    endpoint: z
      .url({
        protocol: /^https?$/,
        error: (iss) => `must be an http(s) URL like http://127.0.0.1:5000, got ${describeValue(iss.input)}`,
      })
      .optional(),
    cluster: awsName('an ECS cluster name or ARN'),
    services: blueGreen(awsName('an ECS service name'), 'shop-blue'),
    container: awsName('the container name in the task definition'),
    image: template(['version']).refine((v) => v.includes('{version}'), {
      error: 'must contain {version}, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}',
    }),
    env: z
      .record(
        releaseEnvKey,
        z
          .union([z.string(), z.number(), z.boolean()])
          .transform(String)
          .pipe(template(['version'])),
      )
      .default({}),
    targetGroups: blueGreen(targetGroupArn, 'arn:aws:elasticloadbalancing:...:targetgroup/shop-blue/...'),
    listenerRule: listenerRuleArn.optional(),
    listener: listenerArn.optional(),
    testListener: listenerArn,
    scheme: z.enum(['http', 'https']).default('http'),
    checkHost: z
      .string()
      .regex(
        /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
        {
          error: (iss) =>
            `must be a host name without scheme, port or wildcard, like shop.example.com (the Host header and TLS server ` +
            `name of the checks through the load balancer), got ${describeValue(iss.input)}`,
        },
      )
      .optional(),
    drain: duration().default(30_000),
    rolloutTimeout: duration({ positive: true }).default(15 * 60_000),
    pollInterval: duration({ positive: true }).default(10_000),
    metricsDelay: duration().default(2 * 60_000),
    rds: awsRdsSchema.optional(),
  })
  .describe('{ region, cluster, services, container, image, targetGroups, listenerRule | listener, testListener, rds }')
  .transform((a): AwsEcsSpec => ({
    region: a.region,
    ...(a.endpoint ? { endpoint: a.endpoint } : {}),
    cluster: a.cluster,
    services: a.services,
    container: a.container,
    image: a.image,
    env: a.env,
    targetGroups: a.targetGroups,
    ...(a.listenerRule ? { listenerRule: a.listenerRule } : {}),
    ...(a.listener ? { listener: a.listener } : {}),
    testListener: a.testListener,
    scheme: a.scheme,
    ...(a.checkHost ? { checkHost: a.checkHost.toLowerCase() } : {}),
    drainMs: a.drain,
    rolloutTimeoutMs: a.rolloutTimeout,
    pollIntervalMs: a.pollInterval,
    metricsDelayMs: a.metricsDelay,
    ...(a.rds
      ? {
          rds: {
            ...(a.rds.instance !== undefined ? { instance: a.rds.instance } : {}),
            ...(a.rds.cluster !== undefined ? { cluster: a.rds.cluster } : {}),
            database: '',
            urlEnv: '',
            ...(a.rds.endpoint ? { endpoint: a.rds.endpoint } : {}),
            drill: a.rds.drill,
            pollIntervalMs: a.rds.pollInterval,
            ...(a.rds.fingerprint ? { fingerprint: a.rds.fingerprint } : {}),
            ...(a.rds.countTolerance !== undefined ? { countTolerance: a.rds.countTolerance } : {}),
            ...(a.rds.restore ? { restore: restoreSpec(a.rds.restore) } : {}),
            ...(a.rds.retention
              ? {
                  retention: {
                    ...(a.rds.retention.keep !== undefined ? { keep: a.rds.retention.keep } : {}),
                    ...(a.rds.retention.maxAge !== undefined ? { maxAgeMs: a.rds.retention.maxAge } : {}),
                  },
                }
              : {}),
          },
        }
      : {}),
  }));

/** CloudWatch's period of the load balancer metrics that the aws-ecs analysis reads. */
export const AWS_MIN_INTERVAL_MS = 60_000;

/** aws.rds.restore as the plan holds it: only the keys that are set, monitoringInterval in seconds. */
function restoreSpec(r: Record<string, unknown>): AwsRdsRestoreSpec {
  const { monitoringInterval, ...rest } = r;
  const out = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as AwsRdsRestoreSpec;
  return monitoringInterval === undefined ? out : { ...out, monitoringIntervalS: monitoringInterval as number };
}
