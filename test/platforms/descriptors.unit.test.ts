import assert from 'node:assert/strict';
import path from 'node:path';
import { platformPlanOf } from '../../src/platforms/descriptors';
import { checkVersion } from '../../src/platforms/preflight';
import { createPlatformRegistry, targetOf } from '../../src/platforms/registry';
import type { PlatformParts } from '../../src/platforms/types';
import { loadRunbookConfig, parseRunbookConfig, resolveService } from '../../src/runbook-config';
import type { AwsEcsService } from '../../src/shared/service-plan';

const ELB = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012';
const AWS_YAML = `version: 1
services:
  shop:
    platform: aws-ecs
    aws:
      region: eu-west-1
      cluster: prod
      services: { blue: shop-blue, green: shop-green }
      container: app
      image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}
      targetGroups: { blue: ${ELB}:targetgroup/shop-blue/6d0ecf831eec9f09, green: ${ELB}:targetgroup/shop-green/2ab4c2c5b1f7a3e1 }
      listenerRule: ${ELB}:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee
      testListener: ${ELB}:listener/app/shop/50dc6c495c0c9188/0467ef3c8400ae65
      rolloutTimeout: 10m
      drain: 20s
      rds: { cluster: shop-aurora, pollInterval: 45s, drill: { instanceClass: db.r6g.large } }
    health: { liveness: { path: /health }, readiness: { path: /health/ready } }
    database: { name: shop, urlEnv: SHOP_DATABASE_URL }
    traffic: { steps: [{ weight: 10, bake: 5m }, { weight: 100 }] }
    analysis: { max5xxRate: 1%, maxP95LatencyMs: 300 }
    environments:
      production: {}
`;

const singleHost = () => {
  const s = resolveService(loadRunbookConfig(path.join(__dirname, '../../examples/runbook.yaml')), 'shop', 'staging');
  assert.equal(s.platform, 'single-host');
  return s;
};
const awsShop = () => resolveService(parseRunbookConfig(AWS_YAML, '/srv/runbook.yaml'), 'shop', 'production');

describe('the platform seam', () => {
  it('single-host: quick starts, the stable port, the release spec, restores inside the activity, the app on the copy', () => {
    const plan = singleHost();
    if (plan.platform !== 'single-host') throw new Error('fixture');
    const p = platformPlanOf(plan);
    assert.deepEqual(p.target, { name: 'single-host' });
    assert.equal(p.listenPort, plan.listen.port);
    assert.deepEqual(p.release, plan.release);
    assert.equal(p.drainMs, plan.release.drainMs);
    assert.equal(p.releaseStartTimeoutMs, undefined, 'a local process starts within a quick activity');
    assert.equal(p.drillStartsApp, true);
    assert.equal(p.words.restoreInto('shop_restore_x', 2), 'shop_restore_x (pg_restore -j2)');
    assert.equal(
      p.words.swapped('shop', 'shop_restore_x', 'shop_replaced_y'),
      'shop is the restored copy; the replaced database is kept as shop_replaced_y',
    );
  });

  it('aws-ecs: rollouts as long heartbeated starts, no frontend port, RDS restores polled at its interval, no app on the copy', () => {
    const plan = awsShop() as AwsEcsService;
    const p = platformPlanOf(plan);
    assert.deepEqual(p.target, { name: 'aws-ecs', aws: plan.aws });
    assert.equal(p.listenPort, 0);
    assert.equal(p.release, undefined);
    assert.equal(p.drainMs, 20_000);
    assert.equal(p.releaseStartTimeoutMs, 10 * 60_000 + 60_000, 'the rollout timeout plus a margin');
    assert.equal(p.restorePollMs, 45_000);
    assert.equal(p.drillStartsApp, false);
    assert.equal(p.metricsLagMs, plan.aws.metricsDelayMs + 60_000, "a judged step's last minutes, published");
    assert.equal(
      p.words.restoreInto('shop_restore_x', 2),
      'RDS cluster shop-restore-x (RestoreDBClusterFromSnapshot)',
      'named as the RDS resource is',
    );
    assert.match(
      p.words.swapped('shop', 'shop_restore_x', 'r'),
      /shop-aurora is kept \(set aws\.rds\.cluster and SHOP_DATABASE_URL to shop-restore-x\)/,
    );
    assert.deepEqual(JSON.parse(JSON.stringify(p.target)), p.target, 'the target is plain JSON for activity inputs');
  });

  it('reads the platform of old activity requests: {aws} is aws-ecs, nothing is single-host', () => {
    const aws = (awsShop() as AwsEcsService).aws;
    assert.deepEqual(targetOf({ aws }), { name: 'aws-ecs', aws });
    assert.deepEqual(targetOf({}), { name: 'single-host' });
    assert.deepEqual(targetOf(undefined), { name: 'single-host' });
    assert.deepEqual(targetOf({ platform: { name: 'single-host' }, aws }), { name: 'single-host' }, 'platform wins');
  });

  it('the registry builds each platform by its own factory, once per settings, and knows what it lacks', () => {
    const built: string[] = [];
    const parts = (name: string) => ({ name }) as unknown as PlatformParts;
    const registry = createPlatformRegistry({
      'single-host': () => (built.push('single-host'), parts('single-host')),
      'aws-ecs': (t) => (built.push(t.aws.cluster), parts(t.aws.cluster)),
    });
    const aws = (awsShop() as AwsEcsService).aws;
    const a = registry.get({ name: 'aws-ecs', aws });
    assert.equal(registry.get({ name: 'aws-ecs', aws: { ...aws } }), a, 'same settings: the same platform');
    assert.notEqual(registry.get({ name: 'aws-ecs', aws: { ...aws, cluster: 'other' } }), a);
    assert.equal(registry.get({ name: 'single-host' }), registry.get({ name: 'single-host' }));
    assert.deepEqual(built, ['prod', 'other', 'single-host']);
    assert.equal(createPlatformRegistry({}).get({ name: 'single-host' }), undefined);
  });

  it('checks a version the way its platform uses it', () => {
    assert.throws(() => checkVersion(awsShop(), 'v2 beta', '--version'), /becomes the image tag of .*shop:\{version\}/);
    checkVersion(awsShop(), 'v2.1_rc-1', '--version');
    checkVersion(singleHost(), 'v2', '--version');
  });
});
