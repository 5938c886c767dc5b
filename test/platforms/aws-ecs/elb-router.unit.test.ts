import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeServicesCommand, type Service } from '@aws-sdk/client-ecs';
import {
  AddTagsCommand,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeRulesCommand,
  DescribeTagsCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  ModifyListenerCommand,
  ModifyRuleCommand,
  RemoveTagsCommand,
  type Action,
  type Tag,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ApplicationFailure } from '@temporalio/common';
import { mockClient } from 'aws-sdk-client-mock';
import { createTrafficActivities } from '../../../src/activities/traffic';
import { clearAwsCaches } from '../../../src/platforms/aws-ecs/listener-addresses';
import { awsClients } from '../../../src/platforms/aws-ecs/context';
import { TAG } from '../../../src/platforms/aws-ecs/context';
import { createElbRouter } from '../../../src/platforms/aws-ecs/elb-router';
import { createPlatformRegistry } from '../../../src/platforms/registry';
import { judgeWindow } from '../../../src/shared/analysis';
import type { AnalysisSpec } from '../../../src/shared/service-plan';
import { PlatformError, type PlatformParts, type RouteSpec, type TrafficRouter } from '../../../src/platforms/types';
import {
  BLUE_TG,
  ECS_ARN,
  ELB,
  fakeAwsContext,
  GREEN_TG,
  LB,
  PROD_LISTENER,
  rejection,
  RULE,
  TEST_LISTENER,
  testSpec,
} from './fixture';

/** The clients fakeAwsContext() hands the code under test: mocked one by one, never the SDK classes, so that
 * other test files (the moto contract test) keep real clients. */
const testClients = awsClients('us-east-1');
const OLD = 'shop-1-0-0-aaaa';
const NEW = 'shop-2-0-0-bbbb';

const spec = testSpec();

const route: RouteSpec = { service: 'shop', environment: 'prod', listenPort: 0, aws: spec };

const ecs = mockClient(testClients.ecs);
const elb = mockClient(testClients.elb);
const cloudwatch = mockClient(testClients.cloudwatch);

/** The router's context: the load balancer's DNS name resolves to a marked host, and the clock stands still. */
const fakeContext = () =>
  fakeAwsContext({
    spec,
    resolveAddress: (host, port) => ({ host: `resolved.${host}`, port }),
    startMs: Date.UTC(2025, 0, 1, 12, 0, 30),
  });

function service(colour: 'blue' | 'green', release?: string, desired = release ? 2 : 0): Service {
  return {
    serviceName: `shop-${colour}`,
    serviceArn: `${ECS_ARN}:service/prod/shop-${colour}`,
    status: 'ACTIVE',
    desiredCount: desired,
    runningCount: desired,
    taskDefinition: `${ECS_ARN}:task-definition/shop:7`,
    deployments: [],
    events: [],
    tags: release
      ? [
          { key: TAG.release, value: release },
          { key: TAG.version, value: release.slice(5, 10) },
        ]
      : [],
  };
}

const forward = (blue: number, green: number): Action => ({
  Type: 'forward',
  ForwardConfig: {
    TargetGroups: [
      { TargetGroupArn: BLUE_TG, Weight: blue },
      { TargetGroupArn: GREEN_TG, Weight: green },
    ],
  },
});

/**
 * A stateful ALB: ModifyRule changes what DescribeRules returns, AddTags/RemoveTags what DescribeTags returns, so
 * that a sequence of calls sees its own effects (as on AWS).
 */
function fakeAlb(initial: Action[]) {
  const state = { actions: initial, tags: [] as Tag[] };
  elb.on(DescribeRulesCommand).callsFake(() => ({ Rules: [{ RuleArn: RULE, Actions: state.actions }] }));
  elb.on(ModifyRuleCommand).callsFake((input: { Actions: Action[] }) => {
    state.actions = input.Actions;
    return {};
  });
  elb.on(DescribeTagsCommand).callsFake(() => ({ TagDescriptions: [{ ResourceArn: RULE, Tags: state.tags }] }));
  elb.on(AddTagsCommand).callsFake((input: { Tags: Tag[] }) => {
    const keys = new Set(input.Tags.map((t) => t.Key));
    state.tags = [...state.tags.filter((t) => !keys.has(t.Key)), ...input.Tags];
    return {};
  });
  elb.on(RemoveTagsCommand).callsFake((input: { TagKeys: string[] }) => {
    state.tags = state.tags.filter((t) => !input.TagKeys.includes(t.Key ?? ''));
    return {};
  });
  elb.on(DescribeListenersCommand, { ListenerArns: [PROD_LISTENER] }).resolves({
    Listeners: [{ ListenerArn: PROD_LISTENER, LoadBalancerArn: LB, Port: 443 }],
  });
  elb.on(DescribeListenersCommand, { ListenerArns: [TEST_LISTENER] }).resolves({
    Listeners: [{ ListenerArn: TEST_LISTENER, LoadBalancerArn: LB, Port: 8443 }],
  });
  elb.on(DescribeLoadBalancersCommand).resolves({
    LoadBalancers: [{ LoadBalancerArn: LB, DNSName: 'shop-123.us-east-1.elb.amazonaws.com' }],
  });
  elb.on(DescribeTargetGroupsCommand).resolves({
    TargetGroups: [
      { TargetGroupArn: BLUE_TG, LoadBalancerArns: [LB] },
      { TargetGroupArn: GREEN_TG, LoadBalancerArns: [LB] },
    ],
  });
  return state;
}

const modifiedRules = () => elb.commandCalls(ModifyRuleCommand).map((c) => c.args[0].input);

describe('ELB traffic router (aws-sdk-client-mock)', () => {
  beforeEach(() => {
    ecs.reset();
    elb.reset();
    cloudwatch.reset();
    clearAwsCaches();
    ecs.on(DescribeServicesCommand).resolves({ services: [service('blue', OLD), service('green', NEW)] });
  });

  it('ensureRoute checks the rule, both target groups and the test listener, and creates nothing', async () => {
    fakeAlb([forward(100, 0)]);
    await createElbRouter(fakeContext().ctx).ensureRoute(route);
    assert.deepEqual(elb.commandCalls(DescribeRulesCommand)[0]?.args[0].input, { RuleArns: [RULE] });
    assert.deepEqual(elb.commandCalls(DescribeTargetGroupsCommand)[0]?.args[0].input, {
      TargetGroupArns: [BLUE_TG, GREEN_TG],
    });
    assert.equal(elb.commandCalls(DescribeListenersCommand).length, 1);
    assert.equal(modifiedRules().length, 0);

    elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: BLUE_TG }] });
    const err = await rejection(createElbRouter(fakeContext().ctx).ensureRoute(route));
    assert.ok(err instanceof PlatformError);
    assert.equal(err.type, 'AwsNotFound');
    assert.match(err.message, /shop-green/);
  });

  it('turns group stickiness off before a colour leaves and back on once its cookies expired (issue 13 item 7)', async () => {
    const sticky = (blue: number, green: number, on: boolean, duration = 600): Action => ({
      Type: 'forward',
      ForwardConfig: {
        ...forward(blue, green).ForwardConfig,
        TargetGroupStickinessConfig: on ? { Enabled: true, DurationSeconds: duration } : { Enabled: false },
      },
    });
    const alb = fakeAlb([sticky(90, 10, true)]);
    const fake = fakeAwsContext({ spec, startMs: Date.UTC(2025, 0, 1, 12, 0, 0), sleepAdvancesClock: true });
    const router = createElbRouter(fake.ctx);

    await router.setWeights(route, { [OLD]: 50, [NEW]: 50 });
    assert.deepEqual(modifiedRules().at(-1)?.Actions, [sticky(50, 50, true)], 'no colour leaves: kept on');

    // The canary is rolled back: its weight goes to 0, so its sticky clients must not stay on it.
    await router.setWeights(route, { [OLD]: 100, [NEW]: 0 });
    assert.deepEqual(modifiedRules().at(-1)?.Actions, [sticky(100, 0, false)]);
    assert.deepEqual(
      alb.tags.map((t) => [t.Key, t.Value]),
      [['runbook:stickiness', `duration=600/since=${Date.UTC(2025, 0, 1, 12, 0, 0)}`]],
    );

    await fake.ctx.sleep(599_000);
    await router.setWeights(route, { [OLD]: 90, [NEW]: 10 });
    assert.deepEqual(modifiedRules().at(-1)?.Actions, [sticky(90, 10, false)], 'cookies may still be valid: off');
    await fake.ctx.sleep(2_000);
    await router.setWeights(route, { [OLD]: 80, [NEW]: 20 });
    assert.deepEqual(modifiedRules().at(-1)?.Actions, [sticky(80, 20, true)], 'every cookie expired: on again');
    assert.deepEqual(alb.tags, []);
  });

  it('maintenance keeps the group stickiness and restores it with the weights', async () => {
    const on = { Enabled: true, DurationSeconds: 300 };
    const alb = fakeAlb([
      { Type: 'forward', ForwardConfig: { ...forward(100, 0).ForwardConfig, TargetGroupStickinessConfig: on } },
    ]);
    const router = createElbRouter(fakeContext().ctx);
    await router.setMaintenance(route, true);
    await router.setMaintenance(route, false);
    assert.deepEqual(alb.actions, [
      { Type: 'forward', ForwardConfig: { ...forward(100, 0).ForwardConfig, TargetGroupStickinessConfig: on } },
    ]);
    assert.deepEqual(alb.tags, []);
  });

  it('setWeights 90/10 sends the forward config with both target groups; bad splits send nothing', async () => {
    fakeAlb([forward(100, 0)]);
    const router = createElbRouter(fakeContext().ctx);
    await router.setWeights(route, { [OLD]: 90, [NEW]: 10 });
    assert.deepEqual(modifiedRules(), [{ RuleArn: RULE, Actions: [forward(90, 10)] }]);

    await router.setWeights(route, { [OLD]: 90, [NEW]: 10 });
    assert.equal(modifiedRules().length, 1, 'an unchanged split sends nothing');

    await assert.rejects(router.setWeights(route, { [OLD]: 90, [NEW]: 20 }), /must sum to 100, got 110/);
    await assert.rejects(router.setWeights(route, { [OLD]: 90, 'shop-3-0-0-cccc': 10 }), /unknown member/);
    assert.equal(modifiedRules().length, 1);

    const { percent, members } = await router.getWeights(route);
    assert.deepEqual(percent, { [OLD]: 90, [NEW]: 10 });
    assert.deepEqual(members, [
      { releaseId: OLD, host: 'resolved.shop-123.us-east-1.elb.amazonaws.com', port: 443 },
      { releaseId: NEW, host: 'resolved.shop-123.us-east-1.elb.amazonaws.com', port: 443 },
    ]);
  });

  it("uses the listener's default action when aws.listener is set instead of a rule", async () => {
    fakeAlb([]);
    elb.on(DescribeListenersCommand, { ListenerArns: [PROD_LISTENER] }).resolves({
      Listeners: [
        {
          ListenerArn: PROD_LISTENER,
          LoadBalancerArn: LB,
          Port: 443,
          DefaultActions: [{ ...forward(100, 0), Order: 1 }],
        },
      ],
    });
    const { ctx } = fakeContext();
    const { listenerRule: _rule, ...rest } = spec;
    const router = createElbRouter({ ...ctx, spec: { ...rest, listener: PROD_LISTENER } });
    await router.setWeights(route, { [OLD]: 75, [NEW]: 25 });
    assert.deepEqual(
      elb.commandCalls(ModifyListenerCommand).map((c) => c.args[0].input),
      [{ ListenerArn: PROD_LISTENER, DefaultActions: [{ ...forward(75, 25), Order: 1 }] }],
    );
    assert.equal(modifiedRules().length, 0);
    assert.equal(elb.commandCalls(DescribeRulesCommand).length, 0);
  });

  it('getWeights normalises ALB weights to percent and gives an idle colour the test listener address', async () => {
    fakeAlb([forward(1, 0)]);
    const { percent, members } = await createElbRouter(fakeContext().ctx).getWeights(route);
    assert.deepEqual(percent, { [OLD]: 100, [NEW]: 0 });
    assert.deepEqual(
      members.map((m) => [m.releaseId, m.port]),
      [
        [OLD, 443],
        [NEW, 8443],
      ],
    );
  });

  it('addMember requires the release tag and adds a missing target group at weight 0', async () => {
    fakeAlb([{ Type: 'forward', TargetGroupArn: BLUE_TG }]);
    const router = createElbRouter(fakeContext().ctx);
    await assert.rejects(
      router.addMember(route, { releaseId: 'shop-3-0-0-cccc', host: 'x', port: 1 }),
      /"shop-3-0-0-cccc" is not a member of route shop\/prod/,
    );
    await router.addMember(route, { releaseId: NEW, host: 'x', port: 1 });
    assert.deepEqual(modifiedRules(), [{ RuleArn: RULE, Actions: [forward(1, 0)] }]);
    await router.addMember(route, { releaseId: NEW, host: 'x', port: 1 });
    assert.equal(modifiedRules().length, 1, 'adopted: both target groups are there');
  });

  it('removeMember moves the colour to 0, waits what of drainMs the deregistration delay does not cover, and is idempotent', async () => {
    fakeAlb([forward(0, 100)]);
    elb.on(DescribeTargetGroupAttributesCommand).resolves({
      Attributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: '20' }],
    });
    const f = fakeContext();
    const router = createElbRouter(f.ctx);
    await router.removeMember(route, NEW, 30_000);
    assert.deepEqual(modifiedRules(), [{ RuleArn: RULE, Actions: [forward(100, 0)] }]);
    assert.deepEqual(f.sleeps, [10_000], 'the 20 s deregistration delay drains the rest when the colour scales to 0');
    await router.removeMember(route, NEW, 30_000);
    assert.equal(modifiedRules().length, 1);
    await router.removeMember(route, 'shop-3-0-0-cccc', 30_000);
    assert.deepEqual(f.sleeps, [10_000, 10_000], 'an unknown release has nothing to drain');

    elb.on(DescribeTargetGroupAttributesCommand).resolves({ Attributes: [] });
    await router.removeMember(route, NEW, 30_000);
    assert.deepEqual(f.sleeps, [10_000, 10_000], "ELB's default delay (300 s) covers a 30 s drain");
  });

  it('windowFigures turns CloudWatch GetMetricData results into the window figures', async () => {
    fakeAlb([forward(90, 10)]);
    const f = fakeContext();
    cloudwatch.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        { Id: 'requests', Values: [600, 540], Timestamps: [] },
        { Id: 'errors5xx', Values: [3, 4], Timestamps: [] },
        { Id: 'connectionErrors', Values: [1], Timestamps: [] },
        { Id: 'p95', Values: [0.12, 0.245], Timestamps: [] },
      ],
    });
    const router = createElbRouter(f.ctx);
    // metricsDelay 2m: the window 12:02:30-12:04:10 reads the whole minutes that ended by 12:02:10, from 12:00:30
    // on: 12:00 and 12:01.
    const from = Date.UTC(2025, 0, 1, 12, 2, 30);
    const to = Date.UTC(2025, 0, 1, 12, 4, 10);
    const figures = await router.windowFigures!(route, NEW, from, to);
    assert.deepEqual(figures, {
      requests: 1140,
      errors5xx: 7,
      connectionErrors: 1,
      p95Ms: 245,
      samples: 1140,
      elbErrors5xx: 0,
      unhealthyHosts: 0,
    });

    const input = cloudwatch.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    assert.deepEqual(input.StartTime, new Date(Date.UTC(2025, 0, 1, 12, 0, 0)));
    assert.deepEqual(input.EndTime, new Date(Date.UTC(2025, 0, 1, 12, 2, 0)));

    // The next window starts where this one ended: it reads from 12:02 on, no minute twice; one that holds no whole
    // published minute yet has no figures and asks CloudWatch nothing.
    await router.windowFigures!(route, NEW, to, Date.UTC(2025, 0, 1, 12, 5, 20));
    const next = cloudwatch.commandCalls(GetMetricDataCommand)[1]!.args[0].input;
    assert.deepEqual(
      [next.StartTime, next.EndTime],
      [new Date(Date.UTC(2025, 0, 1, 12, 2, 0)), new Date(Date.UTC(2025, 0, 1, 12, 3, 0))],
    );
    const early = await router.windowFigures!(
      route,
      NEW,
      Date.UTC(2025, 0, 1, 12, 5, 20),
      Date.UTC(2025, 0, 1, 12, 5, 50),
    );
    assert.deepEqual(early, {
      requests: 0,
      errors5xx: 0,
      connectionErrors: 0,
      p95Ms: null,
      samples: 0,
      elbErrors5xx: 0,
      unhealthyHosts: 0,
    });
    assert.equal(cloudwatch.commandCalls(GetMetricDataCommand).length, 2);
    assert.deepEqual(
      input.MetricDataQueries?.map((q) => [q.Id, q.MetricStat?.Metric?.MetricName, q.MetricStat?.Stat]),
      [
        ['requests', 'RequestCount', 'Sum'],
        ['errors5xx', 'HTTPCode_Target_5XX_Count', 'Sum'],
        ['connectionErrors', 'TargetConnectionErrorCount', 'Sum'],
        ['p95', 'TargetResponseTime', 'p95'],
        ['unhealthy', 'UnHealthyHostCount', 'Maximum'],
        ['lbErrors5xx', 'HTTPCode_ELB_5XX_Count', 'Sum'],
        ['lbRequests', 'RequestCount', 'Sum'],
      ],
    );
    for (const q of input.MetricDataQueries ?? []) {
      const perLoadBalancer = q.Id === 'lbErrors5xx' || q.Id === 'lbRequests';
      assert.equal(q.MetricStat?.Period, 60);
      assert.equal(q.MetricStat?.Metric?.Namespace, 'AWS/ApplicationELB');
      assert.deepEqual(q.MetricStat?.Metric?.Dimensions, [
        ...(perLoadBalancer ? [] : [{ Name: 'TargetGroup', Value: 'targetgroup/shop-green/bbbb2222bbbb2222' }]),
        { Name: 'LoadBalancer', Value: 'app/shop/50dc6c495c0c9188' },
      ]);
    }

    cloudwatch.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        { Id: 'requests', Values: [] },
        { Id: 'p95', Values: [] },
      ],
    });
    assert.deepEqual(await router.latency(route, NEW, from, to), { p95Ms: null, samples: 0 });
    assert.deepEqual(await router.readCounters(route, NEW), {
      responses: 0,
      errors5xx: 0,
      connectionErrors: 0,
      atMs: f.now(),
    });
  });

  it('reads no minute that began before the traffic step, and the minutes after it as they are published (issue 13 item 1)', async () => {
    fakeAlb([forward(50, 50)]);
    cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const router = createElbRouter(fakeContext().ctx);
    const at = (m: number, sec = 0) => Date.UTC(2025, 0, 1, 12, m, sec);
    // The step shifted at 12:00:30 (metricsDelay 2m, 1-minute windows): the windows' own bounds would read 11:58 on,
    // the previous weight's minutes, and 12:00, which holds the shift.
    const shift = at(0, 30);
    const read: Array<[string, string] | 'nothing'> = [];
    for (let k = 0; k < 7; k++) {
      const before = cloudwatch.commandCalls(GetMetricDataCommand).length;
      await router.windowFigures!(route, NEW, shift + k * 60_000, shift + (k + 1) * 60_000, { stepFromMs: shift });
      const calls = cloudwatch.commandCalls(GetMetricDataCommand);
      const input = calls.length > before ? calls.at(-1)!.args[0].input : undefined;
      read.push(
        input ? [input.StartTime!.toISOString().slice(11, 16), input.EndTime!.toISOString().slice(11, 16)] : 'nothing',
      );
    }
    assert.deepEqual(read, [
      'nothing', // 12:01:30: 11:59 is published, but it is before the step
      'nothing', // 12:02:30: 12:00 holds the shift
      'nothing', // 12:03:30: 12:01 ends at 12:02, published at 12:04
      ['12:01', '12:02'],
      ['12:02', '12:03'],
      ['12:03', '12:04'],
      ['12:04', '12:05'],
    ]);
    // Without the step's start (the sign-off's watch, older activities), the windows read as before.
    await router.windowFigures!(route, NEW, shift, shift + 60_000 * 3);
    const plain = cloudwatch.commandCalls(GetMetricDataCommand).at(-1)!.args[0].input;
    assert.deepEqual([plain.StartTime, plain.EndTime], [new Date(at(-2)), new Date(at(1))]);
  });

  it("measureAgainstStable reads both colours from the step's first whole minute on", async () => {
    fakeAlb([forward(50, 50)]);
    cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const shift = Date.UTC(2025, 0, 1, 12, 0, 30);
    const now = Date.UTC(2025, 0, 1, 12, 6, 30);
    const router = createElbRouter(fakeAwsContext({ spec, startMs: now }).ctx);
    const traffic = createTrafficActivities({
      platforms: createPlatformRegistry({ 'aws-ecs': () => ({ router }) as unknown as PlatformParts }),
    });
    const counters = { responses: 0, errors5xx: 0, connectionErrors: 0, atMs: shift };
    await traffic.measureAgainstStable({
      route,
      release: { releaseId: NEW, version: '2.0.0', host: '127.0.0.1', port: 9 },
      stable: { releaseId: OLD, version: '1.0.0', host: '127.0.0.1', port: 9 },
      from: { canary: counters, stable: counters },
      step: { fromMs: shift, prior: { canary: { attempts: 0, errors: 0 }, stable: { attempts: 0, errors: 0 } } },
      liveness: { path: '/health', expectStatus: 200 },
      timeoutMs: 1_000,
      compare: { max5xxRatio: 2, maxP95Ratio: 1.5, minP95DeltaMs: 25, confidence: 0.99 },
      minRequests: 20,
      looks: 1,
    });
    const spans = cloudwatch
      .commandCalls(GetMetricDataCommand)
      .map((c) => [
        c.args[0].input.StartTime?.toISOString().slice(11, 16),
        c.args[0].input.EndTime?.toISOString().slice(11, 16),
      ]);
    // canary and stable windows, then both latencies (no warm-up given): none from before 12:01
    assert.deepEqual(spans, [
      ['12:01', '12:04'],
      ['12:01', '12:04'],
      ['12:01', '12:04'],
      ['12:01', '12:04'],
    ]);
  });

  describe("the load balancer's own 5xx and unhealthy targets (issue 13, ALB-generated 5xx)", () => {
    const minute = (m: number) => new Date(Date.UTC(2025, 0, 1, 12, m, 0));
    const from = Date.UTC(2025, 0, 1, 12, 2, 30);
    const to = Date.UTC(2025, 0, 1, 12, 5, 10); // reads 12:00, 12:01 and 12:02
    const series = (Id: string, byMinute: Record<number, number>) => ({
      Id,
      Timestamps: Object.keys(byMinute).map((m) => minute(Number(m))),
      Values: Object.values(byMinute),
    });
    /** The canary (green) takes 10% of the load balancer's requests, and hangs: its requests end in ELB 504s. */
    const hangingCanary = (unhealthy: Record<number, number> = { 0: 0, 1: 0, 2: 0 }) => ({
      MetricDataResults: [
        series('requests', { 0: 100, 1: 100, 2: 0 }),
        series('errors5xx', { 0: 1 }),
        series('p95', { 0: 0.1, 1: 0.1 }),
        series('unhealthy', unhealthy),
        // the load balancer: 1000 requests a minute (other rules and the stable colour too), its own 5xx
        series('lbRequests', { 0: 1000, 1: 1000, 2: 1000 }),
        series('lbErrors5xx', { 0: 100, 1: 50, 2: 30 }),
      ],
    });

    it("counts the load balancer's 5xx weighted by the colour's share of its requests, minute by minute", async () => {
      fakeAlb([forward(90, 10)]);
      cloudwatch.on(GetMetricDataCommand).resolves(hangingCanary());
      const figures = await createElbRouter(fakeContext().ctx).windowFigures!(route, NEW, from, to);
      // 100 x 10% + 50 x 10% + 30 x 0% (no canary request in 12:02) = 15, plus the target's own 1
      assert.deepEqual(figures, {
        requests: 200,
        errors5xx: 16,
        connectionErrors: 0,
        p95Ms: 100,
        samples: 200,
        elbErrors5xx: 15,
        unhealthyHosts: 0,
      });
    });

    /** The traffic activities over the router, with a liveness probe that answers (a closed port would not). */
    const measure = async (results: ReturnType<typeof hangingCanary>) => {
      fakeAlb([forward(90, 10)]);
      cloudwatch.on(GetMetricDataCommand).resolves(results);
      // the window closes now: the clock stands at its end
      const router = createElbRouter(fakeAwsContext({ spec, startMs: to }).ctx);
      const traffic = createTrafficActivities({
        platforms: createPlatformRegistry({ 'aws-ecs': () => ({ router }) as unknown as PlatformParts }),
      });
      const server = http.createServer((_req, res) => res.end('ok'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as AddressInfo;
        return await traffic.measureWindow({
          route,
          release: { releaseId: NEW, version: '2.0.0', host: '127.0.0.1', port },
          from: { responses: 0, errors5xx: 0, connectionErrors: 0, atMs: from },
          liveness: { path: '/health', expectStatus: 200 },
          timeoutMs: 5_000,
        });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    };
    const policy = { max5xxRate: 0.01, maxP95LatencyMs: 400, minRequests: 100 } as AnalysisSpec;

    it('fails the window of a canary whose requests end in ELB 5xx though the targets answered no 5xx', async () => {
      const m = await measure({
        MetricDataResults: hangingCanary().MetricDataResults.filter((r) => r.Id !== 'errors5xx'),
      });
      assert.equal(m.live, true, m.liveDetail);
      const judged = judgeWindow(policy, m, { countConnectionErrors: true });
      assert.equal(judged.verdict, 'fail');
      assert.match(judged.because ?? '', /5xx rate 7\.50% > 1\.00% \(15 of 200\)/);
    });

    it('fails the window of a canary with an unhealthy target in it, whatever its figures', async () => {
      const quiet = {
        MetricDataResults: [
          series('requests', { 0: 100, 1: 100, 2: 100 }),
          series('p95', { 0: 0.1 }),
          series('unhealthy', { 0: 0, 1: 2, 2: 1 }),
          series('lbRequests', { 0: 1000, 1: 1000, 2: 1000 }),
        ],
      };
      const m = await measure(quiet);
      assert.equal(m.unhealthyHosts, 2);
      assert.equal(m.live, false);
      assert.match(m.liveDetail, /^GET \/health -> 200, and the load balancer found 2 targets unhealthy in the window/);
      const judged = judgeWindow(policy, m, { countConnectionErrors: true });
      assert.equal(judged.verdict, 'fail');
      assert.match(judged.because ?? '', /UnHealthyHostCount/);

      const healthy = await measure({
        MetricDataResults: quiet.MetricDataResults.map((r) =>
          r.Id === 'unhealthy' ? series('unhealthy', { 0: 0, 1: 0, 2: 0 }) : r,
        ),
      });
      assert.equal(healthy.live, true);
      assert.equal(judgeWindow(policy, healthy, { countConnectionErrors: true }).verdict, 'pass');
    });
  });

  it('maintenance on saves the weights and answers 503; off restores them; both idempotent; weights set meanwhile survive', async () => {
    const alb = fakeAlb([forward(90, 10)]);
    const router = createElbRouter(fakeContext().ctx);
    const maintenance: Action = {
      Type: 'fixed-response',
      FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: 'maintenance: retry later' },
    };

    await router.setMaintenance(route, true, 30);
    assert.deepEqual(
      elb.commandCalls(AddTagsCommand).map((c) => c.args[0].input),
      [{ ResourceArns: [RULE], Tags: [{ Key: 'runbook:weights', Value: 'blue=90/green=10' }] }],
    );
    assert.deepEqual(modifiedRules(), [{ RuleArn: RULE, Actions: [maintenance] }]);
    await router.setMaintenance(route, true, 30);
    assert.equal(modifiedRules().length, 1);
    assert.equal(elb.commandCalls(AddTagsCommand).length, 1);
    assert.deepEqual((await router.getWeights(route)).percent, { [OLD]: 90, [NEW]: 10 });

    await router.setMaintenance(route, false);
    assert.deepEqual(modifiedRules()[1], { RuleArn: RULE, Actions: [forward(90, 10)] });
    assert.deepEqual(
      elb.commandCalls(RemoveTagsCommand).map((c) => c.args[0].input),
      [{ ResourceArns: [RULE], TagKeys: ['runbook:weights'] }],
    );
    await router.setMaintenance(route, false);
    assert.equal(modifiedRules().length, 2);
    assert.deepEqual(alb.actions, [forward(90, 10)]);

    // A rollback moves traffic while maintenance is on: the split is kept for maintenance off, not applied at once.
    await router.setMaintenance(route, true);
    await router.setWeights(route, { [OLD]: 0, [NEW]: 100 });
    assert.deepEqual(alb.actions, [maintenance]);
    await router.setMaintenance(route, false);
    assert.deepEqual(alb.actions, [forward(0, 100)]);

    // Without the tag, maintenance off forwards to the colour that runs a release.
    ecs.on(DescribeServicesCommand).resolves({ services: [service('blue'), service('green', NEW)] });
    alb.actions = [maintenance];
    alb.tags = [];
    await router.setMaintenance(route, false);
    assert.deepEqual(alb.actions, [forward(0, 100)]);
  });

  it('refuses a rule that forwards to a target group of neither colour', async () => {
    fakeAlb([{ Type: 'forward', TargetGroupArn: `${ELB}:targetgroup/other/cccc3333cccc3333` }]);
    const err = await rejection(createElbRouter(fakeContext().ctx).setWeights(route, { [OLD]: 100 }));
    assert.ok(err instanceof PlatformError);
    assert.equal(err.type, 'ElbUnexpectedAction');
    assert.match(err.message, /targetgroup\/other\/.* neither aws\.targetGroups\.blue nor green/);
    assert.equal(modifiedRules().length, 0);
  });

  it('re-sends an authenticate-oidc action with UseExistingClientSecret and without ClientSecret (rule and listener)', async () => {
    // DescribeRules/DescribeListeners return an OIDC action without its secret; ModifyRule/ModifyListener refuse it
    // unless it says to keep the existing one.
    const oidc: Action = {
      Type: 'authenticate-oidc',
      Order: 1,
      AuthenticateOidcConfig: {
        Issuer: 'https://idp.example',
        AuthorizationEndpoint: 'https://idp.example/authorize',
        TokenEndpoint: 'https://idp.example/token',
        UserInfoEndpoint: 'https://idp.example/userinfo',
        ClientId: 'shop',
        ClientSecret: 'never-returned-by-aws-but-dropped-anyway',
      },
    };
    const { ClientSecret: _secret, ...config } = oidc.AuthenticateOidcConfig!;
    const resent: Action = { ...oidc, AuthenticateOidcConfig: { ...config, UseExistingClientSecret: true } };
    const alb = fakeAlb([oidc, { ...forward(100, 0), Order: 2 }]);
    await createElbRouter(fakeContext().ctx).setWeights(route, { [OLD]: 90, [NEW]: 10 });
    assert.deepEqual(modifiedRules(), [{ RuleArn: RULE, Actions: [resent, { ...forward(90, 10), Order: 2 }] }]);
    assert.equal(alb.actions[0]?.AuthenticateOidcConfig?.ClientSecret, undefined);

    elb.on(DescribeListenersCommand, { ListenerArns: [PROD_LISTENER] }).resolves({
      Listeners: [
        {
          ListenerArn: PROD_LISTENER,
          LoadBalancerArn: LB,
          Port: 443,
          DefaultActions: [oidc, { ...forward(90, 10), Order: 2 }],
        },
      ],
    });
    const { listenerRule: _rule, ...rest } = spec;
    const { ctx } = fakeContext();
    await createElbRouter({ ...ctx, spec: { ...rest, listener: PROD_LISTENER } }).setMaintenance(route, true);
    const listenerWrites = elb.commandCalls(ModifyListenerCommand).map((c) => c.args[0].input);
    assert.equal(listenerWrites.length, 1);
    assert.deepEqual(listenerWrites[0]?.DefaultActions?.[0], resent);
    assert.equal(listenerWrites[0]?.DefaultActions?.[1]?.Type, 'fixed-response');
  });

  it("refuses a listenerRule that is the listener's default rule (ElbDefaultRule naming aws.listener)", async () => {
    fakeAlb([forward(100, 0)]);
    elb.on(DescribeRulesCommand).resolves({ Rules: [{ RuleArn: RULE, IsDefault: true, Actions: [forward(100, 0)] }] });
    const err = await rejection(createElbRouter(fakeContext().ctx).setWeights(route, { [OLD]: 90, [NEW]: 10 }));
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'ElbDefaultRule');
    assert.equal(err.permanent, true);
    assert.equal(
      err.message,
      `listener rule ${RULE} is the default rule of listener ${PROD_LISTENER}: set aws.listener: ${PROD_LISTENER} ` +
        'instead of aws.listenerRule in runbook.yaml',
    );
    assert.equal(modifiedRules().length, 0);
  });

  it('a colour scaled to 0 with a leftover release tag carries no release: not in getWeights, not a member, not the one maintenance restores', async () => {
    const alb = fakeAlb([forward(100, 0)]);
    ecs.on(DescribeServicesCommand).resolves({ services: [service('blue', OLD), service('green', NEW, 0)] });
    const router = createElbRouter(fakeContext().ctx);

    const { percent, members } = await router.getWeights(route);
    assert.deepEqual(percent, { [OLD]: 100 });
    assert.deepEqual(
      members.map((m) => m.releaseId),
      [OLD],
    );

    const unknown = await rejection(router.setWeights(route, { [OLD]: 0, [NEW]: 100 }));
    assert.ok(unknown instanceof PlatformError, String(unknown));
    assert.equal(unknown.type, 'InvalidTrafficSplit');
    assert.match(unknown.message, new RegExp(`unknown member "${NEW}" \\(members: ${OLD}\\)`));
    const stranger = await rejection(router.addMember(route, { releaseId: NEW, host: 'x', port: 1 }));
    assert.ok(stranger instanceof PlatformError, String(stranger));
    assert.equal(stranger.type, 'InvalidTrafficSplit');
    assert.equal(modifiedRules().length, 0);

    // Maintenance without the weights tag: the stale tag on green, deployed first, must not become the stable one.
    ecs.on(DescribeServicesCommand).resolves({
      services: [
        { ...service('blue', OLD), deployments: [{ createdAt: new Date(Date.UTC(2025, 0, 1, 11)) }] },
        { ...service('green', NEW, 0), deployments: [{ createdAt: new Date(Date.UTC(2024, 0, 1)) }] },
      ],
    });
    alb.actions = [
      {
        Type: 'fixed-response',
        FixedResponseConfig: { StatusCode: '503', ContentType: 'text/plain', MessageBody: 'maintenance: retry later' },
      },
    ];
    await router.setMaintenance(route, false);
    assert.deepEqual(alb.actions, [forward(100, 0)]);
  });

  it('asks AWS once per worker for a listener address and a target group load balancer (cached by ARN)', async () => {
    fakeAlb([forward(90, 10)]);
    cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const router = createElbRouter(fakeContext().ctx);
    const addressCalls = () => [
      elb.commandCalls(DescribeListenersCommand).length,
      elb.commandCalls(DescribeLoadBalancersCommand).length,
    ];

    await router.getWeights(route);
    assert.deepEqual(addressCalls(), [1, 1], 'both colours take traffic: the production listener only');
    await router.getWeights(route);
    await createElbRouter(fakeContext().ctx).getWeights(route);
    assert.deepEqual(addressCalls(), [1, 1], 'another call, another router of the same worker: no second question');
    assert.equal(
      elb.commandCalls(DescribeRulesCommand).length,
      4,
      "the weights are read every time, the rule's host conditions once (the check host)",
    );

    const from = Date.UTC(2025, 0, 1, 12, 2, 30);
    await router.windowFigures!(route, NEW, from, from + 120_000);
    await router.windowFigures!(route, NEW, from + 120_000, from + 240_000);
    assert.equal(elb.commandCalls(DescribeTargetGroupsCommand).length, 1);
    assert.equal(cloudwatch.commandCalls(GetMetricDataCommand).length, 2);

    // A target group attached to no load balancer is asked again (it may be attached later).
    clearAwsCaches();
    elb
      .on(DescribeTargetGroupsCommand)
      .resolves({ TargetGroups: [{ TargetGroupArn: GREEN_TG, LoadBalancerArns: [] }] });
    for (let i = 0; i < 2; i++) {
      const err = await rejection(router.windowFigures!(route, NEW, from, from + 120_000));
      assert.ok(err instanceof PlatformError);
      assert.equal(err.type, 'ElbTargetGroupUnused');
    }
    assert.equal(elb.commandCalls(DescribeTargetGroupsCommand).length, 3);
  });

  it('throws a permanent InvalidTrafficSplit for refused splits, which the traffic activities report as non-retryable', async () => {
    fakeAlb([forward(100, 0)]);
    const router = createElbRouter(fakeContext().ctx);
    for (const [split, message] of [
      [{ [OLD]: 90, [NEW]: 20 }, /must sum to 100, got 110/],
      [{ [OLD]: 90, 'shop-3-0-0-cccc': 10 }, /unknown member "shop-3-0-0-cccc"/],
      [{ [OLD]: 150, [NEW]: -50 }, /must be an integer percent from 0 to 100, got 150/],
    ] as const) {
      const err = await rejection(router.setWeights(route, split));
      assert.ok(err instanceof PlatformError, String(err));
      assert.equal(err.type, 'InvalidTrafficSplit');
      assert.equal(err.permanent, true);
      assert.match(err.message, message);
    }

    // The window figures of a release no colour carries are asked again (retryable), not refused.
    const from = Date.UTC(2025, 0, 1, 12, 2, 30);
    const figures = await rejection(router.windowFigures!(route, 'shop-3-0-0-cccc', from, from + 120_000));
    assert.ok(figures instanceof PlatformError, String(figures));
    assert.equal(figures.type, 'InvalidSplitError');
    assert.equal(figures.permanent, false);

    const activities = (r: TrafficRouter) =>
      createTrafficActivities({
        platforms: createPlatformRegistry({ 'aws-ecs': () => ({ router: r }) as unknown as PlatformParts }),
      });
    const traffic = activities(router);
    const refused = await rejection(traffic.setTraffic(route, { [OLD]: 90, [NEW]: 20 }));
    assert.ok(refused instanceof ApplicationFailure, String(refused));
    assert.equal(refused.type, 'InvalidTrafficSplit');
    assert.equal(refused.nonRetryable, true);
    assert.match(refused.message, /must sum to 100, got 110/);

    const release = { releaseId: 'shop-3-0-0-cccc', host: 'x', port: 1 } as Parameters<typeof traffic.addToRoute>[1];
    const stranger = await rejection(traffic.addToRoute(route, release));
    assert.ok(stranger instanceof ApplicationFailure, String(stranger));
    assert.equal(stranger.type, 'InvalidTrafficSplit');
    assert.equal(stranger.nonRetryable, true);
    assert.match(stranger.message, /"shop-3-0-0-cccc" is not a member of route shop\/prod/);

    // Any other error stays as it is (retryable), even when its words look like a split's ("consumed", "summary").
    const transient = new Error('the request consumed its quota; see the summary');
    const flaky = {
      ...router,
      setWeights: () => Promise.reject(transient),
      addMember: () => Promise.reject(transient),
    };
    assert.equal(await rejection(activities(flaky).setTraffic(route, { [OLD]: 100 })), transient);
    assert.equal(await rejection(activities(flaky).addToRoute(route, release)), transient);
  });
});
