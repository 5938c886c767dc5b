import assert from 'node:assert/strict';
import path from 'node:path';
import { UserError } from '../../src/errors';
import {
  RunbookConfigError,
  defaultEnvironment,
  parseDuration,
  parseRunbookConfig,
  renderRelease,
  renderReleaseForCommand,
  resolveService,
  type RunbookConfig,
} from '../../src/runbook-config';
import type { SingleHostService } from '../../src/shared/service-plan';

const SOURCE = path.resolve('/srv/runbooks/runbook.yaml');

/** Two services; `shop` has environment overrides that exercise the merge rules. */
const CONFIG = `version: 1
services:
  shop:
    platform: single-host
    listen: { port: 18080 }
    release:
      command: [node, server.js, '--port={port}']
      cwd: shop/releases/{version}
      env: { APP_VERSION: '{version}', LOG_LEVEL: info, WORKERS: 2, VERBOSE: false }
      portRange: [18100, 18199]
    health:
      liveness: { path: /health }
      readiness: { path: /health/ready }
      timeout: 1s
    smoke:
      - { name: list, path: /api/items, bodyMatches: items }
      - { name: add, method: POST, path: /api/items, body: { name: smoke }, expectStatus: 201 }
    database: { name: shop, urlEnv: SHOP_DATABASE_URL, migrations: ../migrations/shop }
    traffic:
      steps: [{ weight: 10, bake: 1m }, { weight: 50, bake: 1m }, { weight: 100 }]
    analysis: { max5xxRate: 1%, maxP95LatencyMs: 400 }
    approvals: { gates: [before-start, go-live], approvers: [alice, bob], timeout: 30m }
    drill: { rtoTarget: 15m }
    environments:
      staging:
        listen: { port: 18081 }
        release: { env: { LOG_LEVEL: debug }, portRange: [18200, 18299] }
        health: { deadline: 10s }
        smoke: []
        database: null
        traffic: { steps: [{ weight: 100, bake: 30s }] }
        approvals: { gates: [] }
        drill: null
      production: {}
  billing:
    platform: aws-ecs
    aws:
      region: eu-west-1
      cluster: main
      services: { blue: billing-blue, green: billing-green }
      container: app
      image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/billing:{version}
      targetGroups:
        blue: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/billing-blue/6d0ecf831eec9f09
        green: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/billing-green/2ab4c2c5b1f7a3e1
      listenerRule: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/main/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee
      testListener: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/main/50dc6c495c0c9188/0467ef3c8400ae65
    health:
      liveness: { path: /healthz }
      readiness: { path: /readyz }
    traffic: { steps: [{ weight: 100 }] }
    analysis: { max5xxRate: 0.01, maxP95LatencyMs: 250 }
    environments: { production: {} }
`;

const load = (): RunbookConfig => parseRunbookConfig(CONFIG, SOURCE);

function singleHost(config: RunbookConfig, env: string): SingleHostService {
  const service = resolveService(config, 'shop', env);
  assert.equal(service.platform, 'single-host');
  return service as SingleHostService;
}

describe('runbook config: resolving a service in an environment', () => {
  it('merges overrides into the base: maps merge, lists replace, null removes', () => {
    const config = load();
    const production = singleHost(config, 'production');
    const staging = singleHost(config, 'staging');

    // Maps merge key by key: staging changes one env var and the port range, and keeps the rest of `release`.
    assert.deepEqual(staging.release, {
      ...production.release,
      env: { APP_VERSION: '{version}', LOG_LEVEL: 'debug', WORKERS: '2', VERBOSE: 'false' },
      portRange: { min: 18200, max: 18299 },
    });
    assert.deepEqual(staging.listen, { port: 18081 });
    assert.deepEqual(staging.health, { ...production.health, deadlineMs: 10_000 });
    assert.equal(production.health.timeoutMs, 1000);
    assert.equal(staging.health.timeoutMs, 1000);
    // Lists replace.
    assert.deepEqual(staging.traffic.steps, [{ weight: 100, bakeMs: 30_000 }]);
    assert.deepEqual(staging.smoke, []);
    assert.deepEqual(staging.approvals.gates, []);
    assert.deepEqual(staging.approvals.approvers, ['alice', 'bob'], 'the rest of approvals comes from the base');
    assert.equal(staging.approvals.timeoutMs, 30 * 60_000);
    // null removes.
    assert.ok(!('database' in staging));
    assert.ok(!('drill' in staging));

    assert.deepEqual(production.traffic.steps, [
      { weight: 10, bakeMs: 60_000 },
      { weight: 50, bakeMs: 60_000 },
      { weight: 100, bakeMs: 0 },
    ]);
    assert.deepEqual(production.smoke, [
      { name: 'list', method: 'GET', path: '/api/items', expectStatus: 200, bodyMatches: 'items' },
      { name: 'add', method: 'POST', path: '/api/items', body: { name: 'smoke' }, expectStatus: 201 },
    ]);
    assert.deepEqual(production.database, {
      name: 'shop',
      urlEnv: 'SHOP_DATABASE_URL',
      migrationsDir: path.resolve('/srv/migrations/shop'),
    });
    assert.deepEqual(production.drill, { rtoTargetMs: 15 * 60_000 });
    // The base config is not changed by resolving.
    assert.deepEqual(singleHost(config, 'production'), production);
  });

  it("resolves an aws-ecs service's aws block with its defaults, without single-host settings", () => {
    const billing = resolveService(load(), 'billing', 'production');
    assert.equal(billing.platform, 'aws-ecs');
    assert.ok(billing.platform === 'aws-ecs');
    assert.deepEqual(billing.aws, {
      region: 'eu-west-1',
      cluster: 'main',
      services: { blue: 'billing-blue', green: 'billing-green' },
      container: 'app',
      image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/billing:{version}',
      env: {},
      targetGroups: {
        blue: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/billing-blue/6d0ecf831eec9f09',
        green: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/billing-green/2ab4c2c5b1f7a3e1',
      },
      listenerRule:
        'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/main/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee',
      testListener:
        'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/main/50dc6c495c0c9188/0467ef3c8400ae65',
      scheme: 'http',
      drainMs: 30_000,
      rolloutTimeoutMs: 15 * 60_000,
      pollIntervalMs: 10_000,
      metricsDelayMs: 120_000,
    });
    assert.ok(!('listen' in billing) && !('release' in billing));
    assert.ok(!('database' in billing) && !('rds' in billing.aws), 'no database: no RDS settings');
    assert.equal(billing.analysis.max5xxRate, 0.01);
    // CloudWatch's load balancer metrics come in 1-minute periods: the 10s default window becomes 1m on aws-ecs.
    assert.equal(billing.analysis.intervalMs, 60_000);
    assert.deepEqual(JSON.parse(JSON.stringify(billing)), billing, 'plain JSON, for workflow inputs');
  });

  it('defaults to the first environment the service lists', () => {
    const config = load();
    assert.equal(defaultEnvironment(config, 'shop'), 'staging');
    assert.equal(defaultEnvironment(config, 'billing'), 'production');
  });

  it('rejects an unknown service, listing the known ones', () => {
    assert.throws(
      () => resolveService(load(), 'shpo', 'production'),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.message, `unknown service "shpo" (did you mean "shop"?); ${SOURCE} defines: shop, billing`);
        assert.match(err.fix ?? '', /use one of shop, billing/);
        return true;
      },
    );
    assert.throws(
      () => defaultEnvironment(load(), 'payments'),
      /unknown service "payments"; .* defines: shop, billing$/,
    );
  });

  it("rejects an unknown environment, listing the service's environments", () => {
    assert.throws(
      () => resolveService(load(), 'shop', 'prod'),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(
          err.message,
          'service "shop" has no environment "prod" (did you mean "production"?); its environments: staging, production',
        );
        assert.match(err.fix ?? '', /use one of staging, production/);
        return true;
      },
    );
    assert.throws(
      () => resolveService(load(), 'billing', 'staging'),
      /^UserError: service "billing" has no environment "staging"; its environments: production$/,
    );
  });

  it('validates the merged result when the config was put together by hand', () => {
    const config = load();
    const shop = config.services.shop!;
    const edited: RunbookConfig = {
      ...config,
      services: {
        shop: { ...shop, environments: { ...shop.environments, qa: { traffic: { steps: [{ weight: 60 }] } } } },
      },
    };
    assert.throws(
      () => resolveService(edited, 'shop', 'qa'),
      (err: unknown) => {
        assert.ok(err instanceof RunbookConfigError);
        assert.deepEqual(err.problems, [
          'services.shop.environments.qa.traffic.steps[0].weight: the last step must be 100 (all traffic on the new release), got 60',
        ]);
        return true;
      },
    );
  });
});

describe('runbook config: placeholders', () => {
  it('fills in {version} and {port} in the command, cwd and env', () => {
    const { release } = singleHost(load(), 'production');
    assert.deepEqual(renderRelease(release, { version: 'v2', port: 18123 }), {
      command: ['node', 'server.js', '--port=18123'],
      cwd: path.resolve('/srv/runbooks/shop/releases/v2'),
      env: { APP_VERSION: 'v2', LOG_LEVEL: 'info', WORKERS: '2', VERBOSE: 'false' },
    });
    // Placeholders stay in the resolved config: it describes every release, not one.
    assert.equal(release.cwd, path.resolve('/srv/runbooks/shop/releases/{version}'));
  });

  it('refuses a version that could leave the release folder', () => {
    const { release } = singleHost(load(), 'production');
    for (const version of ['../v1', 'v1/../../etc', '', '..', 'v 1']) {
      assert.throws(() => renderRelease(release, { version, port: 18123 }), UserError, version);
    }
    assert.doesNotThrow(() => renderRelease(release, { version: 'v4-broken-readiness', port: 18123 }));
    assert.doesNotThrow(() => renderRelease(release, { version: '1.4.0_rc1', port: 18123 }));
  });

  it('renders the folder and env of a release command: no port, so env entries with {port} are left out', () => {
    const { release } = singleHost(load(), 'production');
    const withPort = { ...release, env: { ...release.env, LISTEN: '127.0.0.1:{port}' } };
    assert.deepEqual(renderReleaseForCommand(withPort, 'v2'), {
      cwd: path.resolve('/srv/runbooks/shop/releases/v2'),
      env: { APP_VERSION: 'v2', LOG_LEVEL: 'info', WORKERS: '2', VERBOSE: 'false' },
    });
    assert.throws(() => renderReleaseForCommand({ ...release, cwd: '/srv/{port}' }, 'v2'), UserError);
    assert.throws(() => renderReleaseForCommand(release, '../v1'), UserError);
  });

  const withRelease = (release: string) =>
    parseRunbookConfig(
      CONFIG.replace(/ {4}release:\n(?: {6}.*\n)+/, `    release:\n${release.replace(/^/gm, '      ')}\n`),
      SOURCE,
    );
  const problemsWithRelease = (release: string): string[] => {
    try {
      withRelease(release);
    } catch (err) {
      assert.ok(err instanceof RunbookConfigError, String(err));
      return err.problems;
    }
    assert.fail('expected the config to be rejected');
  };

  it('rejects unknown placeholders with a hint, and {port} in cwd', () => {
    assert.deepEqual(
      problemsWithRelease(
        [
          "command: [node, server.js, '--port={prot}']",
          'cwd: releases/{port}',
          "env: { APP_VERSION: '{version}', PORT: '{port}', HOST: '{host}' }",
          'portRange: [18100, 18199]',
        ].join('\n'),
      ),
      [
        'services.shop.release.command[2]: unknown placeholder {prot} (did you mean {port}?); allowed here: {version}, {port}',
        'services.shop.release.cwd: unknown placeholder {port}; allowed here: {version}',
        'services.shop.release.env.HOST: unknown placeholder {host}; allowed here: {version}, {port}',
      ],
    );
  });

  it('explains an unquoted {port}, which YAML reads as a map', () => {
    assert.deepEqual(
      problemsWithRelease(
        [
          'command: [node, server.js]',
          'cwd: releases/{version}',
          'env: { PORT: {port} }',
          'portRange: [18100, 18199]',
        ].join('\n'),
      ),
      [
        'services.shop.release.env.PORT: must be a string, number or boolean, got a map; YAML reads an unquoted {port} as a map: quote it, "{port}"',
      ],
    );
  });

  it('requires {port} somewhere, since a release learns its port only from it', () => {
    assert.deepEqual(
      problemsWithRelease(
        ['command: [node, server.js]', 'cwd: releases/{version}', 'portRange: [18100, 18199]'].join('\n'),
      ),
      [
        'services.shop.release: neither release.command nor release.env uses {port}, so a release could not know which port it was given; add e.g. PORT: "{port}"',
      ],
    );
    const { release } = singleHost(
      withRelease(
        [
          'command: [node, server.js]',
          'cwd: releases/{version}',
          "env: { PORT: '{port}' }",
          'portRange: [18100, 18199]',
        ].join('\n'),
      ),
      'production',
    );
    assert.deepEqual(release.env, { PORT: '{port}' });
    assert.equal(release.drainMs, 5000, 'drain defaults to 5s');
  });
});

describe('runbook config: durations', () => {
  it('parses units, compounds and plain milliseconds, and rejects the rest', () => {
    const cases: [string | number, number | undefined][] = [
      ['500ms', 500],
      ['10s', 10_000],
      ['1m', 60_000],
      ['1h', 3_600_000],
      ['7d', 604_800_000],
      ['1h30m', 5_400_000],
      ['1.5s', 1500],
      [' 2s ', 2000],
      [0, 0],
      [1500, 1500],
      ['10', undefined],
      ['10 s', undefined],
      ['2 seconds', undefined],
      ['1w', undefined],
      ['-1s', undefined],
      [-5, undefined],
      [Number.NaN, undefined],
    ];
    for (const [input, expected] of cases) assert.equal(parseDuration(input), expected, JSON.stringify(input));
  });
});
