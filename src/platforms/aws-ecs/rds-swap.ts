/** The aws-ecs platform's SwapDatabases: points the service's tasks at a restored RDS instance (or cluster). */
import { AddTagsToResourceCommand } from '@aws-sdk/client-rds';
import {
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
  type Service,
} from '@aws-sdk/client-ecs';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { rdsLiveId } from './naming';
import type { SwapDatabases } from '../types';
import type { AwsContext } from './context';
import { registrationOf } from './ecs-releases';
import { promoteRestored } from './rds-restore-settings';
import { awsCall, awsPermanent, classifyAwsError } from './errors';
import {
  RDS_TAG,
  RESTORE_FAILED_STATES,
  rdsOf,
  instanceFor,
  writerOf,
  tagList,
  notYet,
  rdsCalls,
  writerState,
} from './rds-kinds';

/**
 * Puts a restored RDS instance in the place of the service's instance by pointing the service's tasks at its
 * endpoint: the holder aws.rds.endpoint says where tasks read the database host from.
 * - `{ ssmParameter }`: the parameter is set to the instance's address (the host name only, without the port: RDS
 *   restores keep the source's port, and the tasks' own configuration has it), then every colour service with
 *   tasks is redeployed (forceNewDeployment) so its tasks read the new value.
 * - `{ secret, key }`: the secret's JSON gets `key` (default "host") set to the address, then the same redeploy.
 * - `{ taskEnv }`: a new revision of each colour service's task definition with that variable of aws.container
 *   set to the address, deployed with UpdateService.
 * Idempotent: a holder that already names the address, with the services deployed since it was written, is
 * 'already swapped'; a retry after a crash between the write and the redeploy redeploys.
 *
 * The replaced instance keeps its identifier (renaming an RDS instance changes its endpoint) and is never deleted:
 * it is tagged runbook:replaced-by=<restored instance>, and `replacedAs` names nothing on RDS. After a swap,
 * runbook.yaml's aws.rds.instance must name the restored instance (and aws.rds.urlEnv's URL its endpoint), or the
 * next deploy snapshots the replaced one. On an Aurora cluster (aws.rds.cluster) the same holds for clusters: the
 * address is the restored cluster's writer endpoint, once the cluster and its writer instance are available. The rollout itself is not awaited here: ECS replaces the tasks.
 * Throws NoRdsSettings, NoEndpointHolder, RestoreFailed, SecretNotJson, EcsServiceMissing, ContainerMissing or the
 * awsCall failures (non-retryable); a plain retryable Error while the restored instance is not available yet.
 */
export function createRdsSwap(ctx: AwsContext): SwapDatabases {
  const calls = rdsCalls(ctx);
  const { ecs, ssm, secrets, rds: rdsClient } = ctx.clients;

  return async (database, restored, _replacedAs) => {
    const { spec } = ctx;
    const rds = rdsOf(spec);
    const holder = rds.endpoint;
    if (!holder) {
      throw awsPermanent(
        'NoEndpointHolder',
        `aws.rds.endpoint is required to swap ${database} for ${restored}: name the SSM parameter, secret or task ` +
          'environment variable the tasks read the database host from',
      );
    }
    const kind = calls.kindOf(spec);
    const live = rdsLiveId(rds);
    const id = instanceFor(spec, restored);
    const db = await kind.describe(id);
    if (!db) throw awsPermanent('RestoreFailed', `cannot swap: the restored RDS ${kind.noun} ${id} does not exist`);
    const status = db.status ?? 'unknown';
    if (RESTORE_FAILED_STATES.has(status))
      throw awsPermanent('RestoreFailed', `cannot swap: RDS ${kind.noun} ${id} is ${status}`);
    const address = db.address;
    if (status !== 'available' || !address)
      throw notYet(`RDS ${kind.noun} ${id} is ${status}; swapping once it is available`);
    if (kind.noun === 'cluster') {
      const writer = await writerState(calls, id);
      if (writer !== 'available') {
        throw notYet(`the writer ${writerOf(id)} of RDS cluster ${id} is ${writer}; swapping once it is available`);
      }
    }

    if (id !== live) {
      const old = await kind.describe(live);
      if (old?.arn && old.tags[RDS_TAG.replacedBy] !== id) {
        const arn = old.arn;
        await awsCall('rds:AddTagsToResource', `RDS ${kind.noun} ${live}`, () =>
          rdsClient.send(
            new AddTagsToResourceCommand({ ResourceName: arn, Tags: tagList({ [RDS_TAG.replacedBy]: id }) }),
          ),
        );
      }
    }

    const colours = [spec.services.blue, spec.services.green];
    const described = await awsCall(
      'ecs:DescribeServices',
      `ECS services ${colours.join(', ')} in ${spec.cluster}`,
      () => ecs.send(new DescribeServicesCommand({ cluster: spec.cluster, services: colours })),
    );
    const services: Service[] = colours.map((name) => {
      const found = described.services?.find((s) => s.serviceName === name || s.serviceArn?.endsWith(`/${name}`));
      if (!found) {
        throw awsPermanent('EcsServiceMissing', `ECS service ${name} does not exist in cluster ${spec.cluster}`);
      }
      return found;
    });

    const finish = async (outcome: 'swapped' | 'already swapped') => {
      // Maintenance ends after this step: until every redeployed service runs only tasks that read the new host,
      // writes would still land on the old database.
      await untilRedeployed(services.filter((s) => (s.desiredCount ?? 0) > 0).map((s) => s.serviceName ?? ''));
      if (id !== live) await promoteRestored(ctx, id);
      return outcome;
    };

    if ('taskEnv' in holder) return finish(await swapTaskEnv(holder.taskEnv, address, services));

    let writtenAtMs: number | undefined;
    let changed = false;
    if ('ssmParameter' in holder) {
      const name = holder.ssmParameter;
      let current: { Value?: string; LastModifiedDate?: Date } | undefined;
      try {
        const out = await awsCall(
          'ssm:GetParameter',
          `SSM parameter ${name}`,
          () => ssm.send(new GetParameterCommand({ Name: name })),
          ['not-found'],
        );
        current = out.Parameter;
      } catch (err) {
        if (classifyAwsError(err) !== 'not-found') throw err;
      }
      if (current?.Value === address) {
        writtenAtMs = current.LastModifiedDate?.getTime();
      } else {
        await awsCall('ssm:PutParameter', `SSM parameter ${name}`, () =>
          ssm.send(
            new PutParameterCommand(
              current
                ? { Name: name, Value: address, Overwrite: true }
                : { Name: name, Value: address, Type: 'String' },
            ),
          ),
        );
        changed = true;
      }
    } else {
      const { secret } = holder;
      const key = holder.key ?? 'host';
      const out = await awsCall('secretsmanager:GetSecretValue', `secret ${secret}`, () =>
        secrets.send(new GetSecretValueCommand({ SecretId: secret })),
      );
      let value: Record<string, unknown>;
      try {
        value = JSON.parse(out.SecretString ?? '') as Record<string, unknown>;
        if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
      } catch {
        throw awsPermanent('SecretNotJson', `secret ${secret} is not a JSON object, so its "${key}" cannot be set`);
      }
      if (value[key] === address) {
        writtenAtMs = out.CreatedDate?.getTime();
      } else {
        await awsCall('secretsmanager:PutSecretValue', `secret ${secret}`, () =>
          secrets.send(
            new PutSecretValueCommand({ SecretId: secret, SecretString: JSON.stringify({ ...value, [key]: address }) }),
          ),
        );
        changed = true;
      }
    }

    // Tasks read the holder when they start: a service whose newest deployment predates the write still runs
    // tasks with the old host (also when an earlier attempt wrote it and crashed before redeploying).
    const stale = services.filter((s) => {
      if ((s.desiredCount ?? 0) === 0) return false;
      if (changed || writtenAtMs === undefined) return true;
      const primary = s.deployments?.find((d) => d.status === 'PRIMARY');
      return !primary?.createdAt || primary.createdAt.getTime() < writtenAtMs;
    });
    for (const s of stale) {
      const name = s.serviceName ?? '';
      await awsCall('ecs:UpdateService', `ECS service ${name} in ${spec.cluster}`, () =>
        ecs.send(new UpdateServiceCommand({ cluster: spec.cluster, service: name, forceNewDeployment: true })),
      );
    }
    return finish(changed || stale.length > 0 ? 'swapped' : 'already swapped');
  };

  /**
   * Polls until each service has one deployment, COMPLETED, with its desired count running: the tasks started
   * before the holder changed are gone. Waits at most until shortly before the activity's attempt times out (or
   * aws.rolloutTimeout), then throws a retryable Error: the retried swap finds the holder written and waits again.
   * EcsRolloutFailed (non-retryable) when the circuit breaker fails a redeployment.
   */
  async function untilRedeployed(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const { spec } = ctx;
    const attemptEnd = ctx.activity()?.attemptDeadlineMs;
    const deadline = Math.min(ctx.now() + spec.rolloutTimeoutMs, attemptEnd ? attemptEnd - 5_000 : Infinity);
    for (;;) {
      const out = await awsCall('ecs:DescribeServices', `ECS services ${names.join(', ')} in ${spec.cluster}`, () =>
        ecs.send(new DescribeServicesCommand({ cluster: spec.cluster, services: names })),
      );
      const pending: string[] = [];
      for (const s of (out.services ?? []).filter((x) => names.includes(x.serviceName ?? ''))) {
        const deployments = s.deployments ?? [];
        const failed = deployments.find((d) => d.rolloutState === 'FAILED');
        if (failed) {
          throw awsPermanent(
            'EcsRolloutFailed',
            `${s.serviceName}: the redeployment that reads the restored database's host failed: ` +
              `${failed.rolloutStateReason ?? 'no reason given'}`,
          );
        }
        const only = deployments.length === 1 ? deployments[0] : undefined;
        const done = only?.rolloutState === 'COMPLETED' && s.runningCount === s.desiredCount;
        if (!done)
          pending.push(
            `${s.serviceName} (${deployments.length} deployments, ${s.runningCount}/${s.desiredCount} running)`,
          );
      }
      if (pending.length === 0) return;
      ctx.activity()?.heartbeat?.({ waitingFor: pending });
      if (ctx.now() + spec.pollIntervalMs > deadline) {
        throw notYet(`the redeployed services are not stable yet: ${pending.join('; ')}; the swap waits on retry`);
      }
      await ctx.sleep(spec.pollIntervalMs);
    }
  }

  async function swapTaskEnv(variable: string, address: string, services: Service[]) {
    const { spec } = ctx;
    const registered = new Map<string, string>(); // old task definition ARN -> new one (blue and green may share)
    let changed = false;
    for (const s of services) {
      const name = s.serviceName ?? '';
      const arn = s.taskDefinition;
      if (!arn) throw awsPermanent('EcsServiceMissing', `ECS service ${name} has no task definition`);
      let next = registered.get(arn);
      if (next === undefined) {
        const out = await awsCall('ecs:DescribeTaskDefinition', `task definition ${arn}`, () =>
          ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] })),
        );
        const td = out.taskDefinition;
        const container = td?.containerDefinitions?.find((c) => c.name === spec.container);
        if (!td || !container) {
          throw awsPermanent(
            'ContainerMissing',
            `task definition ${arn} has no container ${spec.container} (aws.container in runbook.yaml)`,
          );
        }
        if (container.environment?.find((e) => e.name === variable)?.value === address) {
          next = arn;
        } else {
          const input = registrationOf(td);
          input.containerDefinitions = td.containerDefinitions?.map((c) =>
            c.name === spec.container
              ? {
                  ...c,
                  environment: [
                    ...(c.environment ?? []).filter((e) => e.name !== variable),
                    { name: variable, value: address },
                  ],
                }
              : c,
          );
          if (out.tags && out.tags.length > 0) input.tags = out.tags;
          const made = await awsCall('ecs:RegisterTaskDefinition', `task definition family ${td.family ?? arn}`, () =>
            ecs.send(new RegisterTaskDefinitionCommand(input)),
          );
          next = made.taskDefinition?.taskDefinitionArn ?? arn;
        }
        registered.set(arn, next);
      }
      if (next === arn) continue;
      await awsCall('ecs:UpdateService', `ECS service ${name} in ${spec.cluster}`, () =>
        ecs.send(new UpdateServiceCommand({ cluster: spec.cluster, service: name, taskDefinition: next })),
      );
      changed = true;
    }
    return changed ? ('swapped' as const) : ('already swapped' as const);
  }
}
