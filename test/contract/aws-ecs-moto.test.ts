import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeServicesCommand, DescribeTaskDefinitionCommand, ECSClient } from '@aws-sdk/client-ecs';
import { DescribeListenersCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
  RestoreDBInstanceFromDBSnapshotCommand,
} from '@aws-sdk/client-rds';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { awsClients } from '../../src/platforms/aws-ecs/context';
import { arnSuffix } from '../../src/platforms/aws-ecs/elb-router';
import type { deployService } from '../../src/workflows';
import { siblingDatabaseUrl } from '../../src/platforms/single-host';
import { ensureDatabase } from '../../src/stack/postgres';
import { exportHistory, testStack, uniqueName, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';
import {
  ensureMoto,
  motoCredentials,
  motoDeploymentSeam,
  startMoto,
  type MotoServer,
  withMotoCredentials,
} from '../helpers/moto';
import { createMotoShop, type MotoShop } from './moto-shop';
import { startMotoTasks, type MotoTasks } from './moto-tasks';

/**
 * The aws-ecs platform end to end through the `runbook` CLI: the real workflows on the real dev server, a real
 * worker whose aws-ecs platform drives the real AWS SDK v3 clients over HTTP against a local moto_server.
 *
 * What moto cannot do, and how this test stands in for it:
 * - moto runs no tasks: ECS services report runningCount from MOTO_ECS_SERVICE_RUNNING and their one deployment
 *   never changes (the rollout is complete at once), and nothing answers HTTP at a load balancer's DNS name.
 *   startMotoTasks (moto-tasks.ts) plays both from moto's own state: each colour whose service has a desired count
 *   above 0 runs one local process of the sample app with its task definition's environment (so APP_VERSION is the
 *   release the colour's service runs), and one local HTTP server per listener answers as the load balancer would,
 *   from the listener's actions in moto (a fixed response, or a forward to a target group by weight, 503 when that
 *   colour runs no task). The worker reaches the listeners through them (AwsContext.resolveAddress), so the health
 *   and smoke checks are real HTTP requests to the colour the listener names, and the test asserts which colour and
 *   release answered each of them.
 * - moto runs no databases: RDS endpoints are mapped to the test stack's PostgreSQL, where the service's database
 *   lives; a restored instance (drill, rollback) is mapped to that same database, so the drill's integrity checks
 *   (pg_amcheck, manifest, schema) run for real on it, but no data is copied by moto. Snapshots are `available`
 *   at once. CloudWatch holds no load balancer metrics but what a deploy's test publishes into it with PutMetricData
 *   (publishLoadBalancerMetrics: each colour's share of the requests as the production listener's weights in moto
 *   have it at each publish, its target 5xx and UnHealthyHostCount, and the load balancer's RequestCount and
 *   HTTPCode_ELB_5XX_Count). moto computes no percentiles, so the latency half (TargetResponseTime p95) is in
 *   elb-router.unit.test.ts. The load balancer's own 5xx weighted by a colour's share, and an unhealthy target
 *   failing a window, are published here at 0 only (the stand-in's tasks answer, and it generates no 5xx of its
 *   own): making them non-zero would need a fourth deploy with a bake of its own, minutes of CI for what
 *   elb-router.unit.test.ts shows with exact figures ("counts the load balancer's 5xx weighted by the colour's share
 *   of its requests, minute by minute", "fails the window of a canary whose requests end in ELB 5xx though the
 *   targets answered no 5xx", "fails the window of a canary with an unhealthy target in it, whatever its figures").
 * - The judged-step test sets aws.metricsDelay to 0s (moto has the datapoints at once); the default 2m delay, read
 *   minutes after the step, is in elb-router.unit.test.ts ("reads no minute that began before the traffic step, and
 *   the minutes after it as they are published (issue 13 item 1)").
 * - moto keeps a service's deployment as created when the service is updated: motoDeploymentSeam
 *   (test/helpers/moto.ts; rds-swap-moto.test.ts uses it too) completes it as ECS reports a finished rollout; the
 *   production check reads ECS's own fields (ecs-releases.unit.test.ts: "does not take the old revision's deployment
 *   for the rollout of the new one").
 * - The shop (moto-shop.ts) is shaped as real ECS takes it: an awsvpc Fargate task definition, services with the
 *   default VPC's subnets and security group, ip target groups; moto does not refuse other shapes, so the first
 *   deploy checks that the new revision stays awsvpc.
 * Not shown in this test, and where other tests cover it (test/platforms/aws-ecs, and the other moto tests here):
 * - the listenerRule path (ModifyRule): on moto in elb-rule-moto.test.ts (weights read from the rule, maintenance
 *   on and off through ModifyRule with the weights in the rule's tag, the default rule refused), the deploy through
 *   a rule in elb-router.unit.test.ts; the secret and taskEnv holders: on moto in rds-swap-moto.test.ts, and
 *   rds.unit.test.ts; Aurora clusters: on moto in rds-aurora-moto.test.ts (snapshot, restore with its writer,
 *   drop), and rds.unit.test.ts;
 * - a restore whose copy differs from the live database: rds-restore-differs-moto.test.ts (moto and two PostgreSQL
 *   servers: the differences reported, no verified manifest from it, then a matching copy verifies the snapshot),
 *   rds.unit.test.ts ("a copy whose rows moved within the tolerance ...", "fails a counts manifest beyond the
 *   tolerance ...") and rds-on-postgres.test.ts (a real copy that differs from its verified manifest);
 * - moto's target health and the load balancer's own health checks (the stand-in routes by the listener's weights
 *   alone; a registered target is healthy in moto): ecs-releases.unit.test.ts waits for targets with
 *   aws-sdk-client-mock answers;
 * - snapshot retention: on moto in rds-retention-moto.test.ts (the service's oldest deleted, nothing else), and
 *   rds.unit.test.ts ("deletes the oldest of the service's snapshots beyond keep ...");
 * - stickiness, deregistration delay, listener protocols: elb-router.unit.test.ts and ecs-releases.unit.test.ts;
 * - redeployments in progress during the swap, promotion of a restored copy: rds.unit.test.ts;
 * - the manual-snapshot quota (moto has no DescribeAccountAttributes): rds.unit.test.ts ("doctor checks the cluster");
 * - the services' circuit breaker (moto's DescribeServices does not return it): ecs-commands.unit.test.ts ("doctor
 *   checks the deployment controller, the circuit breaker and the long ARN format ...").
 * The unit tests with aws-sdk-client-mock also cover rollouts in progress, the circuit breaker, throttling,
 * AccessDenied, snapshots being created and restores in progress.
 */
describe('aws-ecs platform against moto, through the runbook CLI', function () {
  this.timeout(240_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let shop: MotoShop;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let tasks: MotoTasks;
  let pgPort: number;
  let databaseUrl: string;
  let clients: { ecs: ECSClient; elb: ElasticLoadBalancingV2Client; rds: RDSClient; ssm: SSMClient };

  const runbook = (args: string[]) => runbookCli(args, env, 200_000);

  /**
   * With RUNBOOK_RECORD_AWS_HISTORIES=1, the histories of this test's workflows are written to
   * test/replay/histories/aws-ecs-worker-plan-<name>.json, which the replay test replays on every run: the aws-ecs
   * paths of the workflows are then guarded against non-deterministic changes like the single-host ones. (The
   * aws-ecs-<name>.json ones were recorded before the worker resolved plans; they stay, and keep replaying.)
   */
  async function record(workflowId: string, name: string): Promise<void> {
    if (process.env.RUNBOOK_RECORD_AWS_HISTORIES !== '1') return;
    const file = path.join(__dirname, '../replay/histories', `aws-ecs-worker-plan-${name}.json`);
    await exportHistory(testStack(), workflowId, file);
  }

  /**
   * Publishes into moto's CloudWatch, every 5 s until stopped, what the load balancer would for the split its
   * production listener has in moto at that moment: 60 requests each time, shared by the colours as the listener's
   * weights are (a colour at weight 0 gets none, and none is published for it, as ALB publishes no datapoint without
   * requests). Per colour's target group: RequestCount, HTTPCode_Target_5XX_Count (`errors5xx` of every 30 of its
   * requests) and UnHealthyHostCount (0: the stand-in's tasks are healthy); per load balancer: RequestCount and
   * HTTPCode_ELB_5XX_Count (0: the stand-in generates no 5xx of its own).
   */
  async function publishLoadBalancerMetrics(errors5xx: Record<'blue' | 'green', number>): Promise<{ stop(): void }> {
    const cloudwatch = new CloudWatchClient({ region, endpoint: moto.endpoint });
    const listener = await clients.elb.send(new DescribeListenersCommand({ ListenerArns: [shop.listener] }));
    const lb = { Name: 'LoadBalancer', Value: arnSuffix(listener.Listeners![0]!.LoadBalancerArn!, 'app/') };
    const publish = async () => {
      const Timestamp = new Date();
      const split = await weights();
      const total = (split.blue ?? 0) + (split.green ?? 0);
      const count = (MetricName: string, Dimensions: Array<{ Name: string; Value: string }>, Value: number) => ({
        MetricName,
        Dimensions,
        Value,
        Unit: 'Count' as const,
        Timestamp,
      });
      const perColour = (['blue', 'green'] as const).flatMap((colour) => {
        const requests = total > 0 ? Math.round((60 * (split[colour] ?? 0)) / total) : 0;
        if (requests === 0) return [];
        const Dimensions = [{ Name: 'TargetGroup', Value: arnSuffix(shop.targetGroups[colour], 'targetgroup/') }, lb];
        const errors = Math.round((requests * errors5xx[colour]) / 30);
        return [
          count('RequestCount', Dimensions, requests),
          ...(errors > 0 ? [count('HTTPCode_Target_5XX_Count', Dimensions, errors)] : []),
          count('UnHealthyHostCount', Dimensions, 0),
        ];
      });
      await cloudwatch.send(
        new PutMetricDataCommand({
          Namespace: 'AWS/ApplicationELB',
          MetricData: [...perColour, count('RequestCount', [lb], 60), count('HTTPCode_ELB_5XX_Count', [lb], 0)],
        }),
      );
    };
    await publish();
    const timer = setInterval(() => void publish().catch(() => {}), 5_000);
    return {
      stop() {
        clearInterval(timer);
        cloudwatch.destroy();
      },
    };
  }

  /** The production listener's split, by colour. */
  async function weights(): Promise<Record<string, number>> {
    const l = await clients.elb.send(new DescribeListenersCommand({ ListenerArns: [shop.listener] }));
    const groups = l.Listeners?.[0]?.DefaultActions?.[0]?.ForwardConfig?.TargetGroups ?? [];
    const colour = (arn?: string) => (arn === shop.targetGroups.blue ? 'blue' : 'green');
    return Object.fromEntries(groups.map((g) => [colour(g.TargetGroupArn), g.Weight ?? 0]));
  }

  async function service(colour: 'blue' | 'green') {
    const res = await clients.ecs.send(
      new DescribeServicesCommand({ cluster: shop.cluster, services: [shop.services[colour]], include: ['TAGS'] }),
    );
    const s = res.services![0]!;
    const td = await clients.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: s.taskDefinition! }));
    return {
      desiredCount: s.desiredCount,
      image: td.taskDefinition?.containerDefinitions?.find((c) => c.name === 'app')?.image,
      tags: Object.fromEntries((s.tags ?? []).map((t) => [t.key, t.value])),
      networkMode: td.taskDefinition?.networkMode,
      requiresCompatibilities: td.taskDefinition?.requiresCompatibilities,
      subnets: s.networkConfiguration?.awsvpcConfiguration?.subnets,
    };
  }

  /**
   * The health and smoke checks on the test listener since `fromMs` were answered by `colour` running `version`, and
   * nothing else answered (a check that met no running task, before the colour's task was up, is left out: it
   * answered nothing); the production listener's clients now meet `version` on `colour` too.
   */
  async function reached(fromMs: number, colour: 'blue' | 'green', version: string): Promise<void> {
    const answered = tasks.requests.filter(
      (r) => r.listenerPort === shop.ports.testListener && r.atMs >= fromMs && r.answeredBy !== 'no healthy target',
    );
    assert.ok(
      answered.some((r) => r.status === 200),
      `a check was answered on the test listener: ${JSON.stringify(answered)}`,
    );
    assert.deepEqual(
      [...new Set(answered.map((r) => `${r.answeredBy} ${r.version}`))],
      [`${colour} ${version}`],
      'the checks reached the new release only',
    );
    const live = await tasks.get(shop.ports.listener, '/health');
    assert.deepEqual([live.answeredBy, live.version, live.status], [colour, version, 200]);
  }

  before(async () => {
    await ensureMoto();
    moto = await startMoto({ env: { MOTO_ECS_SERVICE_RUNNING: '1' } });
    restoreEnv = withMotoCredentials();
    shop = await createMotoShop(moto.endpoint, region);
    // The rollout completes when the stand-in runs the service's task (it starts once tasks below is up).
    motoDeploymentSeam(awsClients(region, moto.endpoint).ecs, (...service) => tasks?.settled(...service) ?? true);
    const config = { region, endpoint: moto.endpoint };
    clients = {
      ecs: new ECSClient(config),
      elb: new ElasticLoadBalancingV2Client(config),
      rds: new RDSClient(config),
      ssm: new SSMClient(config),
    };

    const stack = testStack();
    const database = uniqueName('shopaws').replace(/-/g, '_');
    await ensureDatabase(stack.settings, database);
    databaseUrl = siblingDatabaseUrl(stack.workerConfig(taskQueue).DATABASE_URL, database);

    // Each colour's ECS task is a process of the sample app (moto runs none), behind a stand-in load balancer.
    tasks = await startMotoTasks({
      endpoint: moto.endpoint,
      region,
      shop,
      appDir: path.join(__dirname, '../../examples/shop/releases/v1'),
      env: { DATABASE_URL: databaseUrl },
      listeners: { [shop.ports.listener]: shop.listener, [shop.ports.testListener]: shop.testListener },
    });
    pgPort = Number(new URL(databaseUrl).port);

    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-aws-moto-'));
    const configFile = path.join(dir, 'runbook.yaml');
    writeFileSync(
      configFile,
      stringify({
        version: 1,
        services: {
          shop: {
            platform: 'aws-ecs',
            aws: {
              region,
              endpoint: moto.endpoint,
              cluster: shop.cluster,
              services: shop.services,
              container: 'app',
              image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{version}',
              env: { APP_VERSION: '{version}' },
              targetGroups: shop.targetGroups,
              listener: shop.listener,
              testListener: shop.testListener,
              drain: '1s',
              rolloutTimeout: '1m',
              pollInterval: '500ms',
              rds: {
                instance: shop.instance,
                endpoint: { ssmParameter: shop.endpointParameter },
                drill: {
                  subnetGroup: shop.subnetGroup,
                  securityGroups: [shop.securityGroup],
                  instanceClass: 'db.t4g.micro',
                },
                pollInterval: '1s',
              },
            },
            health: {
              liveness: { path: '/health', expectStatus: 200 },
              readiness: { path: '/health/ready', expectStatus: 200 },
              timeout: '2s',
              deadline: '20s',
            },
            smoke: [
              { name: 'list items', method: 'GET', path: '/api/items', expectStatus: 200, bodyMatches: '"items"' },
            ],
            database: {
              name: database,
              urlEnv: 'SHOP_AWS_DATABASE_URL',
              migrations: path.join(__dirname, '../../examples/shop/migrations'),
            },
            traffic: { steps: [{ weight: 50 }, { weight: 100 }] },
            analysis: { max5xxRate: '2%', maxP95LatencyMs: 500, minRequests: 20 },
            approvals: { gates: [], approvers: ['alice', 'bob'], fourEyes: true, timeout: '2m', onTimeout: 'abort' },
            rollback: { approvals: { gates: [] }, dbRestoreApprovers: ['alice'] },
            drill: { rtoTarget: '5m' },
            // A team's choice for this environment: unsigned CLI requests and decisions count, as unverified:<name>.
            environments: { moto: { signing: { unsigned: 'accept-unverified' } } },
          },
        },
      }),
    );
    env = {
      ...motoCredentials,
      RUNBOOK_CONFIG: configFile,
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      RUNBOOK_USER: 'dave',
    };
  });

  // After the before hook above, so that the worker starts once moto, the app and the database are up (it
  // reaches them at their local addresses); its task queue is known from the start.
  const { taskQueue } = useWorker('aws-moto', () => ({
    // The worker trusts the runbook.yaml the CLI uses: the plans come from it.
    runbookConfig: path.join(dir, 'runbook.yaml'),
    env: { ...process.env, SHOP_AWS_DATABASE_URL: databaseUrl },
    resolveAwsAddress: (host, port) =>
      host.endsWith('.elb.amazonaws.com')
        ? tasks.addressOf(port)
        : host.endsWith('.rds.amazonaws.com')
          ? { host: '127.0.0.1', port: pgPort }
          : { host, port },
  }));

  after(async () => {
    await tasks?.stop();
    for (const c of Object.values(clients ?? {})) c.destroy();
    await moto?.stop();
    restoreEnv?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let v2Snapshot: string;

  /** Waits (up to 10 s: the stand-in polls ECS every 250 ms) until `done` holds. */
  async function waitFor(done: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 40 && !done(); i++) await new Promise((r) => setTimeout(r, 250));
    assert.ok(done(), `${what}: ${JSON.stringify(tasks.running())}`);
  }

  it('deploy: the first release goes to the idle colour with a new task definition; snapshot and migrations first', async () => {
    const preview = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v1', '--dry-run']);
    assert.equal(preview.code, 0, `${preview.stdout}\n${preview.stderr}`);
    assert.match(
      preview.stdout,
      new RegExp(`\\n  platform +aws-ecs: region ${region} \\(endpoint ${moto.endpoint}\\), cluster `),
    );
    assert.match(
      preview.stdout,
      /\n {2}database +\S+ \(URL from the worker's SHOP_AWS_DATABASE_URL\) on RDS instance /,
    );
    assert.match(preview.stdout, /has the same plan: the worker runs what you see/);
    const fromMs = Date.now();
    const r = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v1', '--wait']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await reached(fromMs, 'green', 'v1');
    const green = await service('green');
    assert.equal(green.image, '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1');
    assert.equal(green.tags['runbook:version'], 'v1');
    // The shape real ECS takes with ip target groups: the new revision stays awsvpc on Fargate, the service keeps
    // its awsvpc network configuration.
    assert.deepEqual(
      [green.networkMode, green.requiresCompatibilities, green.subnets],
      ['awsvpc', ['FARGATE'], shop.subnets],
    );
    assert.deepEqual(await weights(), { blue: 0, green: 100 });

    const snapshots = await clients.rds.send(new DescribeDBSnapshotsCommand({ DBInstanceIdentifier: shop.instance }));
    const ours = (snapshots.DBSnapshots ?? []).filter((s) =>
      s.DBSnapshotIdentifier?.startsWith('shop-moto-pre-migrate'),
    );
    assert.equal(ours.length, 1, JSON.stringify(snapshots.DBSnapshots?.map((s) => s.DBSnapshotIdentifier)));
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query<{ name: string }>('SELECT name FROM pgmigrations ORDER BY id');
      assert.deepEqual(
        rows.map((x) => x.name),
        ['1700000000000_create-items', '1700000100000_add-items-price-cents'],
      );
    } finally {
      await db.end();
    }
  });

  it('deploy: the next release goes to the other colour, traffic 50% then 100%, the old colour is scaled to 0', async () => {
    const fromMs = Date.now();
    const r = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v2', '--wait', '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await reached(fromMs, 'blue', 'v2');
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      workflowId: string;
      outcome: string;
      snapshotId?: string;
    };
    assert.equal(result.outcome, 'succeeded');
    await record(result.workflowId, 'deploy-canary');
    v2Snapshot = result.snapshotId!;
    assert.ok(v2Snapshot);
    const blue = await service('blue');
    assert.equal(blue.image, '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2');
    assert.deepEqual(await weights(), { blue: 100, green: 0 });
    assert.equal((await service('green')).desiredCount, 0);
    await waitFor(() => JSON.stringify(tasks.running()) === JSON.stringify({ blue: 'v2' }), 'green has no task');
  });

  it('rollback with a database restore: approved by another person, restored to a new instance, endpoint swapped, old instance kept', async () => {
    const started = await runbook([
      'rollback',
      'shop',
      '--env',
      'moto',
      '--restore-db',
      v2Snapshot,
      '--reason',
      'bad v2',
    ]);
    assert.equal(started.code, 0, `${started.stdout}\n${started.stderr}`);
    const id = /started (\S+):/.exec(started.stdout)?.[1];
    assert.ok(id, started.stdout);
    let approved = { code: -1, stdout: '', stderr: '' };
    for (let i = 0; i < 40 && approved.code !== 0; i++) {
      approved = await runbook(['approve', id, '--as', 'alice', '--gate', 'restore-database']);
      if (approved.code !== 0) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(approved.code, 0, `${approved.stdout}\n${approved.stderr}`);
    const watched = await runbook(['watch', id]);
    assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
    await record(id, 'rollback-db-restore');
    assert.match(watched.stdout, /\[maintenance\] maintenance: the load balancer answers 503/);
    assert.match(
      watched.stdout,
      /\[restore\] restoring shop-moto-pre-migrate-\S+ into RDS instance \S+-restore-\S+ \(RestoreDBInstanceFromDBSnapshot\)/,
    );
    assert.match(
      watched.stdout,
      /swapped: SSM parameter \/shop\/moto\/db-host points at \S+-restore-\S+, the services were redeployed; shop-db is kept/,
    );
    assert.deepEqual(await weights(), { blue: 0, green: 100 });
    assert.equal((await service('green')).image, '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1');
    const live = await tasks.get(shop.ports.listener, '/health');
    assert.deepEqual([live.answeredBy, live.version, live.status], ['green', 'v1', 200]);
    const maintenance = tasks.requests.filter((q) => q.answeredBy === 'fixed-response');
    assert.deepEqual(maintenance, [], 'no check met the maintenance page');

    const instances = (await clients.rds.send(new DescribeDBInstancesCommand({}))).DBInstances ?? [];
    const ids = instances.map((i) => i.DBInstanceIdentifier);
    assert.ok(ids.includes(shop.instance), 'the replaced instance is never deleted');
    const restored = instances.find((i) => i.DBInstanceIdentifier?.includes('-restore-'));
    assert.ok(restored, `a restored instance: ${ids.join(', ')}`);
    const parameter = await clients.ssm.send(new GetParameterCommand({ Name: shop.endpointParameter }));
    assert.equal(parameter.Parameter?.Value, restored.Endpoint?.Address);
  });

  it('rollback (application only): back to the previous release on the other colour in one switch', async () => {
    const fromMs = Date.now();
    const r = await runbook(['rollback', 'shop', '--env', 'moto', '--wait']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /plan: shop\/moto from v1 to v2; database: untouched/);
    assert.deepEqual(await weights(), { blue: 100, green: 0 });
    assert.equal((await service('blue')).image, '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2');
    assert.equal((await service('green')).desiredCount, 0);
    await reached(fromMs, 'blue', 'v2');
  });

  it('drill: restores the newest snapshot into a drill instance polled from the workflow, checks it, deletes it and a leftover', async () => {
    const snapshots = (await clients.rds.send(new DescribeDBSnapshotsCommand({}))).DBSnapshots ?? [];
    const snapshot = snapshots.find((s) => s.DBSnapshotIdentifier === v2Snapshot)!;
    // A drill instance left by an earlier drill whose worker crashed (its workflow is gone).
    await clients.rds.send(
      new RestoreDBInstanceFromDBSnapshotCommand({
        DBInstanceIdentifier: 'shop-drill-leftover',
        DBSnapshotIdentifier: snapshot.DBSnapshotIdentifier,
        DBSubnetGroupName: shop.subnetGroup,
        Tags: [
          { Key: 'runbook:service', Value: 'shop' },
          { Key: 'runbook:environment', Value: 'moto' },
          { Key: 'runbook:kind', Value: 'drill' },
          { Key: 'runbook:source-instance', Value: shop.instance },
          { Key: 'runbook:workflow', Value: 'drill-shop-moto-crashed-long-ago' },
        ],
      }),
    );
    const r = await runbook(['drill', 'shop', '--env', 'moto', '--wait']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await record(/started (\S+):/.exec(r.stdout)![1]!, 'drill-passed');
    assert.match(r.stdout, /PASSED: restored shop-moto-pre-restore-\S+ \(\S+ old\) and the copy was ready in/);
    assert.match(
      r.stdout,
      /\[restore\] restoring \S+ into RDS instance \S+-drill-[0-9a-f]{8} \(RestoreDBInstanceFromDBSnapshot\)/,
    );
    assert.match(r.stdout, /pg_amcheck: no corruption/);
    assert.match(r.stdout, /integrity: amcheck ok, manifest ok \(2 tables, 2 rows\), schema ok/);
    const left = ((await clients.rds.send(new DescribeDBInstancesCommand({}))).DBInstances ?? []).map(
      (i) => i.DBInstanceIdentifier,
    );
    assert.ok(!left.some((i) => i?.includes('drill')), `no drill instance left: ${left.join(', ')}`);
  });

  it('doctor checks the AWS credentials and every resource the aws-ecs service names', async () => {
    const r = await runbook(['doctor', '--json']);
    const report = JSON.parse(r.stdout) as {
      checks: Array<{ component: string; check: string; ok: boolean; detail: string }>;
    };
    const aws = report.checks.filter((c) => c.component === 'aws shop/moto');
    assert.deepEqual(
      aws.map((c) => c.check),
      [
        'credentials',
        'ecs services',
        'ecs deployment controller',
        'ecs circuit breaker',
        'ecs long arn format',
        'autoscaling',
        'target groups',
        'traffic',
        'test listener',
        'rds instance',
        'rds snapshot quota',
        'database url',
      ],
    );
    // The URL lives in the worker's env; moto does not implement rds:DescribeAccountAttributes (the quota check is
    // covered by rds.unit.test.ts, "doctor checks the cluster ..."), and DescribeServices does not return the
    // circuit breaker the services were created with (ecs-commands.unit.test.ts, "doctor checks the deployment
    // controller, the circuit breaker and the long ARN format ...").
    const unanswered = ['database url', 'rds snapshot quota', 'ecs circuit breaker'];
    const failed = aws.filter((c) => !c.ok && !unanswered.includes(c.check));
    assert.deepEqual(failed, []);
    assert.match(aws[0]!.detail, /account 123456789012/);
  });

  it('deploy: a baked step judged on its own minutes of CloudWatch datapoints published into moto, baked until they are published', async function () {
    this.timeout(300_000);
    // The step at 50% bakes 1m, plus the metrics lag (metricsDelay 0s + the minute in progress); both colours'
    // RequestCount is published into moto as the load balancer would, every 5 s, for the whole deploy.
    const file = path.join(dir, 'runbook.yaml');
    const config = parse(readFileSync(file, 'utf8')) as { services: { shop: Record<string, unknown> } };
    const shopConfig = config.services.shop as {
      aws: Record<string, unknown>;
      traffic: unknown;
      analysis: Record<string, unknown>;
    };
    shopConfig.aws.metricsDelay = '0s';
    shopConfig.traffic = { steps: [{ weight: 50, bake: '1m' }, { weight: 100 }] };
    shopConfig.analysis = { ...shopConfig.analysis, onInconclusive: 'fail' };
    writeFileSync(file, stringify(config));

    const publisher = await publishLoadBalancerMetrics({ blue: 0, green: 0 });
    try {
      const r = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v3', '--wait', '--json']);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      const { workflowId } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { workflowId: string };
      const result = await testStack().client.workflow.getHandle<typeof deployService>(workflowId).result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      const step = result.state.steps?.[0];
      assert.equal(step?.status, 'judged', JSON.stringify(step));
      assert.ok(step.requests >= step.needed && step.stableRequests > 0, JSON.stringify(step));
      assert.ok(
        result.state.timeline.some((e) =>
          /step 1 \(50%\) bakes 60s longer: its traffic figures arrive that late/.test(e.message),
        ),
        'the step was baked until its last minute was published',
      );
      // no window read a minute that began before the shift: the canary's requests are whole published minutes
      // (30 every 5 s) after the step began
      const windows = result.state.analysis.filter((w) => w.step === 1);
      assert.ok(
        windows.some((w) => w.verdict === 'pass'),
        JSON.stringify(windows),
      );
      assert.ok(windows.every((w) => w.fromMs >= (step.fromMs ?? 0)));
      await record(workflowId, 'deploy-judged-step');
      const live = await tasks.get(shop.ports.listener, '/health');
      assert.deepEqual([live.version, live.status], ['v3', 200]);
    } finally {
      publisher.stop();
    }
  });

  it('deploy: a step without CloudWatch figures of its own pauses for a person (onInconclusive: pause), who lets it go on', async function () {
    this.timeout(300_000);
    const file = path.join(dir, 'runbook.yaml');
    const config = parse(readFileSync(file, 'utf8')) as { services: { shop: { analysis: Record<string, unknown> } } };
    config.services.shop.analysis.onInconclusive = 'pause';
    writeFileSync(file, stringify(config));
    // Nothing is published: the minutes published before (the earlier deploys') began before this step's shift.
    const started = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v5']);
    assert.equal(started.code, 0, `${started.stdout}\n${started.stderr}`);
    const id = /started (\S+):/.exec(started.stdout)?.[1];
    assert.ok(id, started.stdout);
    // the gate opens once the step's bake and its metrics lag are over (about 2 minutes)
    let approved = { code: -1, stdout: '', stderr: '' };
    for (let i = 0; i < 300 && approved.code !== 0; i++) {
      approved = await runbook(['approve', id, '--as', 'alice', '--gate', 'unjudged-step', '--note', 'quiet moto']);
      if (approved.code !== 0) await new Promise((r) => setTimeout(r, 1_000));
    }
    assert.equal(approved.code, 0, `${approved.stdout}\n${approved.stderr}`);
    const result = await testStack().client.workflow.getHandle<typeof deployService>(id).result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.match(result.reason ?? '', /unjudged at 50%/);
    const step = result.state.steps?.[0];
    assert.equal(step?.status, 'approved', JSON.stringify(step));
    assert.equal(step.conclusive, 0, 'no window of the step had figures');
    await record(id, 'deploy-unjudged-approved');
  });

  it('deploy: a canary whose target group answers 5xx, published into CloudWatch, is rolled back by the analysis', async function () {
    this.timeout(300_000);
    const live = await weights();
    const canary = live.blue === 0 ? 'blue' : 'green';
    // 10 of the canary's 30 requests every 5 s are 5xx; the stable colour answers none
    const publisher = await publishLoadBalancerMetrics({ blue: 0, green: 0, [canary]: 10 });
    try {
      const r = await runbook(['deploy', 'shop', '--env', 'moto', '--version', 'v4', '--wait', '--json']);
      assert.notEqual(r.code, 0, 'a rolled-back deploy exits non-zero');
      const { workflowId } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { workflowId: string };
      const result = await testStack().client.workflow.getHandle<typeof deployService>(workflowId).result();
      assert.equal(result.outcome, 'rolled-back', result.reason);
      assert.match(result.reason ?? '', /canary analysis failed at 50%: 5xx rate 33\.3% > 2\.00%/);
      assert.deepEqual(await weights(), live, 'the traffic is back on the stable colour');
      const stable = canary === 'blue' ? 'green' : 'blue';
      const answered = await tasks.get(shop.ports.listener, '/health');
      assert.deepEqual([answered.answeredBy, answered.status], [stable, 200]);
      await waitFor(() => Object.keys(tasks.running()).join() === stable, `the canary colour ${canary} has no task`);
      await record(workflowId, 'deploy-bad-canary');
    } finally {
      publisher.stop();
    }
  });
});
