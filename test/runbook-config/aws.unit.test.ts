import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { RunbookConfigError, parseRunbookConfig, resolveService, type RunbookConfig } from '../../src/runbook-config';
import type { AwsEcsService } from '../../src/shared/service-plan';

const SOURCE = path.resolve('/srv/runbooks/runbook.yaml');
const DOC = path.resolve(__dirname, '../../docs/aws-ecs.md');

const ELB = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const TG_BLUE = `${ELB}:targetgroup/shop-blue/6d0ecf831eec9f09`;
const TG_GREEN = `${ELB}:targetgroup/shop-green/2ab4c2c5b1f7a3e1`;
const LISTENER = `${ELB}:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2`;
const RULE = `${ELB}:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee`;
const TEST_LISTENER = `${ELB}:listener/app/shop/50dc6c495c0c9188/0467ef3c8400ae65`;
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}';

/** A complete aws-ecs service with an RDS database; only the required keys, so the defaults show. */
const SHOP = `version: 1
services:
  shop:
    platform: aws-ecs
    aws:
      region: eu-west-1
      cluster: prod
      services: { blue: shop-blue, green: shop-green }
      container: app
      image: ${IMAGE}
      env: { LOG_LEVEL: info, APP_VERSION: '{version}', WORKERS: 4 }
      targetGroups: { blue: ${TG_BLUE}, green: ${TG_GREEN} }
      listenerRule: ${RULE}
      testListener: ${TEST_LISTENER}
      rds: { instance: shop-db }
    health: { liveness: { path: /health }, readiness: { path: /health/ready } }
    database: { name: shop, urlEnv: SHOP_DATABASE_URL, migrations: shop/migrations }
    traffic: { steps: [{ weight: 10, bake: 5m }, { weight: 100 }] }
    analysis: { max5xxRate: 1%, maxP95LatencyMs: 300 }
    environments:
      production: {}
`;

/** SHOP with each `[from, to]` replaced (each `from` must be in it, so that an edit cannot silently miss). */
function edit(...edits: [from: string | RegExp, to: string][]): string {
  return edits.reduce((yaml, [from, to]) => {
    assert.ok(typeof from === 'string' ? yaml.includes(from) : from.test(yaml), `the fixture has ${String(from)}`);
    return yaml.replace(from, to);
  }, SHOP);
}

/** SHOP with lines added at the end of the aws block (indented 6). */
const withAws = (...lines: string[]) =>
  edit([
    `      rds: { instance: shop-db }\n`,
    `      rds: { instance: shop-db }\n${lines.map((l) => `      ${l}\n`).join('')}`,
  ]);

function resolveShop(yaml: string, environment = 'production'): AwsEcsService {
  const service = resolveService(parseRunbookConfig(yaml, SOURCE), 'shop', environment);
  assert.equal(service.platform, 'aws-ecs');
  return service as AwsEcsService;
}

/** The problem lines a config is rejected with. */
function problemsOf(yaml: string): string[] {
  try {
    parseRunbookConfig(yaml, SOURCE);
  } catch (err) {
    assert.ok(err instanceof RunbookConfigError, `expected a RunbookConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

describe('runbook config: the aws block of an aws-ecs service', () => {
  it('refuses analysis.compare.baseline: on, which aws-ecs does not run, and says what to use', () => {
    assert.deepEqual(
      problemsOf(edit(['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, compare: { baseline: on } }'])),
      [
        'services.shop.analysis.compare.baseline: is "on", but aws-ecs runs no baseline: the canary is compared with the stable release (its tasks share the load per task alike); use auto or off',
      ],
    );
    assert.equal(
      resolveShop(edit(['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, compare: { baseline: auto } }'])).analysis
        .compare?.baseline,
      undefined,
    );
  });

  it('resolves a complete service: names and ARNs as written, defaults filled in, the RDS database from database:', () => {
    const shop = resolveShop(SHOP);
    assert.deepEqual(shop.aws, {
      region: 'eu-west-1',
      cluster: 'prod',
      services: { blue: 'shop-blue', green: 'shop-green' },
      container: 'app',
      image: IMAGE,
      env: { LOG_LEVEL: 'info', APP_VERSION: '{version}', WORKERS: '4' },
      targetGroups: { blue: TG_BLUE, green: TG_GREEN },
      listenerRule: RULE,
      testListener: TEST_LISTENER,
      scheme: 'http',
      drainMs: 30_000,
      rolloutTimeoutMs: 15 * 60_000,
      pollIntervalMs: 10_000,
      metricsDelayMs: 120_000,
      // database and urlEnv come from the service's database: block, so they are written once.
      rds: {
        instance: 'shop-db',
        database: 'shop',
        urlEnv: 'SHOP_DATABASE_URL',
        drill: { securityGroups: [] },
        pollIntervalMs: 30_000,
      },
    });
    assert.ok(!('endpoint' in shop.aws) && !('listener' in shop.aws), 'absent optional keys are absent, not undefined');
    assert.deepEqual(shop.database, {
      name: 'shop',
      urlEnv: 'SHOP_DATABASE_URL',
      migrationsDir: path.resolve('/srv/runbooks/shop/migrations'),
    });
    // The analysis reads CloudWatch's 1-minute periods: the 10s default window becomes 1m.
    assert.equal(shop.analysis.intervalMs, 60_000);
    assert.ok(!('listen' in shop) && !('release' in shop));
    assert.deepEqual(JSON.parse(JSON.stringify(shop)), shop, 'plain JSON, for workflow inputs and histories');
  });

  it('takes every optional setting, and environments override single keys of the aws block', () => {
    const yaml = edit(
      [`      listenerRule: ${RULE}\n`, `      listener: ${LISTENER}\n`],
      [
        '      rds: { instance: shop-db }\n',
        [
          '      endpoint: http://127.0.0.1:5000',
          '      scheme: https',
          '      drain: 1m',
          '      rolloutTimeout: 20m',
          '      pollInterval: 5s',
          '      metricsDelay: 3m',
          '      rds:',
          '        instance: shop-db',
          '        endpoint: { secret: shop/db, key: host }',
          '        drill: { subnetGroup: shop-db-subnets, securityGroups: [sg-0123456789abcdef0], instanceClass: db.t4g.medium }',
          '        pollInterval: 1m',
          '',
        ].join('\n'),
      ],
      ['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, interval: 2m }'],
      ['traffic: { steps: [{ weight: 10, bake: 5m }', 'traffic: { steps: [{ weight: 10, bake: 6m }'],
      [
        '      production: {}\n',
        [
          '      staging:',
          '        aws: { cluster: staging, rds: { instance: shop-db-staging, drill: { instanceClass: null } } }',
          '        database: { urlEnv: SHOP_STAGING_DATABASE_URL }',
          '      production: {}',
          '',
        ].join('\n'),
      ],
    );
    const production = resolveShop(yaml);
    assert.deepEqual(
      { ...production.aws, targetGroups: undefined, services: undefined, env: undefined },
      {
        region: 'eu-west-1',
        endpoint: 'http://127.0.0.1:5000',
        cluster: 'prod',
        services: undefined,
        container: 'app',
        image: IMAGE,
        env: undefined,
        targetGroups: undefined,
        listener: LISTENER,
        testListener: TEST_LISTENER,
        scheme: 'https',
        drainMs: 60_000,
        rolloutTimeoutMs: 20 * 60_000,
        pollIntervalMs: 5000,
        metricsDelayMs: 180_000,
        rds: {
          instance: 'shop-db',
          database: 'shop',
          urlEnv: 'SHOP_DATABASE_URL',
          endpoint: { secret: 'shop/db', key: 'host' },
          drill: {
            subnetGroup: 'shop-db-subnets',
            securityGroups: ['sg-0123456789abcdef0'],
            instanceClass: 'db.t4g.medium',
          },
          pollIntervalMs: 60_000,
        },
      },
    );
    assert.equal(production.analysis.intervalMs, 120_000, 'an interval of a minute or more is kept');

    const staging = resolveShop(yaml, 'staging');
    assert.equal(staging.aws.cluster, 'staging');
    assert.deepEqual(staging.aws.rds, {
      ...production.aws.rds,
      instance: 'shop-db-staging',
      urlEnv: 'SHOP_STAGING_DATABASE_URL',
      drill: { subnetGroup: 'shop-db-subnets', securityGroups: ['sg-0123456789abcdef0'] },
    });
    assert.deepEqual(staging.aws.targetGroups, production.aws.targetGroups, 'the rest of the aws block is the base');
  });

  it('accepts each kind of endpoint holder: an SSM parameter, a Secrets Manager secret, a task env var', () => {
    const holders = [{ ssmParameter: '/shop/db-host' }, { secret: 'shop/db' }, { taskEnv: 'DATABASE_HOST' }];
    for (const holder of holders) {
      const yaml = edit([
        'rds: { instance: shop-db }',
        `rds: { instance: shop-db, endpoint: ${JSON.stringify(holder)} }`,
      ]);
      assert.deepEqual(resolveShop(yaml).aws.rds?.endpoint, holder);
    }
  });
});

describe('runbook config: problems in the aws block', () => {
  it('names a bad region, and an endpoint that is not an http(s) URL', () => {
    assert.deepEqual(problemsOf(edit(['region: eu-west-1', 'region: Ireland'])), [
      'services.shop.aws.region: must be an AWS region like eu-west-1, got "Ireland"',
    ]);
    assert.deepEqual(problemsOf(edit(['region: eu-west-1', 'region: eu-west-1\n      endpoint: localhost:5000'])), [
      'services.shop.aws.endpoint: must be an http(s) URL like http://127.0.0.1:5000, got "localhost:5000"',
    ]);
  });

  it('names an ARN of the wrong kind: a listener where a target group belongs, and the reverse', () => {
    assert.deepEqual(
      problemsOf(
        edit(
          [`blue: ${TG_BLUE}`, `blue: ${LISTENER}`],
          [`testListener: ${TEST_LISTENER}`, `testListener: ${TG_GREEN}`],
        ),
      ),
      [
        `services.shop.aws.targetGroups.blue: must be the ARN of a targetgroup, e.g. arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/..., got "${LISTENER}"`,
        `services.shop.aws.testListener: must be the ARN of a listener, e.g. arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/..., got "${TG_GREEN}"`,
      ],
    );
    assert.deepEqual(problemsOf(edit([`listenerRule: ${RULE}`, 'listenerRule: shop-rule'])), [
      'services.shop.aws.listenerRule: must be the ARN of a listener-rule, e.g. arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/..., got "shop-rule"',
    ]);
  });

  it('takes aws.checkHost as a host name (lower-cased) and names what else it must not be (issue 13 item 5)', () => {
    assert.equal(resolveShop(withAws('checkHost: Shop.Example.com')).aws.checkHost, 'shop.example.com');
    assert.equal(resolveShop(SHOP).aws.checkHost, undefined, "absent: the rule's host condition decides");
    for (const bad of ['https://shop.example.com', 'shop.example.com:443', '*.example.com']) {
      assert.deepEqual(problemsOf(withAws(`checkHost: '${bad}'`)), [
        `services.shop.aws.checkHost: must be a host name without scheme, port or wildcard, like shop.example.com (the Host header and TLS server name of the checks through the load balancer), got "${bad}"`,
      ]);
    }
  });

  it('requires {version} in the image, which is how a release picks its image', () => {
    assert.deepEqual(problemsOf(edit(['shop:{version}', 'shop:latest'])), [
      'services.shop.aws.image: must contain {version}, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}',
    ]);
    assert.deepEqual(problemsOf(edit(['shop:{version}', 'shop:{versoin}'])), [
      'services.shop.aws.image: unknown placeholder {versoin} (did you mean {version}?); allowed here: {version}',
      'services.shop.aws.image: must contain {version}, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}',
    ]);
  });

  it('needs exactly one of listenerRule and listener', () => {
    const message =
      'services.shop.aws: needs exactly one of listenerRule (the production listener rule whose forward action splits traffic) or listener (its default action)';
    assert.deepEqual(problemsOf(withAws(`listener: ${LISTENER}`)), [message], 'both');
    assert.deepEqual(problemsOf(edit([`      listenerRule: ${RULE}\n`, ''])), [message], 'neither');
  });

  it('requires aws.rds when the service has a database, and database.urlEnv to reach it', () => {
    assert.deepEqual(problemsOf(edit(['      rds: { instance: shop-db }\n', ''])), [
      'services.shop.aws.rds: is required with database: the RDS instance, e.g. { instance: shop-db }',
    ]);
    assert.deepEqual(
      problemsOf(edit(['database: { name: shop, urlEnv: SHOP_DATABASE_URL,', 'database: { name: shop,'])),
      [
        'services.shop.database.urlEnv: is required for platform aws-ecs: the worker environment variable holding the URL (with credentials) of the RDS instance',
      ],
    );
  });

  it("refuses an analysis interval shorter than CloudWatch's 1-minute period, where it is written", () => {
    const message =
      "10s is shorter than CloudWatch's 1-minute period of load balancer metrics; use at least 1m on aws-ecs";
    assert.deepEqual(problemsOf(edit(['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, interval: 10s }'])), [
      `services.shop.analysis.interval: ${message}`,
    ]);
    assert.deepEqual(
      problemsOf(
        edit(['      production: {}\n', '      staging: { analysis: { interval: 10s } }\n      production: {}\n']),
      ),
      [`services.shop.environments.staging.analysis.interval: ${message}`],
    );
  });

  it('keeps secrets out of aws.env', () => {
    assert.deepEqual(
      problemsOf(edit(['env: { LOG_LEVEL: info,', 'env: { LOG_LEVEL: info, STRIPE_API_KEY: sk, DATABASE_URL: x,'])),
      [
        "services.shop.aws.env.STRIPE_API_KEY: looks like a secret; runbook.yaml is copied into workflow histories, so it must not hold secrets: keep it in the worker's environment instead",
        'services.shop.aws.env.DATABASE_URL: must not be set here: runbook.yaml is copied into workflow histories, so it must not hold secrets; the worker passes the release its database URL (see database.urlEnv)',
      ],
    );
  });

  it('names an unknown key with a "did you mean" and the keys allowed there', () => {
    const allowed =
      'allowed here: region, endpoint, cluster, services, container, image, env, targetGroups, listenerRule, listener, testListener, scheme, checkHost, drain, rolloutTimeout, pollInterval, metricsDelay, rds';
    assert.deepEqual(problemsOf(withAws('clustr: prod', 'desiredCount: 2')), [
      `services.shop.aws.clustr: unknown key (did you mean "cluster"?); ${allowed}`,
      `services.shop.aws.desiredCount: unknown key; ${allowed}`,
    ]);
    assert.deepEqual(
      problemsOf(edit(['rds: { instance: shop-db }', 'rds: { instance: shop-db, pollIntervall: 1m }'])),
      [
        'services.shop.aws.rds.pollIntervall: unknown key (did you mean "pollInterval"?); allowed here: instance, cluster, endpoint, drill, pollInterval, fingerprint, countTolerance, restore, retention',
      ],
    );
  });

  it('names a bad endpoint holder and shows the three forms', () => {
    const forms =
      'must be one of { ssmParameter: /shop/db-host }, { secret: shop/db, key: host } or { taskEnv: DATABASE_HOST }';
    for (const [holder, got] of [
      ['/shop/db-host', '"/shop/db-host"'],
      ['{ parameter: /shop/db-host }', 'a map'],
      ['{ ssmParameter: /shop/db-host, taskEnv: DATABASE_HOST }', 'a map'],
    ]) {
      assert.deepEqual(
        problemsOf(edit(['rds: { instance: shop-db }', `rds: { instance: shop-db, endpoint: ${holder} }`])),
        [`services.shop.aws.rds.endpoint: ${forms}, got ${got}`],
        holder,
      );
    }
  });

  it('checks the drill settings of the RDS block', () => {
    const yaml = edit([
      'rds: { instance: shop-db }',
      'rds: { instance: shop-db, drill: { securityGroups: [default], instanceClass: t3.micro } }',
    ]);
    assert.deepEqual(problemsOf(yaml), [
      'services.shop.aws.rds.drill.securityGroups[0]: must be a security group id like sg-0123456789abcdef0',
      'services.shop.aws.rds.drill.instanceClass: must be an instance class like db.t4g.medium',
    ]);
  });

  it('checks fingerprint, retention and restore of the RDS block (issue 13)', () => {
    const yaml = edit([
      'rds: { instance: shop-db }',
      'rds: { instance: shop-db, fingerprint: md5, retention: {}, restore: { monitoringInterval: 7, multiAz: yes } }',
    ]);
    const problems = problemsOf(yaml);
    assert.ok(
      problems.some((p) => p.startsWith('services.shop.aws.rds.fingerprint: must be counts (the default')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('services.shop.aws.rds.retention: needs keep')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('services.shop.aws.rds.restore.monitoringInterval: must be one of 0, 1, 5')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('services.shop.aws.rds.restore.multiAz')),
      problems.join('\n'),
    );
  });

  it("refuses aws.rds.restore overrides that the restore of the service's kind of database cannot apply (issue 13 item 3)", () => {
    /** Each problem as the first of `want` it starts with (itself when none). */
    const as = (problems: string[], want: string[]) => problems.map((p) => want.find((w) => p.startsWith(w)) ?? p);
    const onInstance = problemsOf(
      edit([
        'rds: { instance: shop-db }',
        'rds: { instance: shop-db, restore: { kmsKeyId: alias/shop, clusterParameterGroup: shop-aurora, storageType: aurora-iopt1, multiAz: true, optionGroup: shop-og } }',
      ]),
    );
    const onInstanceWant = [
      'services.shop.aws.rds.restore.kmsKeyId: does not apply to an instance',
      'services.shop.aws.rds.restore.clusterParameterGroup: is for an Aurora cluster (aws.rds.cluster); an instance takes parameterGroup',
      "services.shop.aws.rds.restore.storageType: aurora-iopt1 is an Aurora cluster's storage; an instance takes gp2, gp3, io1, io2 or standard",
    ];
    assert.deepEqual(as(onInstance, onInstanceWant), onInstanceWant, onInstance.join('\n'));
    assert.match(onInstance[0]!, /encrypted with its snapshot's KMS key .*remove it/);

    const onCluster = problemsOf(
      edit([
        'rds: { instance: shop-db }',
        'rds: { cluster: shop-aurora, drill: { instanceClass: db.r6g.large }, restore: { multiAz: true, optionGroup: shop-og, storageType: gp3, kmsKeyId: alias/shop, clusterParameterGroup: shop-aurora } }',
      ]),
    );
    const onClusterWant = [
      'services.shop.aws.rds.restore.multiAz: does not apply to an Aurora cluster',
      'services.shop.aws.rds.restore.optionGroup: does not apply to an Aurora PostgreSQL cluster (it has no option groups); remove it',
      "services.shop.aws.rds.restore.storageType: gp3 is an instance's storage; an Aurora cluster takes aurora (Standard) or aurora-iopt1 (I/O-Optimized)",
    ];
    assert.deepEqual(as(onCluster, onClusterWant), onClusterWant, onCluster.join('\n'));
    const taken = resolveShop(
      edit([
        'rds: { instance: shop-db }',
        'rds: { cluster: shop-aurora, drill: { instanceClass: db.r6g.large }, restore: { storageType: aurora-iopt1, kmsKeyId: alias/shop } }',
      ]),
    );
    assert.deepEqual(
      taken.aws.rds?.restore,
      { storageType: 'aurora-iopt1', kmsKeyId: 'alias/shop' },
      "a cluster's own storage type and KMS key are taken",
    );
  });

  it('needs exactly one of aws.rds.instance and aws.rds.cluster, with the same identifier rules', () => {
    const message =
      'services.shop.aws.rds: needs exactly one of instance (the RDS DB instance identifier) or cluster (the Aurora PostgreSQL DB cluster identifier)';
    const both = 'rds: { instance: shop-db, cluster: shop-aurora, drill: { instanceClass: db.r6g.large } }';
    assert.deepEqual(problemsOf(edit(['rds: { instance: shop-db }', both])), [message], 'both');
    assert.deepEqual(problemsOf(edit(['rds: { instance: shop-db }', 'rds: { endpoint: { taskEnv: DB_HOST } }'])), [
      message,
    ]);
    assert.deepEqual(
      problemsOf(
        edit(['rds: { instance: shop-db }', 'rds: { cluster: 1-aurora, drill: { instanceClass: db.r6g.large } }']),
      ),
      [
        `services.shop.aws.rds.cluster: must be an RDS Aurora DB cluster identifier (letters, digits, '-'; at most 63), got "1-aurora"`,
      ],
    );
    // An environment that moves to a cluster removes the base's instance.
    const staging = edit([
      '      production: {}\n',
      '      staging: { aws: { rds: { instance: null, cluster: shop-aurora-staging, drill: { instanceClass: db.t4g.medium } } } }\n      production: {}\n',
    ]);
    assert.equal(resolveShop(staging, 'staging').aws.rds?.cluster, 'shop-aurora-staging');
    assert.ok(!('instance' in resolveShop(staging, 'staging').aws.rds!));
    const forgot = edit([
      '      production: {}\n',
      '      staging: { aws: { rds: { cluster: shop-aurora-staging } } }\n      production: {}\n',
    ]);
    assert.deepEqual(
      problemsOf(forgot),
      [
        `${message} (in environment staging)`,
        'services.shop.aws.rds.drill.instanceClass: is required with cluster: the class of the writer instance that a restore of the Aurora cluster creates (Aurora restores have no default), e.g. db.r6g.large (in environment staging)',
      ],
      'a relation that fails only with an override is reported where the keys are, naming the environment',
    );
  });

  it('resolves an Aurora cluster, and requires drill.instanceClass with it', () => {
    const yaml = edit([
      'rds: { instance: shop-db }',
      'rds: { cluster: shop-aurora, drill: { instanceClass: db.r6g.large } }',
    ]);
    assert.deepEqual(resolveShop(yaml).aws.rds, {
      cluster: 'shop-aurora',
      database: 'shop',
      urlEnv: 'SHOP_DATABASE_URL',
      drill: { securityGroups: [], instanceClass: 'db.r6g.large' },
      pollIntervalMs: 30_000,
    });
    assert.deepEqual(problemsOf(edit(['rds: { instance: shop-db }', 'rds: { cluster: shop-aurora }'])), [
      'services.shop.aws.rds.drill.instanceClass: is required with cluster: the class of the writer instance that a restore of the Aurora cluster creates (Aurora restores have no default), e.g. db.r6g.large',
    ]);
  });

  it('refuses a bake that holds fewer windows than analysis.minConclusiveWindows (issue 13 item 1)', () => {
    // the step bakes aws.metricsDelay + 1m longer (its last minutes published), so a 2m bake holds 2 windows of 1m
    assert.equal(resolveShop(edit(['bake: 5m', 'bake: 2m'])).traffic.steps[0]?.bakeMs, 120_000);
    assert.deepEqual(
      problemsOf(
        edit(['bake: 5m', 'bake: 2m'], ['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, minConclusiveWindows: 3 }']),
      ),
      [
        'services.shop.traffic.steps[0].bake: 2m holds 2 analysis window(s) of 1m, fewer than analysis.minConclusiveWindows (3), so the step could never be judged; use 0 or at least 3m, or lower minConclusiveWindows',
      ],
    );
    const plan = resolveShop(edit(['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, minConclusiveWindows: 5 }']));
    assert.equal(plan.analysis.minConclusiveWindows, 5, 'a 5m bake holds 5 windows of 1m');
    assert.deepEqual(problemsOf(edit(['maxP95LatencyMs: 300 }', 'maxP95LatencyMs: 300, minConclusiveWindows: 0 }'])), [
      'services.shop.analysis.minConclusiveWindows: must be 1..1000 (conclusive analysis windows a baked step needs), got 0',
    ]);
  });

  // On aws-ecs the default interval is 1m (CloudWatch's period), not 10s: a 30s bake would never complete a window.
  it('compares traffic bakes with the 1-minute interval that aws-ecs uses when none is given', () => {
    assert.deepEqual(problemsOf(edit(['bake: 5m', 'bake: 30s'])), [
      'services.shop.traffic.steps[0].bake: 30s is shorter than analysis.interval (1m), so no analysis window would complete; use 0 or at least 1m',
    ]);
  });
});

describe('docs/aws-ecs.md', () => {
  /** The example runbook.yaml in the guide: its one ```yaml block. */
  function docExample(): string {
    const blocks = [...readFileSync(DOC, 'utf8').matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
    assert.equal(blocks.length, 1, 'the guide has one yaml block: the complete example');
    return blocks[0]!;
  }

  /** The keys allowed at a place in the aws block, as the loader lists them for an unknown key. */
  function allowedKeys(config: RunbookConfig, at: 'aws' | 'rds' | 'drill'): string[] {
    const shop = config.services.shop!;
    const aws = shop.base.aws as Record<string, unknown>;
    const rds = aws.rds as Record<string, unknown>;
    const probe = { zzz: 1 };
    const patched =
      at === 'aws'
        ? { ...aws, ...probe }
        : at === 'rds'
          ? { ...aws, rds: { ...rds, ...probe } }
          : { ...aws, rds: { ...rds, drill: probe } };
    try {
      resolveService(
        { ...config, services: { shop: { ...shop, base: { ...shop.base, aws: patched } as typeof shop.base } } },
        'shop',
        Object.keys(shop.environments)[0]!,
      );
    } catch (err) {
      assert.ok(err instanceof RunbookConfigError);
      const line = err.problems.find((p) => p.includes('.zzz: unknown key'));
      assert.ok(line, err.message);
      return line.replace(/^.*allowed here: /, '').split(', ');
    }
    assert.fail('expected the unknown key to be rejected');
  }

  it('has an example runbook.yaml that loads and resolves in every environment', () => {
    const config = parseRunbookConfig(docExample(), SOURCE);
    const shop = config.services.shop;
    assert.ok(shop, 'the example defines the service shop');
    assert.deepEqual(Object.keys(shop.environments), ['staging', 'production']);
    for (const environment of Object.keys(shop.environments)) {
      const resolved = resolveShop(docExample(), environment);
      assert.ok(resolved.aws.rds, `${environment}: the example has a database on RDS`);
      assert.equal(resolved.aws.rds.database, resolved.database?.name);
      assert.equal(resolved.aws.rds.urlEnv, resolved.database?.urlEnv);
      assert.ok(resolved.analysis.intervalMs >= 60_000);
    }
    const [staging, production] = ['staging', 'production'].map((e) => resolveShop(docExample(), e));
    assert.notDeepEqual(staging!.aws, production!.aws, 'staging overrides some of the aws block');
  });

  it('shows every key of the aws block in its example (set, or in a comment)', () => {
    const yaml = docExample();
    const config = parseRunbookConfig(yaml, SOURCE);
    for (const at of ['aws', 'rds', 'drill'] as const) {
      for (const key of allowedKeys(config, at)) {
        assert.match(yaml, new RegExp(`\\b${key}:`), `the example shows ${at === 'aws' ? '' : `${at}.`}${key}`);
      }
    }
    for (const holder of ['ssmParameter', 'secret', 'key', 'taskEnv']) {
      assert.match(yaml, new RegExp(`\\b${holder}:`), `the example shows the endpoint holder ${holder}`);
    }
  });
});
