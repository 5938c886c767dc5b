import assert from 'node:assert/strict';
import { DescribeScalableTargetsCommand } from '@aws-sdk/client-application-auto-scaling';
import {
  AccessDeniedException,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ListTaskDefinitionsCommand,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  RunTaskCommand,
  StopTaskCommand,
  type LogConfiguration,
  type Service,
  type Task,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { DescribeRulesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { clearAwsCaches } from '../../../src/platforms/aws-ecs/listener-addresses';
import { awsClients, TAG } from '../../../src/platforms/aws-ecs/context';
import { awsDoctorChecks } from '../../../src/platforms/aws-ecs/doctor';
import {
  awslogsStream,
  createEcsCommandRunner,
  startedByFor,
  type LogEventsReader,
} from '../../../src/platforms/aws-ecs/ecs-commands';
import { TASK_DEFINITION_TAG } from '../../../src/platforms/aws-ecs/ecs-releases';
import {
  COMMAND_TAIL_CHARS,
  PlatformError,
  type CommandProgress,
  type ReleaseCommandRequest,
} from '../../../src/platforms/types';
import { ECS_ARN, fakeAwsContext, rejection, testSpec } from './fixture';

const testClients = awsClients('us-east-1');
const ecs = mockClient(testClients.ecs);
const elb = mockClient(testClients.elb);
const sts = mockClient(testClients.sts);
// runbook doctor's autoscaling line: no scalable targets here.
const aas = mockClient(testClients.autoscaling);

const spec = testSpec({ rds: undefined });
const TD_OLD = `${ECS_ARN}:task-definition/shop:7`;
const TD_NEW = `${ECS_ARN}:task-definition/shop:8`;
const TASK = `${ECS_ARN}:task/prod/0f3c2a9b8d7e4f6a`;
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

const fakeContext = () => fakeAwsContext({ spec, sleepAdvancesClock: true, startMs: T0 });

/** The live colour's revision: awslogs to /ecs/shop with prefix shop, a task role, an execution role and a secret. */
const BASE_TD = {
  taskDefinitionArn: TD_OLD,
  family: 'shop',
  revision: 7,
  taskRoleArn: 'arn:aws:iam::123456789012:role/shop-task',
  executionRoleArn: 'arn:aws:iam::123456789012:role/shop-exec',
  networkMode: 'awsvpc',
  containerDefinitions: [
    {
      name: 'app',
      image: 'registry.example/shop:1.0.0',
      secrets: [{ name: 'DATABASE_URL', valueFrom: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db' }],
      logConfiguration: {
        logDriver: 'awslogs',
        options: { 'awslogs-group': '/ecs/shop', 'awslogs-stream-prefix': 'shop', 'awslogs-region': 'us-east-1' },
      },
    },
  ],
} satisfies TaskDefinition;

const network = (subnet: string) => ({
  awsvpcConfiguration: { subnets: [subnet], securityGroups: ['sg-0123'], assignPublicIp: 'DISABLED' as const },
});

function service(colour: 'blue' | 'green', opts: { td: string; desired: number; tags?: Record<string, string> }) {
  return {
    serviceName: `shop-${colour}`,
    serviceArn: `${ECS_ARN}:service/prod/shop-${colour}`,
    status: 'ACTIVE',
    desiredCount: opts.desired,
    runningCount: opts.desired,
    taskDefinition: opts.td,
    deployments: [],
    events: [],
    networkConfiguration: network(colour === 'blue' ? 'subnet-blue' : 'subnet-green'),
    capacityProviderStrategy: [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }],
    platformVersion: '1.4.0',
    tags: Object.entries(opts.tags ?? {}).map(([key, value]) => ({ key, value })),
  } satisfies Service;
}

const blueLive = service('blue', { td: TD_OLD, desired: 2, tags: { [TAG.release]: 'shop-1-0-0-aaaa' } });
const greenIdle = service('green', { td: TD_OLD, desired: 0 });

const request: ReleaseCommandRequest = {
  service: 'shop',
  environment: 'prod',
  version: '2.0.0',
  releaseId: 'shop-2-0-0-bbbb',
  purpose: 'migrate',
  runId: 'deploy-shop-prod-7f3a-migrate',
  command: ['npm', 'run', 'db:migrate'],
  timeoutMs: 600_000,
  aws: spec,
};

function task(status: string, extra: Partial<Task> = {}): Task {
  return {
    taskArn: TASK,
    taskDefinitionArn: TD_NEW,
    lastStatus: status,
    desiredStatus: status === 'STOPPED' ? 'STOPPED' : 'RUNNING',
    createdAt: new Date(T0),
    startedBy: request.runId,
    ...extra,
  };
}

const exited = (exitCode: number) =>
  task('STOPPED', {
    stoppedReason: 'Essential container in task exited',
    stopCode: 'EssentialContainerExited',
    containers: [{ name: 'app', lastStatus: 'STOPPED', exitCode }],
  });

/** A world where nothing ran yet: blue live (100/0), the revision is registered as shop:8, RunTask starts TASK. */
function mockFreshRun(stopped: Task = exited(0)) {
  ecs.on(ListTasksCommand).resolves({ taskArns: [] });
  ecs.on(DescribeServicesCommand).resolves({ services: [blueLive, greenIdle], failures: [] });
  elb.on(DescribeRulesCommand).resolves({
    Rules: [
      {
        RuleArn: spec.listenerRule,
        Actions: [
          {
            Type: 'forward',
            ForwardConfig: {
              TargetGroups: [
                { TargetGroupArn: spec.targetGroups.blue, Weight: 100 },
                { TargetGroupArn: spec.targetGroups.green, Weight: 0 },
              ],
            },
          },
        ],
      },
    ],
  });
  ecs.on(ListTaskDefinitionsCommand).resolves({ taskDefinitionArns: [TD_OLD] });
  ecs.on(DescribeTaskDefinitionCommand).resolves({ taskDefinition: BASE_TD, tags: [] });
  ecs.on(RegisterTaskDefinitionCommand).callsFake((input: TaskDefinition) => ({
    taskDefinition: { ...input, taskDefinitionArn: TD_NEW, revision: 8 },
  }));
  ecs.on(RunTaskCommand).resolves({ tasks: [task('PROVISIONING')], failures: [] });
  ecs
    .on(DescribeTasksCommand)
    .resolvesOnce({ tasks: [task('RUNNING')] })
    .resolves({ tasks: [stopped] });
  ecs.on(StopTaskCommand).resolves({});
}

describe('ECS release command runner (aws-sdk-client-mock)', () => {
  beforeEach(() => {
    ecs.reset();
    elb.reset();
    sts.reset();
    aas.reset();
    aas.on(DescribeScalableTargetsCommand).resolves({ ScalableTargets: [] });
    clearAwsCaches();
  });

  it("runs the command as a one-off task of the version's revision, placed like the idle colour's service", async () => {
    const f = fakeContext();
    mockFreshRun();
    const progress: CommandProgress[] = [];

    const result = await createEcsCommandRunner(f.ctx).run(request, (p) => progress.push(p));

    const registered = ecs.commandCalls(RegisterTaskDefinitionCommand)[0]?.args[0].input;
    assert.equal(registered?.containerDefinitions?.[0]?.image, 'registry.example/shop:2.0.0');
    assert.deepEqual(
      registered?.tags?.find((t) => t.key === TAG.release),
      { key: TAG.release, value: request.releaseId },
      'tagged with the release, so that start() adopts the revision instead of registering another',
    );
    const runs = ecs.commandCalls(RunTaskCommand).map((c) => c.args[0].input);
    assert.deepEqual(runs, [
      {
        cluster: 'prod',
        taskDefinition: TD_NEW,
        count: 1,
        startedBy: request.runId,
        clientToken: request.runId,
        // Only the command: the task role, execution role and DATABASE_URL secret are the revision's own.
        overrides: { containerOverrides: [{ name: 'app', command: ['npm', 'run', 'db:migrate'] }] },
        capacityProviderStrategy: [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }],
        networkConfiguration: network('subnet-green'),
        platformVersion: '1.4.0',
      },
    ]);
    assert.deepEqual(
      ecs.commandCalls(ListTasksCommand).map((c) => c.args[0].input),
      [
        { cluster: 'prod', startedBy: request.runId, desiredStatus: 'RUNNING' },
        { cluster: 'prod', startedBy: request.runId, desiredStatus: 'STOPPED' },
      ],
    );
    assert.deepEqual(f.sleeps, [5_000, 5_000]);
    assert.deepEqual(
      progress.map((p) => `${p.phase} ${p.detail ?? ''}`),
      [
        `starting tasks started by ${request.runId}`,
        'running task 0f3c2a9b8d7e4f6a: PROVISIONING',
        'running task 0f3c2a9b8d7e4f6a: RUNNING',
        'running task 0f3c2a9b8d7e4f6a: STOPPED',
        'done task 0f3c2a9b8d7e4f6a: exit code 0',
      ],
    );
    assert.deepEqual(result, {
      runId: request.runId,
      exitCode: 0,
      timedOut: false,
      stoppedReason: 'Essential container in task exited',
      tail: '',
      logLocation:
        'CloudWatch Logs group /ecs/shop, stream shop/app/0f3c2a9b8d7e4f6a (us-east-1); not read: the worker has no ' +
        'CloudWatch Logs client',
      startedAtMs: T0,
      endedAtMs: T0 + 10_000,
      adopted: false,
    });
  });

  it('after start(), runs the revision the colour is tagged with, placed like that colour', async () => {
    const f = fakeContext();
    mockFreshRun();
    const tags = { [TAG.release]: request.releaseId, [TAG.version]: '2.0.0', [TASK_DEFINITION_TAG]: TD_NEW };
    const greenCandidate = service('green', { td: TD_NEW, desired: 2, tags });
    // The tagged colour is the one: the traffic (split, during the shift) is not asked which colour is idle.
    ecs.on(DescribeServicesCommand).resolves({ services: [blueLive, greenCandidate], failures: [] });
    ecs.on(DescribeTaskDefinitionCommand, { taskDefinition: TD_NEW }).resolves({
      taskDefinition: { ...BASE_TD, taskDefinitionArn: TD_NEW },
    });

    const result = await createEcsCommandRunner(f.ctx).run({ ...request, purpose: 'smoke', runId: 'smoke-1' });

    assert.equal(result.exitCode, 0);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.equal(ecs.commandCalls(ListTaskDefinitionsCommand).length, 0);
    assert.equal(elb.commandCalls(DescribeRulesCommand).length, 0);
    const run = ecs.commandCalls(RunTaskCommand)[0]?.args[0].input;
    assert.equal(run?.taskDefinition, TD_NEW);
    assert.equal(run?.startedBy, 'smoke-1');
  });

  it('a retried run adopts the task started by its runId (ListTasks) instead of starting a second one', async () => {
    const f = fakeContext();
    mockFreshRun(exited(0));
    ecs.on(ListTasksCommand, { desiredStatus: 'RUNNING' }).resolves({ taskArns: [TASK] });
    ecs.on(DescribeTaskDefinitionCommand).resolves({ taskDefinition: { ...BASE_TD, taskDefinitionArn: TD_NEW } });
    ecs.on(DescribeTasksCommand).resolves({ tasks: [task('RUNNING')] });
    ecs
      .on(DescribeTasksCommand)
      .resolvesOnce({ tasks: [task('RUNNING')] })
      .resolves({ tasks: [exited(0)] });

    const result = await createEcsCommandRunner(f.ctx).run(request);

    assert.equal(result.adopted, true);
    assert.equal(result.exitCode, 0);
    assert.equal(ecs.commandCalls(RunTaskCommand).length, 0);
    assert.equal(ecs.commandCalls(RegisterTaskDefinitionCommand).length, 0);
    assert.equal(ecs.commandCalls(DescribeServicesCommand).length, 0);
    assert.deepEqual(
      ecs.commandCalls(DescribeTaskDefinitionCommand).map((c) => c.args[0].input),
      [{ taskDefinition: TD_NEW }],
      "the adopted task's own revision, for its log configuration",
    );

    // A task that has stopped already (the worker died while it ran) is adopted with its result, without waiting.
    ecs.resetHistory();
    ecs.on(ListTasksCommand, { desiredStatus: 'RUNNING' }).resolves({ taskArns: [] });
    ecs.on(ListTasksCommand, { desiredStatus: 'STOPPED' }).resolves({ taskArns: [TASK] });
    ecs.on(DescribeTasksCommand).resolves({ tasks: [exited(0)] });
    const again = await createEcsCommandRunner(f.ctx).run(request);
    assert.equal(again.adopted, true);
    assert.equal(ecs.commandCalls(RunTaskCommand).length, 0);
  });

  it('returns a non-zero exit code as it is (the activity decides), with ECS stoppedReason', async () => {
    const f = fakeContext();
    mockFreshRun(exited(3));
    const result = await createEcsCommandRunner(f.ctx).run(request);
    assert.equal(result.exitCode, 3);
    assert.equal(result.timedOut, false);
    assert.equal(result.stoppedReason, 'Essential container in task exited');
  });

  it('a task ECS stopped before the command ran (CannotPullContainerError) has no exit code, and says why', async () => {
    const f = fakeContext();
    const pull = 'CannotPullContainerError: pull image manifest has been retried 5 time(s): not found';
    mockFreshRun(
      task('STOPPED', {
        stopCode: 'TaskFailedToStart',
        stoppedReason: pull,
        containers: [{ name: 'app', lastStatus: 'STOPPED', reason: 'CannotPullContainerError: not found' }],
      }),
    );
    const result = await createEcsCommandRunner(f.ctx).run(request);
    assert.equal(result.exitCode, null);
    assert.equal(result.timedOut, false);
    assert.equal(result.stoppedReason, `${pull}; app: CannotPullContainerError: not found`);
  });

  it('stops the task past timeoutMs (StopTask with the reason): timedOut, no exit code', async () => {
    const f = fakeContext();
    mockFreshRun();
    const stopping = task('RUNNING', { desiredStatus: 'STOPPED', stoppedReason: 'runbook: timed out after 12s' });
    const stopped = task('STOPPED', {
      stoppedReason: 'runbook: timed out after 12s',
      stopCode: 'UserInitiated',
      containers: [{ name: 'app', exitCode: 143 }],
    });
    ecs
      .on(DescribeTasksCommand)
      .resolvesOnce({ tasks: [task('RUNNING')] })
      .resolvesOnce({ tasks: [task('RUNNING')] })
      .resolvesOnce({ tasks: [task('RUNNING')] })
      .resolvesOnce({ tasks: [stopping] })
      .resolves({ tasks: [stopped] });
    const progress: CommandProgress[] = [];

    const result = await createEcsCommandRunner(f.ctx).run({ ...request, timeoutMs: 12_000 }, (p) => progress.push(p));

    assert.deepEqual(
      ecs.commandCalls(StopTaskCommand).map((c) => c.args[0].input),
      [{ cluster: 'prod', task: TASK, reason: 'runbook: timed out after 12s' }],
    );
    assert.equal(result.timedOut, true);
    assert.equal(result.exitCode, null, 'the exit code of a stopped command (143) is not its own');
    assert.equal(result.stoppedReason, 'runbook: timed out after 12s');
    assert.ok(progress.some((p) => p.phase === 'stopping'));
  });

  it('waits out DescribeTasks not knowing a new task yet (MISSING), and fails once ECS keeps not knowing it', async () => {
    const f = fakeContext();
    mockFreshRun();
    const missing = { tasks: [], failures: [{ arn: TASK, reason: 'MISSING' }] };
    ecs
      .on(DescribeTasksCommand)
      .resolvesOnce(missing)
      .resolvesOnce(missing)
      .resolves({ tasks: [exited(0)] });
    assert.equal((await createEcsCommandRunner(f.ctx).run(request)).exitCode, 0);

    ecs.on(DescribeTasksCommand).resolves(missing);
    const gone = await rejection(createEcsCommandRunner(f.ctx).run(request));
    assert.ok(gone instanceof PlatformError);
    assert.equal(gone.type, 'ReleaseCommandFailed');
    assert.match(gone.message, /is not known to ECS any more/);
  });

  it('an aborted run sends StopTask and rethrows the abort', async () => {
    const f = fakeContext();
    mockFreshRun();
    ecs.on(DescribeTasksCommand).resolves({ tasks: [task('RUNNING')] });
    const controller = new AbortController();
    const cancelled = new Error('CANCELLED');
    let polls = 0;
    const err = await rejection(
      createEcsCommandRunner(f.ctx).run(
        request,
        () => {
          if (++polls === 3) controller.abort(cancelled);
        },
        controller.signal,
      ),
    );
    assert.equal(err, cancelled);
    assert.deepEqual(
      ecs.commandCalls(StopTaskCommand).map((c) => c.args[0].input.reason),
      ['runbook: the step was cancelled'],
    );
  });

  it("tails the container's awslogs stream (last events, scrubbed before it is cut to COMMAND_TAIL_CHARS)", async () => {
    const f = fakeContext();
    mockFreshRun(exited(1));
    const asked: unknown[] = [];
    const logs: LogEventsReader = {
      async getLogEvents(region, input) {
        asked.push({ region, ...input });
        return {
          events: [
            ...Array.from({ length: 120 }, (_, i) => ({ message: `migrating step ${i} ${'.'.repeat(40)}\n` })),
            { message: 'connecting to postgres://shop:hunter2-very-secret@db.internal:5432/shop' },
            { message: 'error: relation "orders" already exists' },
          ],
        };
      },
    };

    const result = await createEcsCommandRunner(f.ctx, { logs }).run(request);

    assert.deepEqual(asked, [
      {
        region: 'us-east-1',
        logGroupName: '/ecs/shop',
        logStreamName: 'shop/app/0f3c2a9b8d7e4f6a',
        startFromHead: false,
        limit: 500,
      },
    ]);
    assert.equal(result.tail.length, COMMAND_TAIL_CHARS);
    assert.ok(
      result.tail.endsWith('postgres://shop:***@db.internal:5432/shop\nerror: relation "orders" already exists'),
    );
    assert.ok(!result.tail.includes('hunter2'));
    assert.equal(result.logLocation, 'CloudWatch Logs group /ecs/shop, stream shop/app/0f3c2a9b8d7e4f6a (us-east-1)');

    // A stream that cannot be read leaves the tail empty and says why; the exit code still decides.
    const denied: LogEventsReader = {
      getLogEvents: () => Promise.reject(Object.assign(new Error('no'), { name: 'AccessDeniedException' })),
    };
    ecs.on(DescribeTasksCommand).resolves({ tasks: [exited(1)] });
    const unread = await createEcsCommandRunner(f.ctx, { logs: denied }).run(request);
    assert.equal(unread.exitCode, 1);
    assert.equal(unread.tail, '');
    assert.match(unread.logLocation, /not read: AccessDeniedException: grant the worker's role logs:GetLogEvents/);
  });

  it('names the log stream only where awslogs makes it known', () => {
    const td = (logConfiguration?: LogConfiguration): TaskDefinition => ({
      containerDefinitions: [{ name: 'app', ...(logConfiguration ? { logConfiguration } : {}) }],
    });
    assert.deepEqual(awslogsStream(BASE_TD, 'app', TASK), {
      group: '/ecs/shop',
      stream: 'shop/app/0f3c2a9b8d7e4f6a',
      region: 'us-east-1',
    });
    assert.deepEqual(awslogsStream(td(), 'app', TASK), {
      none: 'container app has no logConfiguration (its output is not kept)',
    });
    assert.deepEqual(awslogsStream(td({ logDriver: 'awsfirelens' }) as TaskDefinition, 'app', TASK), {
      none: 'container app logs through awsfirelens',
    });
    assert.match(
      (
        awslogsStream(
          td({ logDriver: 'awslogs', options: { 'awslogs-group': 'g' } }) as TaskDefinition,
          'app',
          TASK,
        ) as {
          none: string;
        }
      ).none,
      /without awslogs-stream-prefix/,
    );
  });

  it('makes AccessDenied on RunTask a non-retryable AwsAccessDenied naming ecs:RunTask; throttling is retried', async () => {
    const f = fakeContext();
    mockFreshRun();
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    ecs.on(ListTasksCommand).rejectsOnce(throttled);
    assert.equal(await rejection(createEcsCommandRunner(f.ctx).run(request)), throttled);

    ecs.on(ListTasksCommand).resolves({ taskArns: [] });
    ecs.on(RunTaskCommand).rejects(
      new AccessDeniedException({
        message: 'User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: ecs:RunTask',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const denied = await rejection(createEcsCommandRunner(f.ctx).run(request));
    assert.ok(denied instanceof PlatformError);
    assert.equal(denied.type, 'AwsAccessDenied');
    assert.equal(denied.permanent, true);
    assert.match(denied.message, /^ecs:RunTask on task definition .*shop:8 in cluster prod: AccessDeniedException/);
    assert.match(denied.message, /fix: grant the worker's IAM role ecs:RunTask/);
  });

  it('ECS placing no task: retryable for want of capacity, permanent otherwise', async () => {
    const f = fakeContext();
    mockFreshRun();
    ecs.on(RunTaskCommand).resolves({ tasks: [], failures: [{ reason: 'RESOURCE:MEMORY' }] });
    const capacity = await rejection(createEcsCommandRunner(f.ctx).run(request));
    assert.ok(capacity instanceof PlatformError);
    assert.equal(capacity.type, 'EcsRunTaskFailed');
    assert.equal(capacity.permanent, false);
    ecs.on(RunTaskCommand).resolves({ tasks: [], failures: [{ reason: 'ATTRIBUTE', detail: 'ecs.cpu-architecture' }] });
    const attribute = await rejection(createEcsCommandRunner(f.ctx).run(request));
    assert.equal((attribute as PlatformError).permanent, true);
    assert.match(attribute.message, /placed no task: ATTRIBUTE \(ecs.cpu-architecture\)/);
  });

  it('refuses what it cannot run: a worker folder, another database, an empty command (permanent)', async () => {
    const f = fakeAwsContext({
      spec: testSpec({
        rds: { instance: 'shop-db', database: 'shop', urlEnv: 'DB', drill: { securityGroups: [] }, pollIntervalMs: 1 },
      }),
    });
    const runner = createEcsCommandRunner(f.ctx);
    const refused: Array<[ReleaseCommandRequest, RegExp]> = [
      [{ ...request, workerCwd: '/srv/runbook' }, /not run by the ECS runner/],
      [{ ...request, database: { name: 'shop_drill_1' } }, /reaches the database its task definition names \(shop\)/],
      [{ ...request, command: [] }, /command of 2.0.0 is empty/],
    ];
    for (const [req, message] of refused) {
      const err = await rejection(runner.run(req));
      assert.ok(err instanceof PlatformError);
      assert.equal(err.type, 'ReleaseCommandFailed');
      assert.equal(err.permanent, true);
      assert.match(err.message, message);
    }
    assert.equal(ecs.calls().length, 0, 'refused before any AWS call');
    // The service's own database is the task definition's: accepted (and then run as usual).
    mockFreshRun();
    assert.equal((await runner.run({ ...request, database: { name: 'shop' } })).exitCode, 0);
  });

  it('doctor checks what the one-off tasks need of the live task definition, for a service with release commands', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:sts::123456789012:assumed-role/worker', Account: '1' });
    ecs.on(DescribeServicesCommand).resolves({ services: [blueLive, greenIdle], failures: [] });
    ecs.on(DescribeTaskDefinitionCommand).resolves({ taskDefinition: BASE_TD });
    const at = { service: 'shop', environment: 'prod' };
    const commandsCheck = async () =>
      (await awsDoctorChecks(spec, at, {}, { releaseCommands: true })).find((c) => c.check === 'release commands');

    assert.deepEqual(await commandsCheck(), {
      component: 'aws shop/prod',
      check: 'release commands',
      ok: true,
      detail:
        "one-off tasks of shop:7's family, task role arn:aws:iam::123456789012:role/shop-task, execution role " +
        'arn:aws:iam::123456789012:role/shop-exec; output in /ecs/shop (shop/app/<task id>)',
    });
    const { logConfiguration: _none, ...app } = BASE_TD.containerDefinitions[0]!;
    ecs.on(DescribeTaskDefinitionCommand).resolves({ taskDefinition: { ...BASE_TD, containerDefinitions: [app] } });
    const noLogs = await commandsCheck();
    assert.equal(noLogs?.ok, false);
    assert.match(noLogs?.detail ?? '', /^container app has no logConfiguration/);
    assert.match(noLogs?.fix ?? '', /awslogs log driver with awslogs-group and awslogs-stream-prefix/);
    const without = await awsDoctorChecks(spec, at, {});
    assert.ok(!without.some((c) => c.check === 'release commands'), 'not checked for a service without commands');
  });

  it('doctor checks the deployment controller, the circuit breaker and the long ARN format of both services (issue 13)', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:sts::123456789012:assumed-role/worker', Account: '1' });
    const breaker = { deploymentCircuitBreaker: { enable: true, rollback: true } };
    const ready = (s: Service): Service => ({
      ...s,
      deploymentController: { type: 'ECS' },
      deploymentConfiguration: breaker,
    });
    ecs.on(DescribeServicesCommand).resolves({ services: [ready(blueLive), ready(greenIdle)], failures: [] });
    const at = { service: 'shop', environment: 'prod' };
    const deployment = async () =>
      (await awsDoctorChecks(spec, at, {})).filter((c) => c.check.startsWith('ecs ') && c.check !== 'ecs services');
    assert.deepEqual(
      (await deployment()).map((c) => [c.check, c.ok, c.detail]),
      [
        ['ecs deployment controller', true, 'shop-blue, shop-green: ECS'],
        ['ecs circuit breaker', true, 'shop-blue, shop-green: enabled, with rollback'],
        ['ecs long arn format', true, 'shop-blue, shop-green: long ARN format (taggable)'],
      ],
    );

    ecs.on(DescribeServicesCommand).resolves({
      services: [
        { ...ready(blueLive), deploymentController: { type: 'CODE_DEPLOY' }, deploymentConfiguration: {} },
        {
          ...ready(greenIdle),
          serviceArn: `${ECS_ARN}:service/shop-green`,
          deploymentConfiguration: { deploymentCircuitBreaker: { enable: true, rollback: false } },
        },
      ],
      failures: [],
    });
    const [controller, circuit, arn] = await deployment();
    assert.equal(controller?.ok, false);
    assert.match(controller?.detail ?? '', /^shop-blue: deployment controller CODE_DEPLOY: runbook rolls releases out/);
    assert.match(controller?.fix ?? '', /deploymentController ECS/);
    assert.equal(circuit?.ok, false);
    assert.match(
      circuit?.detail ?? '',
      /^shop-blue: circuit breaker off; shop-green: circuit breaker without rollback:/,
    );
    assert.match(circuit?.fix ?? '', /deploymentCircuitBreaker \{ enable: true, rollback: true \}/);
    assert.equal(arn?.ok, false);
    assert.match(
      arn?.detail ?? '',
      /^shop-green: old ARN format arn:aws:ecs:us-east-1:123456789012:service\/shop-green:/,
    );
    assert.match(arn?.fix ?? '', /serviceLongArnFormat/);
  });

  it('derives startedBy from the runId: as it is up to 36 characters, else shortened with a hash', () => {
    assert.equal(startedByFor('deploy-shop-prod-7f3a-migrate'), 'deploy-shop-prod-7f3a-migrate');
    const long = 'deploy-shop-production-2025-01-01t12-00-00-3f9c2a1b-migrate-status';
    const other = long.replace('status', 'statuz');
    assert.match(startedByFor(long), /^[a-zA-Z0-9_-]{1,36}$/);
    assert.ok(startedByFor(long).length >= 30);
    assert.ok(startedByFor(long).startsWith('deploy-shop-production-'));
    assert.notEqual(startedByFor(long), startedByFor(other));
  });
});
