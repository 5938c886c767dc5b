import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../src/errors';
import {
  RunbookConfigError,
  defaultEnvironment,
  loadRunbookConfig,
  parseRunbookConfig,
  resolveService,
} from '../../src/runbook-config';
import type { ResolvedService } from '../../src/shared/service-plan';
import { testKey } from '../helpers/keys';

const EXAMPLES = path.resolve(__dirname, '../../examples');
/** Where the inline fixtures pretend to live: relative paths in them resolve against its folder. */
const SOURCE = path.resolve('/srv/runbooks/runbook.yaml');

/** A valid single-host service block, indented for `services:`. */
const SHOP = `
  shop:
    platform: single-host
    listen: { port: 18080 }
    release:
      command: [node, server.js]
      cwd: shop/releases/{version}
      env: { PORT: '{port}' }
      portRange: [18100, 18199]
    health:
      liveness: { path: /health }
      readiness: { path: /health/ready }
    traffic:
      steps: [{ weight: 10, bake: 1m }, { weight: 100 }]
    analysis: { max5xxRate: 2%, maxP95LatencyMs: 500 }`;

/** The problem lines a config is rejected with. */
function problemsOf(yaml: string): string[] {
  try {
    parseRunbookConfig(yaml, SOURCE);
  } catch (err) {
    assert.ok(err instanceof RunbookConfigError, `expected a RunbookConfigError, got ${String(err)}`);
    const count = err.problems.length === 1 ? '1 problem' : `${err.problems.length} problems`;
    assert.equal(err.message, `${SOURCE}: ${count}:\n  ${err.problems.join('\n  ')}`);
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

const DEFAULT_COMPARE = { max5xxRatio: 2, maxP95Ratio: 1.5, minP95DeltaMs: 10, confidence: 0.99 };
describe('runbook config: loading', () => {
  it("loads the sample's shop-tools: the release's migrate command, command checks, and its migrations folder per version", () => {
    const config = loadRunbookConfig(path.join(EXAMPLES, 'runbook.yaml'));
    const staging = resolveService(config, 'shop-tools', 'staging');
    assert.deepEqual(staging.database, {
      name: 'shop_tools',
      migrate: {
        command: ['node', 'scripts/migrate.js'],
        timeoutMs: 120_000,
        status: { command: ['node', 'scripts/migrate.js', '--status'], timeoutMs: 120_000 },
      },
    });
    assert.deepEqual(staging.smoke, [
      { name: 'smoke script', command: ['node', 'scripts/smoke.js', '{url}'], timeoutMs: 30_000, runFrom: 'release' },
    ]);
    assert.deepEqual(staging.drill?.integrityCommand, { command: ['node', 'scripts/integrity.js'], timeoutMs: 60_000 });
    const sqlFolder = resolveService(config, 'shop-tools', 'sql-folder');
    assert.deepEqual(sqlFolder.database, {
      name: 'shop_tools_sql',
      migrationsDir: path.join(EXAMPLES, 'shop/releases/{version}/migrations'),
    });
    assert.equal(sqlFolder.drill?.integrityCommand, undefined);
  });

  it('loads examples/runbook.yaml and resolves each environment to plain JSON with ms and absolute paths', () => {
    const config = loadRunbookConfig(path.join(EXAMPLES, 'runbook.yaml'));
    assert.deepEqual(Object.keys(config.services), ['shop', 'shop-tools']);
    assert.equal(defaultEnvironment(config, 'shop'), 'staging');

    const production = resolveService(config, 'shop', 'production');
    const expected: ResolvedService = {
      service: 'shop',
      environment: 'production',
      source: path.join(EXAMPLES, 'runbook.yaml'),
      platform: 'single-host',
      listen: { port: 18080 },
      release: {
        command: ['node', 'server.js'],
        cwd: path.join(EXAMPLES, 'shop/releases/{version}'),
        env: { APP_VERSION: '{version}', PORT: '{port}' },
        portRange: { min: 18100, max: 18199 },
        drainMs: 2000,
      },
      health: {
        liveness: { path: '/health', expectStatus: 200 },
        readiness: { path: '/health/ready', expectStatus: 200 },
        timeoutMs: 2000,
        deadlineMs: 60_000,
      },
      smoke: [{ name: 'list items', method: 'GET', path: '/api/items', expectStatus: 200, bodyMatches: '"items"' }],
      database: { name: 'shop', migrationsDir: path.join(EXAMPLES, 'shop/migrations') },
      traffic: {
        steps: [
          { weight: 10, bakeMs: 60_000 },
          { weight: 50, bakeMs: 60_000 },
          { weight: 100, bakeMs: 0 },
        ],
      },
      analysis: {
        max5xxRate: 0.02,
        maxP95LatencyMs: 500,
        minRequests: 20,
        intervalMs: 10_000,
        failuresTolerated: 0,
        onInconclusive: 'pause',
        extendMaxMs: 60_000,
        compare: DEFAULT_COMPARE,
        cutoff: { errorLimit: 5 },
      },
      approvals: {
        gates: ['before-start', 'before-traffic', 'go-live'],
        approvers: ['alice', 'bob', 'carol'],
        fourEyes: true,
        timeoutMs: 3_600_000,
        onTimeout: 'abort',
      },
      rollback: {
        approvals: { gates: [], approvers: [], fourEyes: true, timeoutMs: 3_600_000, onTimeout: 'abort' },
        dbRestoreApprovers: ['alice', 'bob'],
      },
      signing: { unsigned: 'refuse', distinctApprovers: false },
      drill: { rtoTargetMs: 300_000, schedule: '0 3 * * 1' },
    };
    assert.deepEqual(production, expected);
    // It goes into workflow inputs and histories as JSON: nothing may be lost on the way.
    assert.deepEqual(JSON.parse(JSON.stringify(production)), production);

    const staging = resolveService(config, 'shop', 'staging');
    assert.equal(staging.platform, 'single-host');
    assert.deepEqual(staging.platform === 'single-host' && [staging.listen, staging.release.portRange], [
      { port: 18081 },
      { min: 18200, max: 18299 },
    ]);
    assert.deepEqual(staging.database, { name: 'shop_staging', migrationsDir: path.join(EXAMPLES, 'shop/migrations') });
    assert.deepEqual(staging.traffic.steps, [
      { weight: 50, bakeMs: 10_000 },
      { weight: 100, bakeMs: 0 },
    ]);
    assert.deepEqual(staging.approvals.gates, []);
    assert.deepEqual([staging.analysis.intervalMs, staging.analysis.minRequests], [5000, 5]);
  });

  it('fills in defaults and accepts plain milliseconds, compound durations and fractional rates', () => {
    const config = parseRunbookConfig(
      `version: 1\nservices:${SHOP}
    environments:
      prod:
        release: { drain: 1500 }
        health: { timeout: 250ms }
        traffic: { steps: [{ weight: 25, bake: 1h30m }, { weight: 100, bake: 90s }] }
        analysis: { max5xxRate: 0.005, interval: 1m }
        approvals: { gates: [go-live, before-start], approvers: [alice], timeout: 7d, onTimeout: proceed }`,
      SOURCE,
    );
    const r = resolveService(config, 'shop', 'prod');
    assert.ok(r.platform === 'single-host');
    assert.equal(r.release.drainMs, 1500);
    assert.deepEqual(r.release.env, { PORT: '{port}' });
    assert.equal(r.release.cwd, path.resolve('/srv/runbooks/shop/releases/{version}'));
    assert.deepEqual(r.health, {
      liveness: { path: '/health', expectStatus: 200 },
      readiness: { path: '/health/ready', expectStatus: 200 },
      timeoutMs: 250,
      deadlineMs: 60_000,
    });
    assert.deepEqual(r.smoke, []);
    assert.equal(r.database, undefined);
    assert.equal(r.drill, undefined);
    assert.ok(!('database' in r) && !('drill' in r), 'absent optional sections are absent keys, not undefined');
    assert.deepEqual(r.traffic.steps, [
      { weight: 25, bakeMs: 5_400_000 },
      { weight: 100, bakeMs: 90_000 },
    ]);
    assert.deepEqual(r.analysis, {
      max5xxRate: 0.005,
      maxP95LatencyMs: 500,
      minRequests: 20,
      intervalMs: 60_000,
      failuresTolerated: 0,
      // approvers are listed: a step without evidence pauses for one of them
      onInconclusive: 'pause',
      extendMaxMs: 60_000,
      compare: DEFAULT_COMPARE,
      cutoff: { errorLimit: 5 },
    });
    // Gates come out in the order a deploy reaches them, whatever the order written.
    assert.deepEqual(r.approvals, {
      gates: ['before-start', 'go-live'],
      approvers: ['alice'],
      fourEyes: true,
      timeoutMs: 7 * 86_400_000,
      onTimeout: 'proceed',
    });
  });

  it('base: relative paths (release cwd, migrations, signersFile) start from the folder it names, not the file', () => {
    const elsewhere = path.join(os.tmpdir(), 'generated', 'runbook.yaml');
    const shop = `${SHOP}\n    environments: { default: {} }`;
    const text = `version: 1\nbase: ${EXAMPLES}\nsignersFile: shop/no-such-signers\nservices:${shop}\n`;
    const problems = (() => {
      try {
        parseRunbookConfig(text, elsewhere);
      } catch (err) {
        return (err as RunbookConfigError).problems;
      }
      return [];
    })();
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', new RegExp(`^signersFile: .*${path.join(EXAMPLES, 'shop/no-such-signers')}`));
    const config = parseRunbookConfig(text.replace('signersFile: shop/no-such-signers\n', ''), elsewhere);
    assert.equal(config.baseDir, EXAMPLES);
    const resolved = resolveService(config, 'shop', 'default');
    assert.ok(resolved.platform === 'single-host');
    assert.equal(resolved.release.cwd, path.join(EXAMPLES, 'shop/releases/{version}'));
    assert.match(
      problemsOf(`version: 1\nbase: no-such-folder\nservices:${shop}\n`).join('\n'),
      /^base: the folder \/srv\/runbooks\/no-such-folder does not exist/,
    );
  });

  it('says when the file is missing and how to point at one', () => {
    const missing = path.join(EXAMPLES, 'no-such-runbook.yaml');
    assert.throws(
      () => loadRunbookConfig(missing),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.message, `runbook config not found: ${missing}`);
        assert.match(err.fix ?? '', /--config <file>/);
        assert.match(err.fix ?? '', /RUNBOOK_CONFIG/);
        return true;
      },
    );
  });

  it('names the line and column of a YAML syntax error', () => {
    const yaml = ['version: 1', 'services:', '  shop:', '    platform: single-host', '    listen: { port: 18080'].join(
      '\n',
    );
    const problems = problemsOf(yaml);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^line 5, column \d+: .+ \(YAML syntax\)/);
    assert.match(problems[0]!, /listen: \{ port: 18080/, 'shows the offending line');
  });

  it('reports a duplicate key as a YAML error with its line', () => {
    const problems = problemsOf('version: 1\nservices: {}\nversion: 1\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^line 3, column 1: Map keys must be unique \(YAML syntax\)/);
  });

  it('rejects an empty file and one that is not a map', () => {
    assert.deepEqual(problemsOf(''), ['(file): is empty; it needs `version: 1` and `services:`']);
    assert.deepEqual(problemsOf('- version: 1\n'), ['(file): must be a map, got [{"version":1}]']);
  });
});

describe('runbook config: problems', () => {
  it('reports every problem of a file with several mistakes, each on its own line with its path', () => {
    const yaml = `version: 2
servcies: {}
services:
  api:
    platform: singlehost
    listen: { port: 18150 }
    release:
      command: node server.js
      cwd: api/{verison}
      env: { PORT: '{port}' }
      portRange: [18100, 18199]
      drain: 2 seconds
    heath: {}
    health:
      liveness: { path: health }
      readiness: { path: /ready, expectStatus: 700 }
      timeout: 2s
      deadline: 1s
    traffic:
      steps: [{ weight: 50, bake: 1m }, { weight: 150 }, { weight: 40 }]
    analysis: { max5xxRate: 2, maxP95LatencyMs: 500 }
    approvals: { gates: [go-live, go-live], fourEyes: yes, onTimeout: wait }
    environments:
      staging: { traffic: { steps: [{ weight: 100, bake: 3s }] } }
      Prod: {}
`;
    assert.deepEqual(problemsOf(yaml), [
      'version: must be 1 (the only format version), got 2',
      'servcies: unknown key (did you mean "services"?); allowed here: version, services, signers, signersFile, base, groups',
      `services.api.environments.Prod: environment names must be lowercase letters, digits and '-', starting with a letter, at most 63 characters, got "Prod"`,
      'services.api.platform: must be one of single-host, aws-ecs, got "singlehost" (did you mean "single-host"?)',
      'services.api.listen.port: 18150 is inside release.portRange 18100..18199; the frontend port must be outside the ports releases listen on',
      'services.api.release.command: must be a list of arguments (argv, no shell), e.g. ["node", "server.js"], got "node server.js"',
      'services.api.release.cwd: unknown placeholder {verison} (did you mean {version}?); allowed here: {version}',
      'services.api.release.drain: must be a duration like 500ms, 10s, 1m, 1h, 7d (or a number of milliseconds), got "2 seconds"',
      'services.api.health.liveness.path: must be a URL path starting with /, e.g. /health, got "health"',
      'services.api.health.readiness.expectStatus: must be 100..599 (an HTTP status), got 700',
      'services.api.health.timeout: 2s must be shorter than health.deadline (1s)',
      'services.api.traffic.steps[1].weight: must be 1..100, got 150',
      "services.api.traffic.steps[2].weight: must be more than the previous step's weight 50: weights increase strictly and the last is 100 (in environment Prod)",
      'services.api.traffic.steps[2].weight: the last step must be 100 (all traffic on the new release), got 40 (in environment Prod)',
      'services.api.analysis.max5xxRate: must be a fraction 0..1, got 2; write 2% for 2 percent',
      'services.api.approvals.fourEyes: must be true or false, got "yes"',
      'services.api.approvals.onTimeout: must be one of abort, proceed, got "wait"',
      'services.api.approvals.gates[1]: "go-live" is listed twice; list each once',
      'services.api.approvals.approvers: must list at least one approver while approvals.gates is not empty (go-live); nobody could approve otherwise',
      'services.api.heath: unknown key (did you mean "health"?); allowed here: platform, listen, aws, release, health, smoke, database, traffic, analysis, approvals, rollback, signing, drill, backup, environments',
      'services.api.environments.staging.traffic.steps[0].bake: 3s is shorter than analysis.interval (10s), so no analysis window would complete; use 0 or at least 10s',
    ]);
  });

  it('refuses an analysis interval shorter than Temporal can time (1s)', () => {
    const problems = problemsOf(
      `version: 1\nservices:${SHOP.replace('maxP95LatencyMs: 500 }', 'maxP95LatencyMs: 500, interval: 250ms }')}\n    environments: { production: {} }\n`,
    );
    assert.deepEqual(problems, [
      'services.shop.analysis.interval: must be at least 1s (Temporal\'s timers have a granularity of about 1s), got "250ms"',
    ]);
  });

  it('analysis.compare.baseline: auto is left out of the plan, on/off kept, anything else refused with the choices', () => {
    const withBaseline = (v: string) =>
      `version: 1\nservices:${SHOP.replace('maxP95LatencyMs: 500 }', `maxP95LatencyMs: 500, compare: { baseline: ${v} } }`)}\n    environments: { production: {} }\n`;
    const compareOf = (v: string) =>
      resolveService(parseRunbookConfig(withBaseline(v), '/tmp/runbook.yaml'), 'shop', 'production').analysis.compare;
    assert.deepEqual(compareOf('auto'), DEFAULT_COMPARE);
    assert.deepEqual(compareOf('off'), { ...DEFAULT_COMPARE, baseline: 'off' });
    assert.deepEqual(compareOf('on'), { ...DEFAULT_COMPARE, baseline: 'on' });
    assert.deepEqual(problemsOf(withBaseline('always')), [
      'services.shop.analysis.compare.baseline: must be one of auto, on, off (compare the canary with a baseline: a fresh process of the stable version at the canary\'s weight), got "always"',
    ]);
  });

  it('reports a weight out of range as `<path>: must be 1..100`', () => {
    const problems = problemsOf(
      `version: 1\nservices:${SHOP.replace('steps: [{ weight: 10, bake: 1m }, { weight: 100 }]', 'steps: [{ weight: 10 }, { weight: 0 }, { weight: 100 }]')}\n    environments: { production: {} }\n`,
    );
    assert.deepEqual(problems, ['services.shop.traffic.steps[1].weight: must be 1..100, got 0']);
  });

  it('keeps secrets out: no URLs, no secret-looking variables', () => {
    const yaml = `version: 1\nservices:${SHOP.replace("env: { PORT: '{port}' }", "env: { PORT: '{port}', API_TOKEN: abc, DATABASE_URL: x, UPSTREAM: 'https://u:hunter2@example.com/' }")}
    database: { name: shop, url: 'postgres://shop:secret@localhost/shop', urlEnv: 'postgres://shop:secret@localhost/shop' }
    environments: { production: {} }
`;
    assert.deepEqual(problemsOf(yaml), [
      "services.shop.release.env.API_TOKEN: looks like a secret; runbook.yaml is copied into workflow histories, so it must not hold secrets: keep it in the worker's environment instead",
      'services.shop.release.env.DATABASE_URL: must not be set here: runbook.yaml is copied into workflow histories, so it must not hold secrets; the worker passes the release its database URL (see database.urlEnv)',
      'services.shop.release.env.UPSTREAM: holds a URL with a password; runbook.yaml is copied into workflow histories, so it must not hold secrets: keep the secret on the worker',
      'services.shop.database.urlEnv: must name an environment variable on the worker (e.g. SHOP_DATABASE_URL), not hold the URL: runbook.yaml is copied into workflow histories, so it must not hold secrets',
      'services.shop.database.url: unknown key; runbook.yaml is copied into workflow histories, so it must not hold secrets: put the URL in an environment variable on the worker and name it in database.urlEnv',
    ]);
  });

  it('checks ports: bounds, range order, and the frontend port outside the release range', () => {
    const yaml = `version: 1\nservices:${SHOP.replace('listen: { port: 18080 }', 'listen: { port: 80 }').replace('portRange: [18100, 18199]', 'portRange: [18199, 18100]')}
    environments: { production: {} }
`;
    assert.deepEqual(problemsOf(yaml), [
      'services.shop.listen.port: must be 1024..65535 (an unprivileged TCP port), got 80',
      'services.shop.release.portRange: must be [low, high] with low <= high, got [18199,18100]',
    ]);
  });

  it('requires the platform blocks: listen and release for single-host, aws for aws-ecs', () => {
    assert.deepEqual(
      problemsOf(`version: 1
services:
  shop:
    platform: single-host
    health: { liveness: { path: /health }, readiness: { path: /ready } }
    traffic: { steps: [{ weight: 100 }] }
    analysis: { max5xxRate: 1%, maxP95LatencyMs: 300 }
    environments: { production: {} }
`),
      [
        'services.shop.listen: is required for platform single-host: the stable frontend port, e.g. { port: 18080 }',
        'services.shop.release: is required for platform single-host: how to start a release { command, cwd, env, portRange, drain }',
      ],
    );
    assert.deepEqual(
      problemsOf(`version: 1\nservices:${SHOP.replace('platform: single-host', 'platform: aws-ecs')}
    environments: { production: {} }
`),
      [
        'services.shop.listen: is only used by platform single-host; remove it (in an environment override, `listen: null` removes it)',
        'services.shop.aws: is required for platform aws-ecs: the ECS cluster, service and task settings',
        'services.shop.release: is only used by platform single-host; remove it (in an environment override, `release: null` removes it)',
      ],
    );
  });

  it('requires approvers when gates are set, and accepts a single approver with four-eyes', () => {
    const withApprovals = (approvals: string) =>
      `version: 1\nservices:${SHOP}\n    approvals: ${approvals}\n    environments: { production: {} }\n`;
    assert.deepEqual(problemsOf(withApprovals('{ gates: [go-live] }')), [
      'services.shop.approvals.approvers: must list at least one approver while approvals.gates is not empty (go-live); nobody could approve otherwise',
    ]);
    assert.deepEqual(problemsOf(withApprovals('{ gates: [go-live, after-traffic], approvers: [alice, alice] }')), [
      'services.shop.approvals.gates[1]: must be one of before-start, before-traffic, go-live, got "after-traffic" (did you mean "before-traffic"?)',
      'services.shop.approvals.approvers[1]: "alice" is listed twice; list each once',
    ]);
    const config = parseRunbookConfig(
      withApprovals('{ gates: [go-live], approvers: [alice], fourEyes: true }'),
      SOURCE,
    );
    assert.deepEqual(resolveService(config, 'shop', 'production').approvals.approvers, ['alice']);
  });

  it('requires environments, and reports a base value only for the environments where it is wrong', () => {
    assert.deepEqual(problemsOf(`version: 1\nservices:${SHOP}\n`), [
      'services.shop.environments: is required: a map of the environments this service deploys to and their overrides, e.g. { staging: {}, production: {} }',
    ]);
    const yaml = `version: 1\nservices:${SHOP}
    environments:
      staging: { release: { portRange: [18000, 18099] } }
      qa: { release: { portRange: [18000, 18099] } }
      production: {}
`;
    assert.deepEqual(problemsOf(yaml), [
      'services.shop.listen.port: 18080 is inside release.portRange 18000..18099; the frontend port must be outside the ports releases listen on (in environments staging, qa)',
    ]);
  });

  it('still checks a base value that every environment overrides', () => {
    const yaml = `version: 1\nservices:${SHOP.replace('{ weight: 10, bake: 1m }', '{ weight: 10, bake: soon }')}
    environments:
      staging: { traffic: { steps: [{ weight: 100 }] } }
      production: { traffic: { steps: [{ weight: 50 }, { weight: 100 }] } }
`;
    assert.deepEqual(problemsOf(yaml), [
      'services.shop.traffic.steps[0].bake: must be a duration like 500ms, 10s, 1m, 1h, 7d (or a number of milliseconds), got "soon"',
    ]);
  });

  it('reports a problem in an override at its path under environments, with a "did you mean"', () => {
    const yaml = `version: 1\nservices:${SHOP}
    environments:
      staging: { trafic: { steps: [{ weight: 100 }] }, analysis: { minRequests: -1 } }
      production: null
`;
    assert.deepEqual(problemsOf(yaml), [
      'services.shop.environments.staging.analysis.minRequests: must be >= 0, got -1',
      'services.shop.environments.staging.trafic: unknown key (did you mean "traffic"?); allowed here: platform, listen, aws, release, health, smoke, database, traffic, analysis, approvals, rollback, signing, drill, backup',
    ]);
  });

  describe('judged steps (analysis.onInconclusive, the evidence, the judge)', () => {
    const withAnalysis = (analysis: string, approvals = '') =>
      `version: 1\nservices:${SHOP.replace('analysis: { max5xxRate: 2%, maxP95LatencyMs: 500 }', `analysis: ${analysis}${approvals}`)}\n    environments: { production: {} }\n`;

    it('defaults to pause with approvers listed, to fail without any, and says the need per step in the plan', () => {
      const withApprovers = resolveService(
        parseRunbookConfig(
          withAnalysis(
            '{ max5xxRate: 2%, maxP95LatencyMs: 500, expectedRps: 20 }',
            '\n    approvals: { approvers: [alice] }',
          ),
          SOURCE,
        ),
        'shop',
        'production',
      );
      assert.equal(withApprovers.analysis.onInconclusive, 'pause');
      assert.equal(withApprovers.analysis.expectedRps, 20);
      const nobody = resolveService(
        parseRunbookConfig(withAnalysis('{ max5xxRate: 2%, maxP95LatencyMs: 500 }'), SOURCE),
        'shop',
        'production',
      );
      assert.equal(nobody.analysis.onInconclusive, 'fail');
    });

    it('refuses pause without approvers, an unknown action, and a judge outside its ranges, naming each field', () => {
      assert.deepEqual(problemsOf(withAnalysis('{ max5xxRate: 2%, maxP95LatencyMs: 500, onInconclusive: pause }')), [
        'services.shop.analysis.onInconclusive: is pause, but approvals.approvers is empty: nobody could decide about a step without evidence; list approvers, or choose extend, fail or proceed',
      ]);
      assert.deepEqual(
        problemsOf(
          withAnalysis(
            '{ max5xxRate: 2%, maxP95LatencyMs: 500, onInconclusive: wait, compare: { confidence: 1.5, max5xxRatio: 0.5 } }',
          ),
        ),
        [
          'services.shop.analysis.onInconclusive: must be one of pause, extend, fail, proceed (what a step without enough evidence does), got "wait"',
          'services.shop.analysis.compare.max5xxRatio: must be a number from 1 to 1000 (e.g. 2: the canary may fail twice as often as the stable release), got 0.5',
          'services.shop.analysis.compare.confidence: must be a number from 0.5 to 0.9999 (e.g. 0.99: one false alarm in 100 healthy steps), got 1.5',
        ],
      );
    });

    it('analysis.cutoff: on with errorLimit 5 unless set; enabled: false leaves it out of the plan; a bad limit is named', () => {
      const analysisOf = (analysis: string) =>
        resolveService(parseRunbookConfig(withAnalysis(analysis), SOURCE), 'shop', 'production').analysis;
      assert.deepEqual(analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500 }').cutoff, { errorLimit: 5 });
      assert.deepEqual(analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { errorLimit: 3 } }').cutoff, {
        errorLimit: 3,
      });
      const off = analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { enabled: false } }');
      assert.equal('cutoff' in off, false);
      assert.deepEqual(
        problemsOf(withAnalysis('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { errorLimit: 0, after: 3 } }')),
        [
          'services.shop.analysis.cutoff.errorLimit: must be 1..1000 (consecutive errors of the canary), got 0',
          'services.shop.analysis.cutoff.after: unknown key; allowed here: enabled, errorLimit, rate',
        ],
      );
    });

    it('analysis.cutoff.rate: the default rule left out of the plan, its own or off in it; a minimum it can never reach is named', () => {
      const analysisOf = (analysis: string) =>
        resolveService(parseRunbookConfig(withAnalysis(analysis), SOURCE), 'shop', 'production').analysis;
      assert.deepEqual(analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { rate: {} } }').cutoff, {
        errorLimit: 5,
        rate: { max5xxRate: 0.4, overRequests: 20, minErrors: 3 },
      });
      assert.deepEqual(
        analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { rate: { max5xxRate: 50%, minErrors: 4 } } }')
          .cutoff,
        { errorLimit: 5, rate: { max5xxRate: 0.5, overRequests: 20, minErrors: 4 } },
      );
      assert.deepEqual(
        analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { rate: { enabled: false } } }').cutoff,
        { errorLimit: 5, rate: false },
      );
      assert.deepEqual(
        problemsOf(
          withAnalysis('{ max5xxRate: 2%, maxP95LatencyMs: 500, cutoff: { rate: { overRequests: 5, minErrors: 6 } } }'),
        ),
        [
          'services.shop.analysis.cutoff.rate.minErrors: must be at most overRequests (5): 6 errors can never come in 5 requests',
        ],
      );
    });

    it('analysis.compare.warmup: left out of the plan unless set (the workflow then picks by the comparison side)', () => {
      const analysisOf = (analysis: string) =>
        resolveService(parseRunbookConfig(withAnalysis(analysis), SOURCE), 'shop', 'production').analysis;
      assert.equal(analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500 }').compare?.warmupMs, undefined);
      assert.equal(
        analysisOf('{ max5xxRate: 2%, maxP95LatencyMs: 500, compare: { warmup: 2s } }').compare?.warmupMs,
        2_000,
      );
    });
  });
});

describe('runbook config: signers and groups (issue 12)', () => {
  it('approvers name groups, expanded once; signers are allowed_signers lines; a bad one is reported where it is', () => {
    const key = testKey('alice');
    const text = (signers: string[]) =>
      [
        'version: 1',
        `signers: ${JSON.stringify(signers)}`,
        'groups: { release-managers: [alice, bob] }',
        'services:',
        '  api:',
        '    platform: single-host',
        '    listen: { port: 18080 }',
        '    release: { command: [node, s.js], cwd: ".", env: { PORT: "{port}" }, portRange: [18100, 18199] }',
        '    health: { liveness: { path: /h }, readiness: { path: /r } }',
        '    traffic: { steps: [{ weight: 100 }] }',
        '    analysis: { max5xxRate: 1%, maxP95LatencyMs: 500 }',
        '    approvals: { gates: [before-start], approvers: [group:release-managers, bob, carol] }',
        '    environments: { production: {}, staging: { signing: { unsigned: accept-unverified } } }',
      ].join('\n');
    const config = parseRunbookConfig(text([key.line('alice,Alice@example.com')]), '/tmp/runbook.yaml');
    assert.deepEqual(config.signers[0]?.principals, ['alice', 'alice@example.com']);
    const production = resolveService(config, 'api', 'production');
    assert.deepEqual(production.approvals.approvers, ['alice', 'bob', 'carol']);
    assert.deepEqual(production.signing, { unsigned: 'refuse', distinctApprovers: false });
    assert.equal(resolveService(config, 'api', 'staging').signing?.unsigned, 'accept-unverified');
    assert.throws(
      () => parseRunbookConfig(text(['alice ssh-rsa AAAAB3NzaC1yc2E']), '/tmp/runbook.yaml'),
      /signers\[0\]: .*ssh-rsa is not supported/,
    );
    const unknown = text([]).replace('group:release-managers', 'group:release-manager');
    assert.throws(
      () => resolveService(parseRunbookConfig(unknown, '/tmp/runbook.yaml'), 'api', 'production'),
      /group:release-manager is not defined; groups: release-managers/,
    );
  });
});
