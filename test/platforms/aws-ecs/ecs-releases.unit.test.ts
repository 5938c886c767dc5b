import assert from 'node:assert/strict';
import {
  AccessDeniedException,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ListTaskDefinitionsCommand,
  RegisterTaskDefinitionCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateServiceCommand,
  type Deployment,
  type Service,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  DescribeTargetHealthCommand,
  ModifyListenerCommand,
  ModifyRuleCommand,
  type TargetHealthDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  ConcurrentUpdateException,
  DescribeScalableTargetsCommand,
  DescribeScalingPoliciesCommand,
  DescribeScheduledActionsCommand,
  PutScalingPolicyCommand,
  PutScheduledActionCommand,
  RegisterScalableTargetCommand,
  type ScalableTarget,
} from '@aws-sdk/client-application-auto-scaling';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mockClient } from 'aws-sdk-client-mock';
import { clearAwsCaches } from '../../../src/platforms/aws-ecs/listener-addresses';
import { awsClients } from '../../../src/platforms/aws-ecs/context';
import { TAG } from '../../../src/platforms/aws-ecs/context';
import { createEcsReleaseRunner, TASK_DEFINITION_TAG } from '../../../src/platforms/aws-ecs/ecs-releases';
import { SCALING_TAG } from '../../../src/platforms/aws-ecs/colour-scaling';
import { scalingCheck } from '../../../src/platforms/aws-ecs/doctor';
import { createElbRouter } from '../../../src/platforms/aws-ecs/elb-router';
import { PlatformError, type RouteSpec, type StartReleaseRequest } from '../../../src/platforms/types';
import {
  BLUE_TG,
  ECS_ARN,
  fakeAwsContext,
  GREEN_TG,
  LB,
  PROD_LISTENER,
  rejection,
  TEST_LISTENER,
  testSpec,
} from './fixture';

/** The clients fakeAwsContext() hands the code under test: mocked one by one, never the SDK classes, so that
 * other test files (the moto contract test) keep real clients. */
const testClients = awsClients('us-east-1');
const TD_OLD = `${ECS_ARN}:task-definition/shop:7`;
const TD_NEW = `${ECS_ARN}:task-definition/shop:8`;

const spec = testSpec({ env: { APP_VERSION: '{version}', FEATURE_X: 'on' }, scheme: 'https' });

const ecs = mockClient(testClients.ecs);
const elb = mockClient(testClients.elb);
const aas = mockClient(testClients.autoscaling);

/** The runner's context: the load balancer's addresses map to local ports, and sleeping moves the clock. */
const fakeContext = () =>
  fakeAwsContext({
    spec,
    resolveAddress: (_host, port) => ({ host: '127.0.0.1', port: port + 10_000 }),
    sleepAdvancesClock: true,
  });

function deployment(td: string, rolloutState: Deployment['rolloutState'], running: number, desired: number) {
  return {
    id: `ecs-svc/${td.slice(-1)}`,
    status: 'PRIMARY',
    taskDefinition: td,
    desiredCount: desired,
    runningCount: running,
    rolloutState,
    ...(rolloutState === 'FAILED'
      ? { rolloutStateReason: 'ECS deployment circuit breaker: tasks failed to start.' }
      : {}),
    createdAt: new Date(Date.UTC(2025, 0, 1, 11, 59, 0)),
  } satisfies Deployment;
}

function service(
  colour: 'blue' | 'green',
  opts: {
    td: string;
    desired: number;
    running?: number;
    release?: string;
    version?: string;
    /** The runbook:task-definition tag (the release's revision), written with the release tag. */
    tdTag?: string;
    deployments?: Deployment[];
    events?: string[];
    /** More tags (e.g. runbook:scaling). */
    tags?: Array<{ key: string; value: string }>;
  },
): Service {
  const running = opts.running ?? opts.desired;
  return {
    serviceName: `shop-${colour}`,
    serviceArn: `${ECS_ARN}:service/prod/shop-${colour}`,
    status: 'ACTIVE',
    desiredCount: opts.desired,
    runningCount: running,
    taskDefinition: opts.td,
    deployments: opts.deployments ?? [deployment(opts.td, 'COMPLETED', running, opts.desired)],
    events: (opts.events ?? []).map((message, i) => ({
      id: `e${i}`,
      message,
      createdAt: new Date(Date.UTC(2025, 0, 1, 11, 0, 0) - i * 60_000),
    })),
    tags: [
      ...(opts.release ? [{ key: TAG.release, value: opts.release }] : []),
      ...(opts.version ? [{ key: TAG.version, value: opts.version }] : []),
      ...(opts.tdTag ? [{ key: TASK_DEFINITION_TAG, value: opts.tdTag }] : []),
      { key: TAG.service, value: 'shop' },
      { key: TAG.environment, value: 'prod' },
      ...(opts.tags ?? []),
    ],
  };
}

/** The ECS calls that change something, in the order they were sent. */
const writes = () =>
  ecs
    .calls()
    .map((c) => (c.args[0] as object).constructor.name)
    .filter((name) => !/^(Describe|List)/.test(name));

const blueLive = service('blue', { td: TD_OLD, desired: 2, release: 'shop-1-0-0-aaaa', version: '1.0.0' });
const greenIdle = service('green', { td: TD_OLD, desired: 0 });
const services = (...list: Service[]) => ({ services: list, failures: [] });

const ruleForwarding = (blue: number, green: number) => ({
  Rules: [
    {
      RuleArn: spec.listenerRule,
      Actions: [
        {
          Type: 'forward' as const,
          ForwardConfig: {
            TargetGroups: [
              { TargetGroupArn: spec.targetGroups.blue, Weight: blue },
              { TargetGroupArn: spec.targetGroups.green, Weight: green },
            ],
          },
        },
      ],
    },
  ],
});

const healthy = (n: number): TargetHealthDescription[] =>
  Array.from({ length: n }, (_, i) => ({
    Target: { Id: `10.0.1.${i + 10}`, Port: 8080 },
    TargetHealth: { State: 'healthy' },
  }));

const request: StartReleaseRequest = {
  service: 'shop',
  environment: 'prod',
  releaseId: 'shop-2-0-0-bbbb',
  version: '2.0.0',
  aws: spec,
};

/** The ELB side of a healthy world: the rule forwards 100% to blue, the test listener to blue, green's targets healthy. */
function mockElb(opts: { blue?: number; green?: number } = {}) {
  elb.on(DescribeRulesCommand).resolves(ruleForwarding(opts.blue ?? 100, opts.green ?? 0));
  elb.on(DescribeListenersCommand, { ListenerArns: [TEST_LISTENER] }).resolves({
    Listeners: [
      {
        ListenerArn: TEST_LISTENER,
        LoadBalancerArn: LB,
        Port: 8443,
        DefaultActions: [{ Type: 'forward', TargetGroupArn: spec.targetGroups.blue }],
      },
    ],
  });
  elb.on(DescribeListenersCommand, { ListenerArns: [PROD_LISTENER] }).resolves({
    Listeners: [{ ListenerArn: PROD_LISTENER, LoadBalancerArn: LB, Port: 443, DefaultActions: [] }],
  });
  elb.on(DescribeLoadBalancersCommand).resolves({
    LoadBalancers: [{ LoadBalancerArn: LB, DNSName: 'shop-123.us-east-1.elb.amazonaws.com' }],
  });
  elb.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: healthy(2) });
  elb.on(ModifyListenerCommand).resolves({});
}

/** The live colour's task definition, shop:7, that a release is based on. */
const BASE_TD = {
  taskDefinitionArn: TD_OLD,
  family: 'shop',
  revision: 7,
  status: 'ACTIVE',
  taskRoleArn: 'arn:aws:iam::123456789012:role/shop-task',
  executionRoleArn: 'arn:aws:iam::123456789012:role/shop-exec',
  networkMode: 'awsvpc',
  requiresCompatibilities: ['FARGATE'],
  cpu: '512',
  memory: '1024',
  registeredAt: new Date(0),
  containerDefinitions: [
    {
      name: 'app',
      image: 'registry.example/shop:1.0.0',
      portMappings: [{ containerPort: 8080 }],
      environment: [
        { name: 'LOG_LEVEL', value: 'info' },
        { name: 'APP_VERSION', value: '1.0.0' },
      ],
      secrets: [{ name: 'DATABASE_URL', valueFrom: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db' }],
    },
    { name: 'log-router', image: 'amazon/aws-for-fluent-bit:stable' },
  ],
} satisfies TaskDefinition;

function mockTaskDefinition() {
  ecs.on(DescribeTaskDefinitionCommand).resolves({
    taskDefinition: BASE_TD,
    tags: [
      { key: 'team', value: 'checkout' },
      { key: TAG.release, value: 'shop-1-0-0-aaaa' },
    ],
  });
  ecs.on(RegisterTaskDefinitionCommand).resolves({ taskDefinition: { taskDefinitionArn: TD_NEW, family: 'shop' } });
  ecs.on(UpdateServiceCommand).resolves({});
  ecs.on(TagResourceCommand).resolves({});
}

describe('ECS release runner (aws-sdk-client-mock)', () => {
  beforeEach(() => {
    ecs.reset();
    elb.reset();
    aas.reset();
    // Teams without Application Auto Scaling: no scalable target on either colour.
    aas.on(DescribeScalableTargetsCommand).resolves({ ScalableTargets: [] });
    clearAwsCaches();
  });

  it('rolls a new task definition revision out to the idle colour, waits for stable and healthy, points the test listener', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    elb
      .on(DescribeTargetHealthCommand)
      .resolvesOnce({
        TargetHealthDescriptions: [
          ...healthy(1),
          {
            Target: { Id: '10.0.1.99', Port: 8080 },
            TargetHealth: { State: 'initial', Reason: 'Elb.RegistrationInProgress' },
          },
        ],
      })
      .resolves({ TargetHealthDescriptions: healthy(2) });
    const rollingOut = service('green', {
      td: TD_NEW,
      desired: 2,
      running: 1,
      release: request.releaseId,
      version: '2.0.0',
      deployments: [deployment(TD_NEW, 'IN_PROGRESS', 1, 2)],
    });
    const rolledOut = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce(services(blueLive, greenIdle))
      .resolvesOnce(services(blueLive, rollingOut))
      .resolves(services(blueLive, rolledOut));

    const release = await createEcsReleaseRunner(f.ctx).start(request);

    const registered = ecs.commandCalls(RegisterTaskDefinitionCommand);
    assert.equal(registered.length, 1);
    const input = registered[0]!.args[0].input;
    assert.equal(input.family, 'shop');
    assert.equal(input.taskRoleArn, 'arn:aws:iam::123456789012:role/shop-task');
    assert.equal(input.executionRoleArn, 'arn:aws:iam::123456789012:role/shop-exec');
    assert.deepEqual(input.requiresCompatibilities, ['FARGATE']);
    assert.equal(input.cpu, '512');
    assert.equal(input.memory, '1024');
    const [app, sidecar] = input.containerDefinitions ?? [];
    assert.equal(app?.image, 'registry.example/shop:2.0.0');
    assert.deepEqual(app?.environment, [
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'APP_VERSION', value: '2.0.0' },
      { name: 'FEATURE_X', value: 'on' },
    ]);
    assert.deepEqual(app?.secrets, [
      { name: 'DATABASE_URL', valueFrom: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db' },
    ]);
    assert.equal(sidecar?.image, 'amazon/aws-for-fluent-bit:stable');
    assert.deepEqual(input.tags, [
      { key: 'team', value: 'checkout' },
      { key: TAG.release, value: request.releaseId },
      { key: TAG.version, value: '2.0.0' },
      { key: TAG.service, value: 'shop' },
      { key: TAG.environment, value: 'prod' },
    ]);

    const updates = ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input);
    assert.deepEqual(updates, [{ cluster: 'prod', service: 'shop-green', taskDefinition: TD_NEW, desiredCount: 2 }]);
    const tagged = ecs.commandCalls(TagResourceCommand).map((c) => c.args[0].input);
    assert.deepEqual(tagged, [
      {
        resourceArn: `${ECS_ARN}:service/prod/shop-green`,
        tags: [
          { key: TAG.release, value: request.releaseId },
          { key: TAG.version, value: '2.0.0' },
          { key: TAG.service, value: 'shop' },
          { key: TAG.environment, value: 'prod' },
          { key: TASK_DEFINITION_TAG, value: TD_NEW },
        ],
      },
    ]);
    // The service is tagged before it is updated: a crash in between leaves a tag that a retry and stop() find.
    assert.deepEqual(writes(), ['RegisterTaskDefinitionCommand', 'TagResourceCommand', 'UpdateServiceCommand']);

    const modified = elb.commandCalls(ModifyListenerCommand).map((c) => c.args[0].input);
    assert.deepEqual(modified, [
      { ListenerArn: TEST_LISTENER, DefaultActions: [{ Type: 'forward', TargetGroupArn: spec.targetGroups.green }] },
    ]);
    assert.equal(elb.commandCalls(ModifyRuleCommand).length, 0, 'production traffic is not touched');

    // one poll for the rollout (IN_PROGRESS), one for the targets (initial)
    assert.deepEqual(f.sleeps, [5_000, 5_000]);
    assert.deepEqual(f.resolved, [['shop-123.us-east-1.elb.amazonaws.com', 8443]]);
    assert.deepEqual(release, {
      service: 'shop',
      environment: 'prod',
      releaseId: request.releaseId,
      version: '2.0.0',
      host: '127.0.0.1',
      port: 18443,
      scheme: 'https',
      pid: 0,
      startedAtMs: Date.UTC(2025, 0, 1, 11, 59, 0),
      logFile: 'ecs:prod/shop-green',
    });
  });

  it('fails with EcsRolloutFailed (non-retryable, with the reason) when the circuit breaker rolls back', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const failed = service('green', {
      td: TD_NEW,
      desired: 2,
      running: 0,
      release: request.releaseId,
      deployments: [
        deployment(TD_NEW, 'FAILED', 0, 2),
        { ...deployment(TD_OLD, 'IN_PROGRESS', 0, 2), status: 'ACTIVE' },
      ],
    });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, failed));

    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'EcsRolloutFailed');
    assert.equal(err.permanent, true);
    assert.match(err.message, /^shop-green: ECS rolled back the deployment: ECS deployment circuit breaker/);
    assert.equal(elb.commandCalls(DescribeTargetHealthCommand).length, 0);
  });

  it('fails with EcsRolloutTimeout naming the last state when the rollout outlasts rolloutTimeoutMs', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const stuck = service('green', {
      td: TD_NEW,
      desired: 2,
      running: 1,
      release: request.releaseId,
      deployments: [deployment(TD_NEW, 'IN_PROGRESS', 1, 2)],
      events: ['(service shop-green) is unable to consistently start tasks successfully.'],
    });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, stuck));

    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(err instanceof PlatformError);
    assert.equal(err.type, 'EcsRolloutTimeout');
    assert.match(err.message, /1\/2 tasks running; deployments: PRIMARY shop:8 IN_PROGRESS 1\/2 running/);
    assert.match(err.message, /unable to consistently start tasks/);
    assert.equal(f.sleeps.length, 60_000 / 5_000);
  });

  it('adopts the release on a retry (tags of an older runbook, without runbook:task-definition): nothing is registered again', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    mockTaskDefinition();
    const started = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, started));

    const release = await createEcsReleaseRunner(f.ctx).start(request);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.equal(ecs.commandCalls(UpdateServiceCommand).length, 0);
    assert.equal(ecs.commandCalls(TagResourceCommand).length, 0);
    assert.equal(release.logFile, 'ecs:prod/shop-green');
    assert.equal(release.port, 18443);
  });

  it("does not take the old revision's deployment for the rollout of the new one (no moto fallback in production)", async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    mockTaskDefinition();
    // The service already names the new revision, but its one deployment is still the old one's, without a rollout
    // state: the new tasks have not started. Only the new revision's COMPLETED deployment is the rollout.
    const base = { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' };
    const stale = service('green', { ...base, deployments: [{ ...deployment(TD_OLD, undefined, 2, 2) }] });
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce(services(blueLive, stale))
      .resolvesOnce(services(blueLive, stale))
      .resolves(services(blueLive, service('green', base)));
    await createEcsReleaseRunner(f.ctx).start(request);
    assert.equal(ecs.commandCalls(DescribeServicesCommand).length, 3, 'polled until the new revision rolled out');
  });

  it('takes the scheme per listener from its Protocol: HTTPS production, HTTP test listener (issue 13 item 5)', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    elb.on(DescribeListenersCommand, { ListenerArns: [TEST_LISTENER] }).resolves({
      Listeners: [
        {
          ListenerArn: TEST_LISTENER,
          LoadBalancerArn: LB,
          Port: 9000,
          Protocol: 'HTTP',
          DefaultActions: [{ Type: 'forward', TargetGroupArn: spec.targetGroups.green }],
        },
      ],
    });
    elb.on(DescribeListenersCommand, { ListenerArns: [PROD_LISTENER] }).resolves({
      Listeners: [
        { ListenerArn: PROD_LISTENER, LoadBalancerArn: LB, Port: 443, Protocol: 'HTTPS', DefaultActions: [] },
      ],
    });
    ecs
      .on(DescribeServicesCommand)
      .resolves(
        services(blueLive, service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' })),
      );
    const runner = createEcsReleaseRunner(f.ctx);
    const checked = await runner.start(request);
    assert.deepEqual(
      [checked.scheme, checked.port],
      ['http', 19000],
      'the idle colour: through the HTTP test listener',
    );
    const live = await runner.get('shop', 'prod', 'shop-1-0-0-aaaa');
    assert.deepEqual([live?.scheme, live?.port], ['https', 10443], 'the live colour: through the HTTPS listener');
  });

  describe('check host / SNI of a rule with a host condition (issue 13 item 5)', () => {
    const withHosts = (...hosts: string[]) => {
      const rules = ruleForwarding(100, 0);
      return {
        Rules: rules.Rules.map((r) => ({
          ...r,
          Conditions: [
            { Field: 'host-header', HostHeaderConfig: { Values: hosts } },
            { Field: 'path-pattern', PathPatternConfig: { Values: ['/*'] } },
          ],
        })),
      };
    };
    const greenStarted = () =>
      ecs
        .on(DescribeServicesCommand)
        .resolves(
          services(
            blueLive,
            service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' }),
          ),
        );

    it("takes the rule's one host-header value as the check host of both listeners", async () => {
      const f = fakeContext();
      mockElb({ blue: 100, green: 0 });
      elb.on(DescribeRulesCommand).resolves(withHosts('Shop.Example.com'));
      greenStarted();
      const runner = createEcsReleaseRunner(f.ctx);
      const checked = await runner.start(request);
      assert.equal(checked.checkHost, 'shop.example.com', 'through the test listener');
      const live = await runner.get('shop', 'prod', 'shop-1-0-0-aaaa');
      assert.equal(live?.checkHost, 'shop.example.com', 'through the production listener');
      assert.equal(live?.host, '127.0.0.1', 'still connected to the load balancer (here: mapped to a local port)');
    });

    it('prefers aws.checkHost, and sends none for a rule without host conditions', async () => {
      mockElb({ blue: 100, green: 0 });
      elb.on(DescribeRulesCommand).resolves(withHosts('*.example.com'));
      greenStarted();
      const explicit = fakeAwsContext({
        spec: { ...spec, checkHost: 'canary.example.com' },
        resolveAddress: (_host, port) => ({ host: '127.0.0.1', port }),
        sleepAdvancesClock: true,
      });
      const live = await createEcsReleaseRunner(explicit.ctx).get('shop', 'prod', 'shop-1-0-0-aaaa');
      assert.equal(live?.checkHost, 'canary.example.com');

      clearAwsCaches();
      elb.on(DescribeRulesCommand).resolves(ruleForwarding(100, 0));
      const plain = await createEcsReleaseRunner(fakeContext().ctx).get('shop', 'prod', 'shop-1-0-0-aaaa');
      assert.ok(plain, 'the live release is found');
      assert.equal(plain.checkHost, undefined);
    });

    it('refuses to guess among several hosts or a wildcard for the production listener, naming aws.checkHost', async () => {
      mockElb({ blue: 100, green: 0 });
      elb.on(DescribeRulesCommand).resolves(withHosts('shop.example.com', 'www.shop.example.com'));
      greenStarted();
      const runner = createEcsReleaseRunner(fakeContext().ctx);
      const err = await rejection(runner.get('shop', 'prod', 'shop-1-0-0-aaaa'));
      assert.ok(err instanceof PlatformError);
      assert.equal(err.type, 'ElbCheckHostUnknown');
      assert.equal(err.permanent, true);
      assert.match(
        err.message,
        /matches the host-header shop\.example\.com, www\.shop\.example\.com: set aws\.checkHost/,
      );
      // through the test listener (its default action forwards whatever the host) the checks go on without one
      const checked = await runner.start(request);
      assert.equal(checked.checkHost, undefined);
    });

    it('asks DescribeRules for the host once per worker', async () => {
      mockElb({ blue: 100, green: 0 });
      elb.on(DescribeRulesCommand).resolves(withHosts('shop.example.com'));
      greenStarted();
      const runner = createEcsReleaseRunner(fakeContext().ctx);
      await runner.get('shop', 'prod', 'shop-1-0-0-aaaa');
      const before = elb.commandCalls(DescribeRulesCommand).length;
      await runner.get('shop', 'prod', 'shop-1-0-0-aaaa');
      // the second get reads the rule's weights again (readTraffic), and its host from the worker's cache
      assert.equal(elb.commandCalls(DescribeRulesCommand).length - before, 1);
    });
  });

  it('goes to blue on the first deploy and refuses when both colours take traffic', async () => {
    const f = fakeContext();
    mockElb({ blue: 0, green: 0 });
    mockTaskDefinition();
    const blueEmpty = service('blue', { td: TD_OLD, desired: 0 });
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce(services(blueEmpty, greenIdle))
      .resolves(services(service('blue', { td: TD_NEW, desired: 1, release: request.releaseId }), greenIdle));
    await createEcsReleaseRunner(f.ctx).start(request);
    assert.deepEqual(
      ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
      [{ cluster: 'prod', service: 'shop-blue', taskDefinition: TD_NEW, desiredCount: 1 }],
    );

    ecs.reset();
    elb.reset();
    mockElb({ blue: 90, green: 10 });
    mockTaskDefinition();
    const greenCanary = service('green', { td: TD_NEW, desired: 2, release: 'shop-1-1-0-cccc' });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, greenCanary));
    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(err instanceof PlatformError);
    assert.equal(err.type, 'EcsNoIdleService');
    assert.equal(err.permanent, true);
    assert.match(err.message, /shop-1-1-0-cccc, weight 10/);
    assert.equal(ecs.commandCalls(UpdateServiceCommand).length, 0);
  });

  it('fails with EcsContainerNotFound when the task definition has no such container', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, greenIdle));
    const runner = createEcsReleaseRunner({ ...f.ctx, spec: { ...spec, container: 'web' } });
    const err = await rejection(runner.start(request));
    assert.ok(err instanceof PlatformError);
    assert.equal(err.type, 'EcsContainerNotFound');
    assert.match(err.message, /has no container "web" \(it has "app", "log-router"\); fix aws\.container/);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
  });

  it('rethrows throttling for the activity retry, and makes AccessDenied a non-retryable AwsAccessDenied naming the resource', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    ecs.on(DescribeServicesCommand).rejects(throttled);
    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.equal(err, throttled);
    assert.ok(!(err instanceof PlatformError));

    ecs.on(DescribeServicesCommand).resolves(services(blueLive, greenIdle));
    ecs.on(UpdateServiceCommand).rejects(
      new AccessDeniedException({
        message: 'User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: ecs:UpdateService',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const denied = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(denied instanceof PlatformError);
    assert.equal(denied.type, 'AwsAccessDenied');
    assert.equal(denied.permanent, true);
    assert.match(
      denied.message,
      /^ecs:UpdateService on ECS service shop-green in cluster prod: AccessDeniedException: /,
    );
    assert.match(denied.message, /fix: grant the worker's IAM role ecs:UpdateService/);
  });

  it('get/list find a release by its tag with the right listener, stop scales it to 0 and untags it, describeLog shows the ECS events', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    const greenCandidate = service('green', {
      td: TD_NEW,
      desired: 2,
      release: request.releaseId,
      version: '2.0.0',
      events: ['(service shop-green) has reached a steady state.', '(service shop-green) has started 2 tasks.'],
    });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, greenCandidate));
    ecs.on(UpdateServiceCommand).resolves({});
    ecs.on(UntagResourceCommand).resolves({});
    const runner = createEcsReleaseRunner(f.ctx);

    const live = await runner.get('shop', 'prod', 'shop-1-0-0-aaaa');
    assert.equal(live?.port, 10_443, 'the colour with traffic is reached through the production listener');
    assert.equal(live?.version, '1.0.0');
    const candidate = await runner.get('shop', 'prod', request.releaseId);
    assert.equal(candidate?.port, 18_443, 'the idle colour is reached through the test listener');
    assert.equal(await runner.get('shop', 'prod', 'shop-0-9-0-zzzz'), undefined);
    assert.equal(await runner.get('other', 'prod', request.releaseId), undefined);

    const all = await runner.list();
    assert.deepEqual(
      all.map((r) => [r.releaseId, r.version, r.port]),
      [
        ['shop-1-0-0-aaaa', '1.0.0', 10_443],
        [request.releaseId, '2.0.0', 18_443],
      ],
    );

    const log = await runner.describeLog('shop', 'prod', request.releaseId);
    assert.match(log.location, /ECS service shop-green in cluster prod/);
    assert.deepEqual(log.excerpt?.split('\n'), [
      '2025-01-01T10:59:00.000Z (service shop-green) has started 2 tasks.',
      '2025-01-01T11:00:00.000Z (service shop-green) has reached a steady state.',
    ]);

    assert.equal(await runner.stop('shop', 'prod', request.releaseId, 30_000), true);
    assert.deepEqual(
      ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
      [{ cluster: 'prod', service: 'shop-green', desiredCount: 0 }],
    );
    assert.deepEqual(
      ecs.commandCalls(UntagResourceCommand).map((c) => c.args[0].input),
      [
        {
          resourceArn: `${ECS_ARN}:service/prod/shop-green`,
          tagKeys: [TAG.release, TAG.version, TASK_DEFINITION_TAG],
        },
      ],
    );
    assert.equal(await runner.stop('shop', 'prod', 'shop-0-9-0-zzzz', 30_000), false);
    assert.equal(ecs.commandCalls(UpdateServiceCommand).length, 1);
  });

  it('adopts a colour that ECS rolled back to the old revision: UpdateService to the tagged revision again, nothing registered', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    mockTaskDefinition();
    // The first attempt tagged green and updated it; the circuit breaker then rolled green back to shop:7 (the old
    // code) while the worker was gone. The tag still says the release, the service runs the old revision.
    const rolledBack = service('green', {
      td: TD_OLD,
      desired: 2,
      release: request.releaseId,
      version: '2.0.0',
      tdTag: TD_NEW,
    });
    const redeployed = service('green', {
      td: TD_NEW,
      desired: 2,
      release: request.releaseId,
      version: '2.0.0',
      tdTag: TD_NEW,
    });
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce(services(blueLive, rolledBack))
      .resolves(services(blueLive, redeployed));

    const release = await createEcsReleaseRunner(f.ctx).start(request);

    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.equal(ecs.commandCalls(TagResourceCommand).length, 0);
    assert.deepEqual(
      ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
      [{ cluster: 'prod', service: 'shop-green', taskDefinition: TD_NEW, desiredCount: 2 }],
    );
    assert.equal(release.releaseId, request.releaseId);
    assert.equal(release.version, '2.0.0');
    assert.equal(release.logFile, 'ecs:prod/shop-green');
  });

  it('fails with EcsRolloutFailed when the re-issued update of an adopted colour is rolled back again', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    mockTaskDefinition();
    const rolledBack = service('green', { td: TD_OLD, desired: 2, release: request.releaseId, tdTag: TD_NEW });
    const trippedAgain = service('green', {
      td: TD_OLD,
      desired: 2,
      running: 0,
      release: request.releaseId,
      tdTag: TD_NEW,
      deployments: [
        { ...deployment(TD_OLD, 'IN_PROGRESS', 0, 2), status: 'PRIMARY' },
        { ...deployment(TD_NEW, 'FAILED', 0, 2), status: 'ACTIVE' },
      ],
    });
    ecs
      .on(DescribeServicesCommand)
      .resolvesOnce(services(blueLive, rolledBack))
      .resolves(services(blueLive, trippedAgain));

    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'EcsRolloutFailed');
    assert.equal(err.permanent, true);
    assert.match(err.message, /circuit breaker/);
    assert.equal(ecs.commandCalls(UpdateServiceCommand).length, 1);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);

    // Rolled back to the old revision by the time of the first poll: still a failure, never the old code as the release.
    ecs.reset();
    mockTaskDefinition();
    const backOnOld = service('green', { td: TD_OLD, desired: 2, release: request.releaseId, tdTag: TD_NEW });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, backOnOld));
    const again = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(again instanceof PlatformError, String(again));
    assert.equal(again.type, 'EcsRolloutFailed');
    assert.match(again.message, /runs .*shop:7 again instead of .*shop:8/);
    assert.equal(elb.commandCalls(DescribeTargetHealthCommand).length, 0);
  });

  it("adopts the revision a release command of the release registered (the migration's task): nothing is registered", async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const otherFamily = `${ECS_ARN}:task-definition/shop-admin:9`;
    ecs.on(ListTaskDefinitionsCommand).resolves({ taskDefinitionArns: [TD_OLD, otherFamily, TD_NEW] });
    ecs.on(DescribeTaskDefinitionCommand, { taskDefinition: TD_NEW }).resolves({
      taskDefinition: { ...BASE_TD, taskDefinitionArn: TD_NEW, revision: 8 },
      tags: [
        { key: TAG.release, value: request.releaseId },
        { key: TAG.version, value: '2.0.0' },
      ],
    });
    const rolledOut = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, rolledOut));

    await createEcsReleaseRunner(f.ctx).start(request);

    assert.deepEqual(ecs.commandCalls(ListTaskDefinitionsCommand)[0]?.args[0].input, {
      familyPrefix: 'shop',
      status: 'ACTIVE',
      sort: 'DESC',
      maxResults: 20,
    });
    assert.deepEqual(
      ecs.commandCalls(DescribeTaskDefinitionCommand).map((c) => c.args[0].input.taskDefinition),
      [TD_OLD, TD_NEW],
      'the base, then the newest revision of the family (shop-admin is another family)',
    );
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.deepEqual(writes(), ['TagResourceCommand', 'UpdateServiceCommand']);
    assert.equal(ecs.commandCalls(UpdateServiceCommand)[0]?.args[0].input.taskDefinition, TD_NEW);
  });

  it('a start that crashed after TagResource, before UpdateService: the retry updates the tagged colour without registering again', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    // A stateful ECS: TagResource and UpdateService change what DescribeServices returns.
    const green = { td: TD_OLD, desired: 0, tags: {} as Record<string, string> };
    ecs.on(DescribeServicesCommand).callsFake(() =>
      services(
        blueLive,
        service('green', {
          td: green.td,
          desired: green.desired,
          ...(green.tags[TAG.release] ? { release: green.tags[TAG.release] } : {}),
          ...(green.tags[TAG.version] ? { version: green.tags[TAG.version] } : {}),
          ...(green.tags[TASK_DEFINITION_TAG] ? { tdTag: green.tags[TASK_DEFINITION_TAG] } : {}),
        }),
      ),
    );
    ecs.on(TagResourceCommand).callsFake((input: { tags: Array<{ key: string; value: string }> }) => {
      for (const t of input.tags) green.tags[t.key] = t.value;
      return {};
    });
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    ecs
      .on(UpdateServiceCommand)
      .rejectsOnce(reset)
      .callsFake((input: { taskDefinition: string; desiredCount: number }) => {
        green.td = input.taskDefinition;
        green.desired = input.desiredCount;
        return {};
      });

    const crashed = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.equal(crashed, reset, 'a network error is left to the activity retry');
    assert.equal(green.tags[TASK_DEFINITION_TAG], TD_NEW, 'the tag names the revision before any update');
    assert.equal(green.desired, 0);

    // stop() (a compensation) would find the tagged service although it runs nothing.
    const release = await createEcsReleaseRunner(f.ctx).start(request);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 1, 'registered once, by the first attempt');
    assert.equal(ecs.commandCalls(TagResourceCommand).length, 1);
    assert.deepEqual(
      ecs.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
      [
        { cluster: 'prod', service: 'shop-green', taskDefinition: TD_NEW, desiredCount: 2 },
        { cluster: 'prod', service: 'shop-green', taskDefinition: TD_NEW, desiredCount: 2 },
      ],
    );
    assert.deepEqual(writes(), [
      'RegisterTaskDefinitionCommand',
      'TagResourceCommand',
      'UpdateServiceCommand',
      'UpdateServiceCommand',
    ]);
    assert.equal(release.releaseId, request.releaseId);
    assert.equal(release.version, '2.0.0');
    assert.deepEqual([green.td, green.desired], [TD_NEW, 2]);
  });

  it('stop finds a release tag on a colour scaled to 0 (a failed start) and removes it; get and list ignore that colour', async () => {
    const f = fakeContext();
    mockElb({ blue: 100, green: 0 });
    const leftover = service('green', { td: TD_OLD, desired: 0, release: request.releaseId, tdTag: TD_NEW });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, leftover));
    ecs.on(UpdateServiceCommand).resolves({});
    ecs.on(UntagResourceCommand).resolves({});
    const runner = createEcsReleaseRunner(f.ctx);

    assert.equal(await runner.get('shop', 'prod', request.releaseId), undefined);
    assert.deepEqual(
      (await runner.list()).map((r) => r.releaseId),
      ['shop-1-0-0-aaaa'],
    );
    assert.equal(await runner.stop('shop', 'prod', request.releaseId, 30_000), true);
    assert.deepEqual(
      ecs.commandCalls(UntagResourceCommand).map((c) => c.args[0].input),
      [
        {
          resourceArn: `${ECS_ARN}:service/prod/shop-green`,
          tagKeys: [TAG.release, TAG.version, TASK_DEFINITION_TAG],
        },
      ],
    );
  });

  it("the rollout deadline counts from the activity's first scheduling, not from each attempt", async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const stuck = service('green', {
      td: TD_NEW,
      desired: 2,
      running: 1,
      release: request.releaseId,
      tdTag: TD_NEW,
      deployments: [deployment(TD_NEW, 'IN_PROGRESS', 1, 2)],
    });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, stuck));
    // A retry 50 s after the first attempt was scheduled: 10 s of the 60 s rollout timeout are left (two polls of 5 s).
    const env = new MockActivityEnvironment(
      { scheduledTimestampMs: f.now() - 50_000, attempt: 2 },
      { logger: new DefaultLogger('ERROR', () => {}) },
    );
    const err = await rejection(env.run(() => createEcsReleaseRunner(f.ctx).start(request)));
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'EcsRolloutTimeout');
    assert.deepEqual(f.sleeps, [5_000, 5_000]);
  });

  it("copies enableFaultInjection, drops the base revision's runbook: tags, and refuses more than 50 tags (EcsTooManyTags)", async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    const withTags = (n: number) => ({
      taskDefinition: { ...BASE_TD, enableFaultInjection: true },
      tags: [
        ...Array.from({ length: n }, (_, i) => ({ key: `cost-${i}`, value: 'x' })),
        { key: 'aws:cloudformation:stack-name', value: 'shop' },
        { key: TAG.release, value: 'shop-1-0-0-aaaa' },
        { key: TASK_DEFINITION_TAG, value: TD_OLD },
        { key: 'runbook:something-older', value: 'y' },
      ],
    });
    ecs.on(DescribeTaskDefinitionCommand).resolves(withTags(46));
    const rolledOut = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, tdTag: TD_NEW });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, rolledOut));
    await createEcsReleaseRunner(f.ctx).start(request);
    const input = ecs.commandCalls(RegisterTaskDefinitionCommand)[0]!.args[0].input;
    assert.equal(input.enableFaultInjection, true);
    assert.equal(input.tags?.length, 50, "46 of its own and the runbook's 4");
    assert.deepEqual(
      input.tags?.filter((t) => t.key?.startsWith('runbook:')),
      [
        { key: TAG.release, value: request.releaseId },
        { key: TAG.version, value: '2.0.0' },
        { key: TAG.service, value: 'shop' },
        { key: TAG.environment, value: 'prod' },
      ],
    );
    assert.ok(!input.tags?.some((t) => t.key?.startsWith('aws:')));

    ecs.reset();
    mockTaskDefinition();
    ecs.on(DescribeTaskDefinitionCommand).resolves(withTags(47));
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, greenIdle));
    const err = await rejection(createEcsReleaseRunner(f.ctx).start(request));
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'EcsTooManyTags');
    assert.equal(err.permanent, true);
    assert.match(
      err.message,
      /has 47 tags of its own; with the runbook's 4 the new revision would have 51, over ECS's limit of 50/,
    );
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.equal(ecs.commandCalls(TagResourceCommand).length, 0);
  });
});

describe('Application Auto Scaling per colour (aws-sdk-client-mock, issue 13)', () => {
  const BLUE_ID = 'service/prod/shop-blue';
  const GREEN_ID = 'service/prod/shop-green';
  const NONE = {
    DynamicScalingInSuspended: false,
    DynamicScalingOutSuspended: false,
    ScheduledScalingSuspended: false,
  };
  const IN = { ...NONE, DynamicScalingInSuspended: true };
  const ALL = { DynamicScalingInSuspended: true, DynamicScalingOutSuspended: true, ScheduledScalingSuspended: true };
  const target = (id: string, min: number, max: number, suspended = NONE): ScalableTarget => ({
    ServiceNamespace: 'ecs',
    ResourceId: id,
    ScalableDimension: 'ecs:service:DesiredCount',
    MinCapacity: min,
    MaxCapacity: max,
    RoleARN: 'arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/x',
    CreationTime: new Date(0),
    SuspendedState: suspended,
  });
  const scalingTag = (value: string) => [{ key: SCALING_TAG, value }];
  const TEAM = 'in=false/out=false/scheduled=false';

  /** The writes to ECS and Application Auto Scaling, in the order they were sent, as short words. */
  let sequence: string[];
  const short = (arn: string) => arn.split('/').pop();
  function recordWrites() {
    ecs.on(UpdateServiceCommand).callsFake((i) => {
      sequence.push(`UpdateService ${i.service} ${i.desiredCount}`);
      return {};
    });
    ecs.on(TagResourceCommand).callsFake((i) => {
      sequence.push(`TagResource ${short(i.resourceArn)} ${i.tags.map((t: { key: string }) => t.key).join(',')}`);
      return {};
    });
    ecs.on(UntagResourceCommand).callsFake((i) => {
      sequence.push(`UntagResource ${short(i.resourceArn)} ${i.tagKeys.join(',')}`);
      return {};
    });
    aas.on(RegisterScalableTargetCommand).callsFake((i) => {
      sequence.push(`RegisterScalableTarget ${short(i.ResourceId)}`);
      return {};
    });
    aas.on(PutScalingPolicyCommand).callsFake((i) => {
      sequence.push(`PutScalingPolicy ${short(i.ResourceId)} ${i.PolicyName}`);
      return {};
    });
    aas.on(PutScheduledActionCommand).callsFake((i) => {
      sequence.push(`PutScheduledAction ${short(i.ResourceId)} ${i.ScheduledActionName}`);
      return {};
    });
  }
  const registered = () => aas.commandCalls(RegisterScalableTargetCommand).map((c) => c.args[0].input);

  beforeEach(() => {
    ecs.reset();
    elb.reset();
    aas.reset();
    clearAwsCaches();
    sequence = [];
  });

  it("start: the idle colour gets the live colour's min/max and policies, scale-in is suspended on both, after the UpdateService", async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    recordWrites();
    const rolledOut = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, rolledOut));
    // The bug: the idle colour's own target has a minimum above 0 (and other bounds than the live one).
    aas
      .on(DescribeScalableTargetsCommand)
      .resolves({ ScalableTargets: [target(BLUE_ID, 2, 10), target(GREEN_ID, 1, 4)] });
    const requestsPerTarget = {
      PolicyARN:
        'arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:1:resource/ecs/service/prod/shop-blue:policyName/requests',
      PolicyName: 'requests',
      ServiceNamespace: 'ecs' as const,
      ResourceId: BLUE_ID,
      ScalableDimension: 'ecs:service:DesiredCount' as const,
      PolicyType: 'TargetTrackingScaling' as const,
      CreationTime: new Date(0),
      Alarms: [{ AlarmName: 'TargetTracking-service/prod/shop-blue-AlarmHigh', AlarmARN: 'arn:alarm' }],
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 500,
        PredefinedMetricSpecification: {
          PredefinedMetricType: 'ALBRequestCountPerTarget' as const,
          ResourceLabel: `app/shop/50dc6c495c0c9188/${BLUE_TG.slice(BLUE_TG.indexOf('targetgroup/'))}`,
        },
        ScaleInCooldown: 300,
      },
    };
    const memory = {
      ...requestsPerTarget,
      PolicyName: 'memory',
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 70,
        CustomizedMetricSpecification: {
          MetricName: 'MemoryUtilization',
          Namespace: 'AWS/ECS',
          Statistic: 'Average' as const,
          Dimensions: [
            { Name: 'ClusterName', Value: 'prod' },
            { Name: 'ServiceName', Value: 'shop-blue' },
          ],
        },
      },
    };
    const step = { ...requestsPerTarget, PolicyName: 'cpu-steps', PolicyType: 'StepScaling' as const };
    aas
      .on(DescribeScalingPoliciesCommand, { ResourceId: BLUE_ID })
      .resolves({ ScalingPolicies: [requestsPerTarget, memory, step] });
    aas.on(DescribeScalingPoliciesCommand, { ResourceId: GREEN_ID }).resolves({ ScalingPolicies: [] });
    const nightly = {
      ScheduledActionName: 'nightly',
      ScheduledActionARN: 'arn:sa',
      ServiceNamespace: 'ecs' as const,
      Schedule: 'cron(0 22 * * ? *)',
      Timezone: 'Europe/Paris',
      ResourceId: BLUE_ID,
      ScalableDimension: 'ecs:service:DesiredCount' as const,
      ScalableTargetAction: { MinCapacity: 1, MaxCapacity: 4 },
      CreationTime: new Date(0),
    };
    aas.on(DescribeScheduledActionsCommand, { ResourceId: BLUE_ID }).resolves({ ScheduledActions: [nightly] });
    aas.on(DescribeScheduledActionsCommand, { ResourceId: GREEN_ID }).resolves({ ScheduledActions: [] });

    await createEcsReleaseRunner(f.ctx).start(request);

    assert.deepEqual(sequence, [
      `TagResource shop-green ${TAG.release},${TAG.version},${TAG.service},${TAG.environment},${TASK_DEFINITION_TAG}`,
      'UpdateService shop-green 2',
      // the team's state, saved before runbook changes it
      `TagResource shop-blue ${SCALING_TAG}`,
      `TagResource shop-green ${SCALING_TAG}`,
      'RegisterScalableTarget shop-blue',
      'RegisterScalableTarget shop-green',
      'PutScalingPolicy shop-green requests',
      'PutScalingPolicy shop-green memory',
      'PutScheduledAction shop-green nightly',
    ]);
    assert.deepEqual(
      ecs
        .commandCalls(TagResourceCommand)
        .slice(1)
        .map((c) => c.args[0].input.tags),
      [scalingTag(TEAM), scalingTag(TEAM)],
    );
    const common = { ServiceNamespace: 'ecs', ScalableDimension: 'ecs:service:DesiredCount' };
    assert.deepEqual(registered(), [
      { ...common, ResourceId: BLUE_ID, SuspendedState: IN },
      { ...common, ResourceId: GREEN_ID, MinCapacity: 2, MaxCapacity: 10, SuspendedState: IN },
    ]);
    const policies = aas.commandCalls(PutScalingPolicyCommand).map((c) => c.args[0].input);
    assert.deepEqual(policies[0], {
      ...common,
      PolicyName: 'requests',
      ResourceId: GREEN_ID,
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 500,
        PredefinedMetricSpecification: {
          PredefinedMetricType: 'ALBRequestCountPerTarget',
          ResourceLabel: `app/shop/50dc6c495c0c9188/${GREEN_TG.slice(GREEN_TG.indexOf('targetgroup/'))}`,
        },
        ScaleInCooldown: 300,
      },
    });
    assert.deepEqual(policies[1]?.TargetTrackingScalingPolicyConfiguration?.CustomizedMetricSpecification?.Dimensions, [
      { Name: 'ClusterName', Value: 'prod' },
      { Name: 'ServiceName', Value: 'shop-green' },
    ]);
    assert.deepEqual(aas.commandCalls(PutScheduledActionCommand)[0]?.args[0].input, {
      ...common,
      ScheduledActionName: 'nightly',
      ResourceId: GREEN_ID,
      Schedule: 'cron(0 22 * * ? *)',
      Timezone: 'Europe/Paris',
      ScalableTargetAction: { MinCapacity: 1, MaxCapacity: 4 },
    });
  });

  it('start: a live colour without a scalable target (or a worker that may not read them) registers nothing: teams without autoscaling see no change', async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    recordWrites();
    const rolledOut = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, rolledOut));
    // Only the idle colour has one: it is not the live colour's, so there is nothing to copy.
    aas.on(DescribeScalableTargetsCommand).resolves({ ScalableTargets: [target(GREEN_ID, 0, 0, ALL)] });
    await createEcsReleaseRunner(f.ctx).start(request);
    assert.deepEqual(sequence, [
      `TagResource shop-green ${TAG.release},${TAG.version},${TAG.service},${TAG.environment},${TASK_DEFINITION_TAG}`,
      'UpdateService shop-green 2',
    ]);
    assert.equal(aas.commandCalls(DescribeScalingPoliciesCommand).length, 0);

    // A worker whose policy predates Application Auto Scaling (a service without targets) may not even read them:
    // nothing is managed, and the deploy goes on as before (runbook doctor's autoscaling line says what to grant).
    sequence = [];
    ecs.reset();
    mockTaskDefinition();
    recordWrites();
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueLive, greenIdle)).resolves(services(blueLive, rolledOut));
    aas.on(DescribeScalableTargetsCommand).rejects(
      Object.assign(new Error('not authorized to perform: application-autoscaling:DescribeScalableTargets'), {
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await createEcsReleaseRunner(f.ctx).start(request);
    assert.deepEqual(sequence, [
      `TagResource shop-green ${TAG.release},${TAG.version},${TAG.service},${TAG.environment},${TASK_DEFINITION_TAG}`,
      'UpdateService shop-green 2',
    ]);
  });

  it('a rollback after go-live: the old colour, idle at min 0/max 0 with all scaling suspended, gets its capacity back', async () => {
    const f = fakeContext();
    mockElb({ blue: 0, green: 100 });
    mockTaskDefinition();
    recordWrites();
    // Green went live; blue was stopped (idled by runbook). The rollback starts the old version on blue again.
    const greenLive = service('green', { td: TD_NEW, desired: 3, release: 'shop-2-0-0-bbbb', version: '2.0.0' });
    const blueIdle = service('blue', { td: TD_OLD, desired: 0 });
    const back = service('blue', { td: TD_NEW, desired: 3, release: 'shop-1-0-0-cccc', version: '1.0.0' });
    ecs.on(DescribeServicesCommand).resolvesOnce(services(blueIdle, greenLive)).resolves(services(back, greenLive));
    elb.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: healthy(3) });
    aas
      .on(DescribeScalableTargetsCommand)
      .resolves({ ScalableTargets: [target(BLUE_ID, 0, 0, ALL), target(GREEN_ID, 3, 12)] });
    aas.on(DescribeScalingPoliciesCommand).resolves({ ScalingPolicies: [] });
    aas.on(DescribeScheduledActionsCommand).resolves({ ScheduledActions: [] });

    await createEcsReleaseRunner(f.ctx).start({ ...request, releaseId: 'shop-1-0-0-cccc', version: '1.0.0' });

    assert.ok(sequence.indexOf('UpdateService shop-blue 3') < sequence.indexOf('RegisterScalableTarget shop-blue'));
    assert.deepEqual(
      registered().map((r) => [r.ResourceId, r.MinCapacity, r.MaxCapacity, r.SuspendedState]),
      [
        [GREEN_ID, undefined, undefined, IN],
        [BLUE_ID, 3, 12, IN],
      ],
    );
  });

  it("a retried start takes the team's state from the tag, not from runbook's suspension, and copies nothing twice", async () => {
    const f = fakeContext();
    mockElb();
    mockTaskDefinition();
    recordWrites();
    // The first attempt saved the team's state (scale-out suspended by the team), suspended blue's scale-in, copied
    // the policies and crashed before registering green's target.
    const team = 'in=false/out=true/scheduled=false';
    const blue = service('blue', {
      td: TD_OLD,
      desired: 2,
      release: 'shop-1-0-0-aaaa',
      version: '1.0.0',
      tags: scalingTag(team),
    });
    const green = service('green', {
      td: TD_NEW,
      desired: 2,
      release: request.releaseId,
      version: '2.0.0',
      tdTag: TD_NEW,
      tags: scalingTag(team),
    });
    ecs.on(DescribeServicesCommand).resolves(services(blue, green));
    const runbooks = { ...NONE, DynamicScalingInSuspended: true, DynamicScalingOutSuspended: true };
    aas.on(DescribeScalableTargetsCommand).resolves({ ScalableTargets: [target(BLUE_ID, 2, 10, runbooks)] });
    aas.on(DescribeScalingPoliciesCommand).resolves({ ScalingPolicies: [{ PolicyName: 'cpu' } as never] });
    aas.on(DescribeScheduledActionsCommand).resolves({ ScheduledActions: [{ ScheduledActionName: 'n' } as never] });

    await createEcsReleaseRunner(f.ctx).start(request);

    assert.deepEqual(sequence, ['RegisterScalableTarget shop-green'], 'no tag rewritten, blue already suspended');
    assert.deepEqual(registered()[0]?.SuspendedState, runbooks);
    assert.equal(registered()[0]?.MinCapacity, 2);
    assert.equal(registered()[0]?.MaxCapacity, 10);
  });

  /**
   * Both colours running 2 tasks with scale-in suspended (blue 1.0.0 live, green the request's 2.0.0), each tagged
   * with the team's own scaling state.
   */
  function bothColoursScaled(): void {
    const blue = service('blue', {
      td: TD_OLD,
      desired: 2,
      release: 'shop-1-0-0-aaaa',
      version: '1.0.0',
      tags: scalingTag(TEAM),
    });
    const green = service('green', {
      td: TD_NEW,
      desired: 2,
      release: request.releaseId,
      version: '2.0.0',
      tags: scalingTag(TEAM),
    });
    ecs.on(DescribeServicesCommand).resolves(services(blue, green));
    aas
      .on(DescribeScalableTargetsCommand)
      .resolves({ ScalableTargets: [target(BLUE_ID, 2, 10, IN), target(GREEN_ID, 2, 10, IN)] });
  }

  it("stop at go-live: the leaving colour gets min 0/max 0, all suspended, before it is scaled to 0; the new live colour gets the team's state back", async () => {
    const f = fakeContext();
    recordWrites();
    bothColoursScaled();

    assert.equal(await createEcsReleaseRunner(f.ctx).stop('shop', 'prod', 'shop-1-0-0-aaaa', 30_000), true);

    assert.deepEqual(sequence, [
      'RegisterScalableTarget shop-blue',
      'UpdateService shop-blue 0',
      'RegisterScalableTarget shop-green',
      `UntagResource shop-green ${SCALING_TAG}`,
      `UntagResource shop-blue ${TAG.release},${TAG.version},${TASK_DEFINITION_TAG},${SCALING_TAG}`,
    ]);
    const common = { ServiceNamespace: 'ecs', ScalableDimension: 'ecs:service:DesiredCount' };
    assert.deepEqual(registered(), [
      { ...common, ResourceId: BLUE_ID, MinCapacity: 0, MaxCapacity: 0, SuspendedState: ALL },
      { ...common, ResourceId: GREEN_ID, SuspendedState: NONE },
    ]);
  });

  it('a failed canary: stopping the candidate gives the stable colour its scale-in back and idles the candidate', async () => {
    const f = fakeContext();
    recordWrites();
    bothColoursScaled();

    await createEcsReleaseRunner(f.ctx).stop('shop', 'prod', request.releaseId, 30_000);

    assert.deepEqual(sequence, [
      'RegisterScalableTarget shop-green',
      'UpdateService shop-green 0',
      'RegisterScalableTarget shop-blue',
      `UntagResource shop-blue ${SCALING_TAG}`,
      `UntagResource shop-green ${TAG.release},${TAG.version},${TASK_DEFINITION_TAG},${SCALING_TAG}`,
    ]);
    assert.deepEqual(
      registered().map((r) => [r.ResourceId, r.MinCapacity, r.MaxCapacity, r.SuspendedState]),
      [
        [GREEN_ID, 0, 0, ALL],
        [BLUE_ID, undefined, undefined, NONE],
      ],
    );
  });

  it('setWeights: the colour that gets 100% scales in again as the team had it; the other keeps its capacity until it is stopped', async () => {
    const f = fakeContext();
    recordWrites();
    const route = { service: 'shop', environment: 'prod', listenPort: 0, aws: spec } as unknown as RouteSpec;
    const carrying = (colour: 'blue' | 'green', release: string, version: string, td = TD_OLD) =>
      service(colour, { td, desired: 2, release, version, tags: scalingTag(TEAM) });
    ecs
      .on(DescribeServicesCommand)
      .resolves(
        services(carrying('blue', 'shop-1-0-0-aaaa', '1.0.0'), carrying('green', request.releaseId, '2.0.0', TD_NEW)),
      );
    elb.on(DescribeRulesCommand).resolves(ruleForwarding(50, 50));
    elb.on(DescribeTagsCommand).resolves({ TagDescriptions: [] });
    elb.on(ModifyRuleCommand).resolves({});
    aas
      .on(DescribeScalableTargetsCommand)
      .resolves({ ScalableTargets: [target(BLUE_ID, 2, 10, IN), target(GREEN_ID, 2, 10, IN)] });
    const router = createElbRouter(f.ctx);

    await router.setWeights(route, { 'shop-1-0-0-aaaa': 90, [request.releaseId]: 10 });
    assert.equal(aas.calls().length, 0, 'a canary step asks nothing of Application Auto Scaling');

    await router.setWeights(route, { 'shop-1-0-0-aaaa': 0, [request.releaseId]: 100 });
    assert.deepEqual(
      registered().map((r) => [r.ResourceId, r.SuspendedState]),
      [[GREEN_ID, NONE]],
    );
    assert.ok(!sequence.some((w) => w.startsWith('UntagResource')), 'the tags stay until the old colour is stopped');

    // A first deploy beside a service runbook did not start (no release tag): no stop() will come, so both colours
    // get the team's state back now and the tags go.
    aas.resetHistory();
    sequence = [];
    ecs
      .on(DescribeServicesCommand)
      .resolves(
        services(
          service('blue', { td: TD_OLD, desired: 2, tags: scalingTag(TEAM) }),
          carrying('green', request.releaseId, '2.0.0', TD_NEW),
        ),
      );
    await router.setWeights(route, { [request.releaseId]: 100 });
    assert.deepEqual(sequence, [
      'RegisterScalableTarget shop-blue',
      'RegisterScalableTarget shop-green',
      `UntagResource shop-blue ${SCALING_TAG}`,
      `UntagResource shop-green ${SCALING_TAG}`,
    ]);
  });

  it('AccessDenied on RegisterScalableTarget is a non-retryable AwsAccessDenied naming the action; ConcurrentUpdateException is retried', async () => {
    const f = fakeContext();
    recordWrites();
    const green = service('green', { td: TD_NEW, desired: 2, release: request.releaseId, version: '2.0.0' });
    ecs.on(DescribeServicesCommand).resolves(services(blueLive, green));
    aas
      .on(DescribeScalableTargetsCommand)
      .resolves({ ScalableTargets: [target(BLUE_ID, 2, 10), target(GREEN_ID, 2, 10)] });
    aas.on(RegisterScalableTargetCommand).rejects(
      Object.assign(new Error('User: arn:aws:sts::123456789012:assumed-role/worker is not authorized'), {
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const runner = createEcsReleaseRunner(f.ctx);
    const denied = await rejection(runner.stop('shop', 'prod', request.releaseId, 30_000));
    assert.ok(denied instanceof PlatformError, String(denied));
    assert.equal(denied.type, 'AwsAccessDenied');
    assert.equal(denied.permanent, true);
    assert.match(
      denied.message,
      /^application-autoscaling:RegisterScalableTarget on the scalable target service\/prod\/shop-green \(green\): AccessDeniedException: /,
    );
    assert.match(denied.message, /fix: grant the worker's IAM role application-autoscaling:RegisterScalableTarget/);
    assert.deepEqual(
      sequence,
      ['UpdateService shop-green 0'],
      'its tasks stop all the same; the tags stay, so that a stop run again once it is fixed finds the colour',
    );
    sequence = [];

    // Application Auto Scaling checks the caller's permissions on ECS and CloudWatch and answers a ValidationException.
    aas
      .on(RegisterScalableTargetCommand)
      .rejects(
        Object.assign(
          new Error(
            'User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: cloudwatch:PutMetricAlarm',
          ),
          { name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 } },
        ),
      );
    const missing = await rejection(runner.stop('shop', 'prod', request.releaseId, 30_000));
    assert.ok(missing instanceof PlatformError, String(missing));
    assert.equal(missing.type, 'AwsAccessDenied');
    assert.match(missing.message, /fix: grant the worker's IAM role the permission the message names/);

    const busy = new ConcurrentUpdateException({ message: 'concurrent update', $metadata: { httpStatusCode: 400 } });
    aas.on(RegisterScalableTargetCommand).rejects(busy);
    assert.equal(await rejection(runner.stop('shop', 'prod', request.releaseId, 30_000)), busy);
  });

  it("doctor reports each colour's scalable target and fails on an idle colour with a minimum above 0", () => {
    const blue: Service = { ...blueLive };
    const green: Service = { ...greenIdle };
    assert.equal(
      scalingCheck({ blue, green }, { blue: undefined, green: undefined }),
      'shop-blue (blue): no scalable target; shop-green (green): no scalable target: Application Auto Scaling not used',
    );
    assert.equal(
      scalingCheck({ blue, green }, { blue: target(BLUE_ID, 2, 10), green: target(GREEN_ID, 0, 0, ALL) }),
      'shop-blue (blue): min 2, max 10; shop-green (green): min 0, max 0, dynamic and scheduled scaling suspended',
    );
    assert.throws(
      () => scalingCheck({ blue, green }, { blue: target(BLUE_ID, 2, 10), green: target(GREEN_ID, 1, 10) }),
      (err: Error & { fix?: string }) => {
        assert.match(err.message, /the idle colour shop-green has MinCapacity 1/);
        assert.match(err.fix ?? '', /--min-capacity 0 --max-capacity 0/);
        return true;
      },
    );
  });
});
