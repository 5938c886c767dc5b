import assert from 'node:assert/strict';
import {
  ApplicationAutoScalingClient,
  DescribeScalableTargetsCommand,
  DescribeScalingPoliciesCommand,
  DescribeScheduledActionsCommand,
  PutScalingPolicyCommand,
  PutScheduledActionCommand,
  RegisterScalableTargetCommand,
} from '@aws-sdk/client-application-auto-scaling';
import { DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  ECSClient,
  ListTagsForResourceCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { describeColours } from '../../src/platforms/aws-ecs/blue-green';
import { prepareStartingColour, SCALING_TAG } from '../../src/platforms/aws-ecs/colour-scaling';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { awsDoctorChecks } from '../../src/platforms/aws-ecs/doctor';
import { createEcsReleaseRunner } from '../../src/platforms/aws-ecs/ecs-releases';
import { createElbRouter } from '../../src/platforms/aws-ecs/elb-router';
import { clearAwsCaches } from '../../src/platforms/aws-ecs/listener-addresses';
import type { RouteSpec } from '../../src/platforms/types';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';

/**
 * Application Auto Scaling of the two colours against moto_server, with the real SDK clients: the live colour's
 * scalable target (min 2, max 6), a target tracking policy and a scheduled action; the idle colour's target with a
 * minimum of 1 (the defect: it keeps the idle colour running). A release starting on the idle colour copies the live
 * colour's bounds, policy and schedule and suspends scale-in on both colours; the colour that the router gives all the
 * traffic (setWeights on the production listener) gets the team's state back; stopping the old colour (the release
 * runner's stop) leaves it at min 0/max 0 with all scaling suspended.
 *
 * What moto cannot show, and where it is covered: moto keeps scalable targets, their SuspendedState, policies and
 * scheduled actions as sent, but scales nothing: registering a minimum above a service's desired count does not change
 * the count, policies and their alarms never fire, scheduled actions never run (so "the idle colour is scaled back
 * up" is shown by its MinCapacity, not by tasks). It never answers AccessDenied or ConcurrentUpdateException, and the
 * order of the calls (bounds copied after the UpdateService, the leaving colour idled before it is scaled to 0), a
 * retried start reading the team's state from the tag, step scaling policies (not copied) and the rollback path are in
 * the mock sequences of test/platforms/aws-ecs/ecs-releases.unit.test.ts ('Application Auto Scaling per colour').
 */
describe('Application Auto Scaling per colour against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  const cluster = 'shop-moto';
  const ids = { blue: `service/${cluster}/shop-blue`, green: `service/${cluster}/shop-green` };
  const common = { ServiceNamespace: 'ecs', ScalableDimension: 'ecs:service:DesiredCount' } as const;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let ecs: ECSClient;
  let aas: ApplicationAutoScalingClient;
  let ctx: AwsContext;
  let arns: { blue: string; green: string };

  before(async () => {
    moto = await startMoto();
    restoreEnv = withMotoCredentials();
    const config = { region, endpoint: moto.endpoint };
    ecs = new ECSClient(config);
    aas = new ApplicationAutoScalingClient(config);
    await ecs.send(new CreateClusterCommand({ clusterName: cluster }));
    await ecs.send(
      new RegisterTaskDefinitionCommand({
        family: 'shop',
        containerDefinitions: [{ name: 'app', image: 'shop:1.0.0', memory: 512 }],
      }),
    );
    const service = async (name: string, desiredCount: number, tags: Array<{ key: string; value: string }>) =>
      (
        await ecs.send(
          new CreateServiceCommand({ cluster, serviceName: name, taskDefinition: 'shop', desiredCount, tags }),
        )
      ).service!.serviceArn!;
    const identity = [
      { key: TAG.service, value: 'shop' },
      { key: TAG.environment, value: 'prod' },
    ];
    arns = {
      blue: await service('shop-blue', 2, [...identity, { key: TAG.release, value: 'shop-1-0-0-aaaa' }]),
      green: await service('shop-green', 0, identity),
    };
    // What the team registered (Terraform, say): the live colour's bounds, policy and schedule; the idle colour's min 1.
    await aas.send(
      new RegisterScalableTargetCommand({ ...common, ResourceId: ids.blue, MinCapacity: 2, MaxCapacity: 6 }),
    );
    await aas.send(
      new RegisterScalableTargetCommand({ ...common, ResourceId: ids.green, MinCapacity: 1, MaxCapacity: 6 }),
    );
    await aas.send(
      new PutScalingPolicyCommand({
        ...common,
        ResourceId: ids.blue,
        PolicyName: 'cpu60',
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingScalingPolicyConfiguration: {
          TargetValue: 60,
          PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        },
      }),
    );
    await aas.send(
      new PutScheduledActionCommand({
        ...common,
        ResourceId: ids.blue,
        ScheduledActionName: 'nightly',
        Schedule: 'cron(0 22 * * ? *)',
        ScalableTargetAction: { MinCapacity: 1, MaxCapacity: 3 },
      }),
    );
    // The production listener forwards 100/0 to the colours' target groups: the router moves the traffic.
    const ec2 = new EC2Client(config);
    const elb = new ElasticLoadBalancingV2Client(config);
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const vpcId = subnets[0]!.VpcId!;
    const inVpc = subnets.filter((x) => x.VpcId === vpcId).map((x) => x.SubnetId!);
    const lb = (await elb.send(new CreateLoadBalancerCommand({ Name: 'shop', Subnets: inVpc.slice(0, 2) })))
      .LoadBalancers![0]!.LoadBalancerArn!;
    const group = async (Name: string) =>
      (
        await elb.send(
          new CreateTargetGroupCommand({ Name, Protocol: 'HTTP', Port: 8080, VpcId: vpcId, TargetType: 'ip' }),
        )
      ).TargetGroups![0]!.TargetGroupArn!;
    const targetGroups = { blue: await group('shop-blue'), green: await group('shop-green') };
    const listener = (
      await elb.send(
        new CreateListenerCommand({
          LoadBalancerArn: lb,
          Protocol: 'HTTP',
          Port: 80,
          DefaultActions: [
            {
              Type: 'forward',
              ForwardConfig: {
                TargetGroups: [
                  { TargetGroupArn: targetGroups.blue, Weight: 100 },
                  { TargetGroupArn: targetGroups.green, Weight: 0 },
                ],
              },
            },
          ],
        }),
      )
    ).Listeners![0]!.ListenerArn!;
    ec2.destroy();
    elb.destroy();
    const spec = {
      region,
      endpoint: moto.endpoint,
      cluster,
      services: { blue: 'shop-blue', green: 'shop-green' },
      targetGroups,
      listener,
      drainMs: 0,
    } as unknown as AwsEcsSpec;
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
    aas?.destroy();
    restoreEnv?.();
    await moto?.stop();
  });

  const targets = async () => {
    const res = await aas.send(
      new DescribeScalableTargetsCommand({ ServiceNamespace: 'ecs', ResourceIds: [ids.blue, ids.green] }),
    );
    const of = (id: string) => {
      const t = res.ScalableTargets?.find((x) => x.ResourceId === id);
      const s = t?.SuspendedState;
      return [
        t?.MinCapacity,
        t?.MaxCapacity,
        s?.DynamicScalingInSuspended,
        s?.DynamicScalingOutSuspended,
        s?.ScheduledScalingSuspended,
      ];
    };
    return { blue: of(ids.blue), green: of(ids.green) };
  };
  const scalingTags = async () =>
    Promise.all(
      [arns.blue, arns.green].map(
        async (resourceArn) =>
          (await ecs.send(new ListTagsForResourceCommand({ resourceArn }))).tags?.find((t) => t.key === SCALING_TAG)
            ?.value,
      ),
    );

  it('copies the live colour to the starting one, suspends scale-in during the canary, restores it, idles the old colour at min 0', async () => {
    const doctor = async () =>
      (await awsDoctorChecks(ctx.spec, { service: 'shop', environment: 'prod' }, {})).find(
        (c) => c.check === 'autoscaling',
      );
    const before = await doctor();
    assert.equal(before?.ok, false, 'doctor flags the idle colour with a minimum above 0');
    assert.match(before?.detail ?? '', /the idle colour shop-green has MinCapacity 1/);

    // start() on green: its release tags and UpdateService (as ecs-releases does), then the scaling of the colours.
    await ecs.send(
      new TagResourceCommand({ resourceArn: arns.green, tags: [{ key: TAG.release, value: 'shop-2-0-0-bbbb' }] }),
    );
    await ecs.send(new UpdateServiceCommand({ cluster, service: 'shop-green', desiredCount: 2 }));
    await prepareStartingColour(ctx, await describeColours(ctx), 'green');
    assert.deepEqual(await targets(), {
      blue: [2, 6, true, false, false],
      green: [2, 6, true, false, false],
    });
    assert.deepEqual(await scalingTags(), ['in=false/out=false/scheduled=false', 'in=false/out=false/scheduled=false']);
    const copied = await aas.send(
      new DescribeScalingPoliciesCommand({ ServiceNamespace: 'ecs', ResourceId: ids.green }),
    );
    assert.deepEqual(
      copied.ScalingPolicies?.map((p) => [
        p.PolicyName,
        p.PolicyType,
        p.TargetTrackingScalingPolicyConfiguration?.TargetValue,
      ]),
      [['cpu60', 'TargetTrackingScaling', 60]],
    );
    const scheduled = await aas.send(
      new DescribeScheduledActionsCommand({ ServiceNamespace: 'ecs', ResourceId: ids.green }),
    );
    assert.deepEqual(
      scheduled.ScheduledActions?.map((a) => [a.ScheduledActionName, a.Schedule, a.ScalableTargetAction?.MaxCapacity]),
      [['nightly', 'cron(0 22 * * ? *)', 3]],
    );
    // A retried start changes nothing more.
    await prepareStartingColour(ctx, await describeColours(ctx), 'green');
    assert.equal(
      (await aas.send(new DescribeScalingPoliciesCommand({ ServiceNamespace: 'ecs', ResourceId: ids.green })))
        .ScalingPolicies?.length,
      1,
    );

    // The canary's steps: 50% changes nothing; at 100% green scales in again as the team had it, and blue keeps its
    // capacity for a rollback until it is stopped.
    const router = createElbRouter(ctx);
    const route = { service: 'shop', environment: 'prod', listenPort: 0 } as unknown as RouteSpec;
    await router.setWeights(route, { 'shop-1-0-0-aaaa': 50, 'shop-2-0-0-bbbb': 50 });
    assert.deepEqual((await targets()).green, [2, 6, true, false, false]);
    await router.setWeights(route, { 'shop-1-0-0-aaaa': 0, 'shop-2-0-0-bbbb': 100 });
    assert.deepEqual(await targets(), {
      blue: [2, 6, true, false, false],
      green: [2, 6, false, false, false],
    });

    // Go-live: blue leaves the route and is stopped.
    await router.removeMember(route, 'shop-1-0-0-aaaa', 0);
    assert.equal(await createEcsReleaseRunner(ctx).stop('shop', 'prod', 'shop-1-0-0-aaaa', 0), true);
    assert.deepEqual(await targets(), {
      blue: [0, 0, true, true, true],
      green: [2, 6, false, false, false],
    });
    assert.deepEqual(await scalingTags(), [undefined, undefined]);
    const after = await doctor();
    assert.equal(after?.ok, true, after?.detail);
    assert.match(after?.detail ?? '', /shop-green \(green\): min 2, max 6/);
  });
});
