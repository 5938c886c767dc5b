import assert from 'node:assert/strict';
import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { clearAwsCaches } from '../../src/platforms/aws-ecs/listener-addresses';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { createEcsCommandRunner, startedByFor } from '../../src/platforms/aws-ecs/ecs-commands';
import { releaseRevision } from '../../src/platforms/aws-ecs/ecs-releases';
import type { CommandProgress, ReleaseCommandRequest } from '../../src/platforms/types';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';
import { fargateTask } from './moto-shop';

/**
 * The ECS release command runner against moto_server (moto 5.2.5), with the real SDK clients: a migration as a
 * one-off Fargate task of the release's revision, placed like the idle colour's service.
 *
 * What moto does, and what it cannot (found by running it; moto/ecs/models.py):
 * - RunTask is recorded as sent: the container override (command), startedBy, the launch type and the awsvpc
 *   network configuration (an ENI attachment in the service's subnet). It ignores clientToken (a second RunTask with
 *   the same token starts a second task), and on anything but FARGATE it needs registered container instances (none
 *   here, so the services are Fargate). It keeps no capacityProviderStrategy on a service (it reports launchType EC2).
 * - moto runs no containers. A task's lastStatus moves one step per DescribeTasks (RUNNING, DEACTIVATING, STOPPING,
 *   DEPROVISIONING, STOPPED: moto's "manual" state progression), while its desiredStatus stays RUNNING; so a task
 *   does reach STOPPED, after four polls, but with no stoppedReason, no createdAt/startedAt/stoppedAt, and its
 *   container's exitCode is moto's constant 0 with lastStatus PENDING: the exit code here proves nothing about the
 *   command. A non-zero exit, ECS's own stop reasons (CannotPullContainerError), capacity failures and AccessDenied
 *   are in test/platforms/aws-ecs/ecs-commands.unit.test.ts.
 * - StopTask sets STOPPED, desiredStatus STOPPED and the reason at once (no SIGTERM grace), so the timeout path runs.
 * - ListTasks filters by startedBy and desiredStatus: adoption by startedBy runs for real.
 * - No logs: a task writes nothing to CloudWatch Logs, so the runner here reads none (the worker's reader,
 *   cloudWatchLogsReader, and the tail are in the mock tests): only the stream's name is checked.
 */
describe('ECS release commands against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let ecs: ECSClient;
  let ctx: AwsContext;
  let greenSubnet: string;

  const request = (over: Partial<ReleaseCommandRequest> = {}): ReleaseCommandRequest => ({
    service: 'shop',
    environment: 'moto',
    version: 'v2',
    releaseId: 'shop-v2-1a2b',
    purpose: 'migrate',
    runId: 'deploy-shop-moto-1a2b-migrate',
    command: ['npm', 'run', 'db:migrate'],
    timeoutMs: 60_000,
    ...over,
  });

  before(async () => {
    moto = await startMoto();
    restoreEnv = withMotoCredentials();
    const config = { region, endpoint: moto.endpoint };
    const ec2 = new EC2Client(config);
    const elb = new ElasticLoadBalancingV2Client(config);
    ecs = new ECSClient(config);
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const vpcId = subnets[0]!.VpcId!;
    const inVpc = subnets.filter((s) => s.VpcId === vpcId).map((s) => s.SubnetId!);
    greenSubnet = inVpc[1]!;
    const securityGroup = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups![0]!.GroupId!;
    ec2.destroy();

    await ecs.send(new CreateClusterCommand({ clusterName: 'shop-moto' }));
    const taskDefinition = (
      await ecs.send(
        new RegisterTaskDefinitionCommand({
          family: 'shop',
          ...fargateTask,
          taskRoleArn: 'arn:aws:iam::123456789012:role/shop-task',
          executionRoleArn: 'arn:aws:iam::123456789012:role/shop-exec',
          containerDefinitions: [
            {
              name: 'app',
              image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1',
              memory: 512,
              secrets: [{ name: 'DATABASE_URL', valueFrom: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db' }],
              logConfiguration: {
                logDriver: 'awslogs',
                options: { 'awslogs-group': '/ecs/shop', 'awslogs-stream-prefix': 'shop', 'awslogs-region': region },
              },
            },
          ],
        }),
      )
    ).taskDefinition!.taskDefinitionArn!;
    const lb = (
      await elb.send(
        new CreateLoadBalancerCommand({ Name: 'shop-lb', Subnets: inVpc.slice(0, 2), Type: 'application' }),
      )
    ).LoadBalancers![0]!.LoadBalancerArn!;
    const targetGroup = async (name: string) =>
      (
        await elb.send(
          new CreateTargetGroupCommand({ Name: name, Protocol: 'HTTP', Port: 8080, VpcId: vpcId, TargetType: 'ip' }),
        )
      ).TargetGroups![0]!.TargetGroupArn!;
    const targetGroups = { blue: await targetGroup('shop-blue'), green: await targetGroup('shop-green') };
    const listener = async (port: number, blue: number, green: number) =>
      (
        await elb.send(
          new CreateListenerCommand({
            LoadBalancerArn: lb,
            Protocol: 'HTTP',
            Port: port,
            DefaultActions: [
              {
                Type: 'forward',
                ForwardConfig: {
                  TargetGroups: [
                    { TargetGroupArn: targetGroups.blue, Weight: blue },
                    { TargetGroupArn: targetGroups.green, Weight: green },
                  ],
                },
              },
            ],
          }),
        )
      ).Listeners![0]!.ListenerArn!;
    const production = await listener(80, 100, 0);
    const testListener = await listener(8443, 0, 1);
    elb.destroy();
    for (const [name, subnet, desiredCount] of [
      ['shop-blue', inVpc[0]!, 1],
      ['shop-green', greenSubnet, 0],
    ] as const) {
      await ecs.send(
        new CreateServiceCommand({
          cluster: 'shop-moto',
          serviceName: name,
          taskDefinition,
          desiredCount,
          launchType: 'FARGATE',
          platformVersion: 'LATEST',
          networkConfiguration: {
            awsvpcConfiguration: { subnets: [subnet], securityGroups: [securityGroup], assignPublicIp: 'DISABLED' },
          },
        }),
      );
    }
    const spec: AwsEcsSpec = {
      region,
      endpoint: moto.endpoint,
      cluster: 'shop-moto',
      services: { blue: 'shop-blue', green: 'shop-green' },
      container: 'app',
      image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{version}',
      env: { APP_VERSION: '{version}' },
      targetGroups,
      listener: production,
      testListener,
      scheme: 'http',
      drainMs: 0,
      metricsDelayMs: 0,
      rolloutTimeoutMs: 30_000,
      pollIntervalMs: 20,
    };
    clearAwsCaches();
    ctx = {
      spec,
      clients: awsClients(region, moto.endpoint),
      resolveAddress: (host, port) => ({ host, port }),
      env: {},
      pgBinDir: '',
      isRunning: async () => true,
      ...realTime,
      activity: () => undefined,
    };
  });

  after(async () => {
    ecs?.destroy();
    await moto?.stop();
    restoreEnv?.();
  });

  it("runs the migration as a Fargate task of the version's revision, placed like the idle service", async () => {
    const progress: CommandProgress[] = [];
    const result = await createEcsCommandRunner(ctx).run(request(), (p) => progress.push(p));

    assert.equal(result.adopted, false);
    assert.equal(result.timedOut, false);
    assert.equal(result.exitCode, 0, "moto's constant exit code: it runs no container");
    assert.deepEqual(
      progress.filter((p) => p.phase === 'running').map((p) => p.detail?.split(': ')[1]),
      ['RUNNING', 'DEACTIVATING', 'STOPPING', 'DEPROVISIONING', 'STOPPED'],
      "moto's state progression, one step per DescribeTasks",
    );
    const tasks = await ecs.send(
      new ListTasksCommand({ cluster: 'shop-moto', startedBy: 'deploy-shop-moto-1a2b-migrate' }),
    );
    assert.equal(tasks.taskArns?.length, 1);
    const [task] = (await ecs.send(new DescribeTasksCommand({ cluster: 'shop-moto', tasks: tasks.taskArns! }))).tasks!;
    assert.deepEqual(task?.overrides?.containerOverrides, [{ name: 'app', command: ['npm', 'run', 'db:migrate'] }]);
    assert.equal(task?.launchType, 'FARGATE');
    const eni = task?.attachments?.[0]?.details?.find((d) => d.name === 'subnetId');
    assert.equal(eni?.value, greenSubnet, "in the idle (green) service's subnet");

    const td = (await ecs.send(
      new DescribeTaskDefinitionCommand({ taskDefinition: task!.taskDefinitionArn!, include: ['TAGS'] }),
    ))!;
    assert.equal(
      td.taskDefinition?.containerDefinitions?.[0]?.image,
      '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2',
    );
    assert.equal(td.taskDefinition?.taskRoleArn, 'arn:aws:iam::123456789012:role/shop-task');
    assert.ok(td.tags?.some((t) => t.key === TAG.release && t.value === 'shop-v2-1a2b'));
    const taskId = task!.taskArn!.split('/').pop();
    assert.match(result.logLocation, new RegExp(`^CloudWatch Logs group /ecs/shop, stream shop/app/${taskId} `));

    // start() (or another command) of the release finds that revision instead of registering another.
    const again = await releaseRevision(ctx, td.taskDefinition!.taskDefinitionArn!.replace(/:\d+$/, ':1'), request());
    assert.equal(again.registered, false);
    assert.equal(again.arn, task!.taskDefinitionArn);
  });

  it('a retried run adopts the task its runId started (ListTasks by startedBy): no second task', async () => {
    const result = await createEcsCommandRunner(ctx).run(request());
    assert.equal(result.adopted, true);
    const tasks = await ecs.send(
      new ListTasksCommand({ cluster: 'shop-moto', startedBy: 'deploy-shop-moto-1a2b-migrate' }),
    );
    assert.equal(tasks.taskArns?.length, 1);
  });

  it('stops a task past its timeout (StopTask with the reason) and adopts the stopped run as timed out', async () => {
    const runId = 'deploy-shop-moto-1a2b-migrate-status-with-a-long-name';
    const result = await createEcsCommandRunner(ctx).run(request({ runId, purpose: 'migrate-status', timeoutMs: 1 }));
    assert.equal(result.timedOut, true);
    assert.equal(result.exitCode, null);
    assert.equal(result.stoppedReason, 'runbook: timed out after 1ms');
    const startedBy = startedByFor(runId);
    assert.notEqual(startedBy, runId, 'hashed: longer than 36');
    const stopped = await ecs.send(new ListTasksCommand({ cluster: 'shop-moto', startedBy, desiredStatus: 'STOPPED' }));
    assert.equal(stopped.taskArns?.length, 1);

    const retried = await createEcsCommandRunner(ctx).run(request({ runId, purpose: 'migrate-status', timeoutMs: 1 }));
    assert.deepEqual([retried.adopted, retried.timedOut, retried.exitCode], [true, true, null]);
  });
});
