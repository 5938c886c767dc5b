import assert from 'node:assert/strict';
import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  ECSClient,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateRuleCommand,
  CreateTargetGroupCommand,
  DescribeListenersCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  ElasticLoadBalancingV2Client,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { readTraffic, WEIGHTS_TAG } from '../../src/platforms/aws-ecs/blue-green';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { createElbRouter } from '../../src/platforms/aws-ecs/elb-router';
import { clearAwsCaches } from '../../src/platforms/aws-ecs/listener-addresses';
import type { RouteSpec } from '../../src/platforms/types';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';
import { fargateTask } from './moto-shop';

/**
 * The `aws.listenerRule` path against moto_server with the real ELBv2 client: the production traffic is a rule with a
 * host condition on a shared listener (the usual setup), and runbook changes only that rule's actions (ModifyRule),
 * never the listener's default action nor the rule's conditions.
 *
 * A canary's split goes through the rule too: setWeights (50/50, then 0/100) is a ModifyRule read back from moto.
 *
 * What moto cannot show, and where it is covered: moto's rule keeps the forward action as sent but routes nothing
 * (no request reaches a target group here): a request's way through a rule with a host condition, the check host,
 * is in ecs-releases.unit.test.ts ('check host / SNI of a rule with a host condition (issue 13 item 5)', with
 * aws-sdk-client-mock); authenticate-* actions before the forward (re-sent without the client secret) are in
 * elb-router.unit.test.ts.
 */
describe('ELB listener rule (aws.listenerRule) against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let elb: ElasticLoadBalancingV2Client;
  let ctx: AwsContext;
  let rule: string;
  let listener: string;
  let targetGroups: { blue: string; green: string };
  const route = { name: 'shop-moto' } as unknown as RouteSpec;

  before(async () => {
    moto = await startMoto();
    restoreEnv = withMotoCredentials();
    const config = { region, endpoint: moto.endpoint };
    const ec2 = new EC2Client(config);
    elb = new ElasticLoadBalancingV2Client(config);
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const vpcId = subnets[0]!.VpcId!;
    const inVpc = subnets.filter((s) => s.VpcId === vpcId).map((s) => s.SubnetId!);
    const securityGroup = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups![0]!.GroupId!;
    ec2.destroy();
    const lb = (
      await elb.send(
        new CreateLoadBalancerCommand({ Name: 'shared-lb', Subnets: inVpc.slice(0, 2), Type: 'application' }),
      )
    ).LoadBalancers![0]!.LoadBalancerArn!;
    const targetGroup = async (name: string) =>
      (
        await elb.send(
          new CreateTargetGroupCommand({ Name: name, Protocol: 'HTTP', Port: 8080, VpcId: vpcId, TargetType: 'ip' }),
        )
      ).TargetGroups![0]!.TargetGroupArn!;
    targetGroups = { blue: await targetGroup('shop-blue'), green: await targetGroup('shop-green') };
    const other = await targetGroup('other-app');
    listener = (
      await elb.send(
        new CreateListenerCommand({
          LoadBalancerArn: lb,
          Protocol: 'HTTP',
          Port: 80,
          DefaultActions: [{ Type: 'forward', TargetGroupArn: other }],
        }),
      )
    ).Listeners![0]!.ListenerArn!;
    rule = (
      await elb.send(
        new CreateRuleCommand({
          ListenerArn: listener,
          Priority: 10,
          Conditions: [{ Field: 'host-header', HostHeaderConfig: { Values: ['shop.example.com'] } }],
          Actions: [
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
    ).Rules![0]!.RuleArn!;
    // The two colours' ECS services, tagged with the releases they run (as ecs-releases tags them): setWeights
    // names releases, and the router finds each one's colour by these tags.
    const ecs = new ECSClient(config);
    await ecs.send(new CreateClusterCommand({ clusterName: 'shop-moto' }));
    await ecs.send(
      new RegisterTaskDefinitionCommand({
        family: 'shop',
        ...fargateTask,
        containerDefinitions: [{ name: 'app', image: 'shop:1.0.0', memory: 512 }],
      }),
    );
    for (const [colour, release] of [
      ['blue', 'shop-1-0-0-aaaa'],
      ['green', 'shop-2-0-0-bbbb'],
    ] as const) {
      await ecs.send(
        new CreateServiceCommand({
          cluster: 'shop-moto',
          serviceName: `shop-${colour}`,
          taskDefinition: 'shop',
          desiredCount: 1,
          launchType: 'FARGATE',
          networkConfiguration: {
            awsvpcConfiguration: { subnets: inVpc, securityGroups: [securityGroup], assignPublicIp: 'DISABLED' },
          },
          loadBalancers: [{ targetGroupArn: targetGroups[colour], containerName: 'app', containerPort: 8080 }],
          tags: [
            { key: TAG.service, value: 'shop' },
            { key: TAG.environment, value: 'prod' },
            { key: TAG.release, value: release },
          ],
        }),
      );
    }
    ecs.destroy();
    const spec = {
      region,
      endpoint: moto.endpoint,
      cluster: 'shop-moto',
      services: { blue: 'shop-blue', green: 'shop-green' },
      container: 'app',
      targetGroups,
      listenerRule: rule,
      checkHost: 'shop.example.com',
      drainMs: 0,
      metricsDelayMs: 0,
      pollIntervalMs: 20,
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
    } as AwsContext;
  });

  after(async () => {
    elb?.destroy();
    await moto?.stop();
    restoreEnv?.();
  });

  const theRule = async () => (await elb.send(new DescribeRulesCommand({ RuleArns: [rule] }))).Rules![0]!;
  const tagsOfRule = async () =>
    Object.fromEntries(
      ((await elb.send(new DescribeTagsCommand({ ResourceArns: [rule] }))).TagDescriptions?.[0]?.Tags ?? []).map(
        (t) => [t.Key, t.Value],
      ),
    );

  it('reads the weights from the rule, not from the listener', async () => {
    const traffic = await readTraffic(ctx);
    assert.equal(traffic.kind, 'rule');
    assert.equal(traffic.arn, rule);
    assert.deepEqual(traffic.weights, { blue: 100, green: 0 });
  });

  it("maintenance replaces only the rule's forward action (ModifyRule), keeps the weights in its tag, and puts them back", async () => {
    const router = createElbRouter(ctx);
    await router.setMaintenance(route, true);
    const during = await theRule();
    assert.equal(during.Actions?.length, 1);
    assert.equal(during.Actions?.[0]?.Type, 'fixed-response');
    assert.equal(during.Actions?.[0]?.FixedResponseConfig?.StatusCode, '503');
    assert.equal(during.Actions?.[0]?.FixedResponseConfig?.MessageBody, 'maintenance: retry later');
    assert.deepEqual(during.Conditions?.[0]?.HostHeaderConfig?.Values, ['shop.example.com']);
    assert.ok((await tagsOfRule())[WEIGHTS_TAG], `the ${WEIGHTS_TAG} tag is on the rule`);
    assert.equal((await readTraffic(ctx)).maintenance, true);
    await router.setMaintenance(route, true); // idempotent: the saved weights are not overwritten by none

    await router.setMaintenance(route, false);
    const after = await theRule();
    assert.equal(after.Actions?.[0]?.Type, 'forward');
    assert.deepEqual(
      after.Actions?.[0]?.ForwardConfig?.TargetGroups?.map((g) => [g.TargetGroupArn, g.Weight]),
      [
        [targetGroups.blue, 100],
        [targetGroups.green, 0],
      ],
    );
    assert.deepEqual(after.Conditions?.[0]?.HostHeaderConfig?.Values, ['shop.example.com']);
    assert.equal((await tagsOfRule())[WEIGHTS_TAG], undefined);
    const defaults = (await elb.send(new DescribeListenersCommand({ ListenerArns: [listener] }))).Listeners![0]!
      .DefaultActions;
    assert.equal(defaults?.[0]?.Type, 'forward');
    assert.notEqual(defaults?.[0]?.TargetGroupArn, targetGroups.blue);
  });

  it("setWeights moves a canary's split through ModifyRule (50/50, then 0/100), read back from the rule in moto", async () => {
    clearAwsCaches();
    const router = createElbRouter(ctx);
    const forwardOf = async () =>
      (await theRule()).Actions?.find((a) => a.Type === 'forward')?.ForwardConfig?.TargetGroups?.map((g) => [
        g.TargetGroupArn,
        g.Weight,
      ]);
    const listenerDefault = async () =>
      (await elb.send(new DescribeListenersCommand({ ListenerArns: [listener] }))).Listeners![0]!.DefaultActions;
    const defaultBefore = await listenerDefault();

    await router.setWeights(route, { 'shop-1-0-0-aaaa': 50, 'shop-2-0-0-bbbb': 50 });
    assert.deepEqual(await forwardOf(), [
      [targetGroups.blue, 50],
      [targetGroups.green, 50],
    ]);
    assert.deepEqual((await readTraffic(ctx)).weights, { blue: 50, green: 50 });

    await router.setWeights(route, { 'shop-1-0-0-aaaa': 0, 'shop-2-0-0-bbbb': 100 });
    assert.deepEqual(await forwardOf(), [
      [targetGroups.blue, 0],
      [targetGroups.green, 100],
    ]);
    assert.deepEqual((await readTraffic(ctx)).weights, { blue: 0, green: 100 });
    const after = await theRule();
    assert.deepEqual(after.Conditions?.[0]?.HostHeaderConfig?.Values, ['shop.example.com'], 'the conditions stay');
    assert.equal(after.Priority, '10');
    assert.deepEqual(await listenerDefault(), defaultBefore, "the listener's default action is not touched");
  });

  it("refuses the listener's default rule with the setting to use instead", async () => {
    const rules = (await elb.send(new DescribeRulesCommand({ ListenerArn: listener }))).Rules ?? [];
    const byDefault = rules.find((r) => r.IsDefault)!;
    clearAwsCaches();
    await assert.rejects(
      readTraffic({ ...ctx, spec: { ...ctx.spec, listenerRule: byDefault.RuleArn! } }),
      (err: Error) => {
        assert.equal((err as { type?: string }).type, 'ElbDefaultRule');
        assert.match(err.message, /set aws\.listener: .* instead of aws\.listenerRule/);
        return true;
      },
    );
  });
});
