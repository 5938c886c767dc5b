import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createPlanActivities } from '../../src/activities/plan';
import { loadRunbookConfig, planDigest, resolveService } from '../../src/runbook-config';
import type { PlanRequest, ResolvedPlan } from '../../src/shared/request';
import type { SingleHostService } from '../../src/shared/service-plan';
import { mockActivityEnv } from './mock-env';

const examples = path.join(__dirname, '../../examples/runbook.yaml');

const resolve = (config: string | undefined, req: PlanRequest): Promise<ResolvedPlan> =>
  mockActivityEnv().run(createPlanActivities({ runbookConfig: config }).resolvePlan, req) as Promise<ResolvedPlan>;

/** The failure resolvePlan throws for `req`, checked to be non-retryable and of `type`. */
async function refusal(config: string | undefined, req: PlanRequest, type: string): Promise<string> {
  try {
    await resolve(config, req);
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, true);
    return err.message;
  }
  assert.fail('resolvePlan accepted the request');
}

describe('resolvePlan (unit): the plan comes from the worker’s runbook config', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-plan-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const production = () => resolveService(loadRunbookConfig(examples), 'shop', 'production') as SingleHostService;

  it("resolves the service in the environment from the worker's file, with its digest (the history records both)", async () => {
    const { digest, fieldDigests } = planDigest(production());
    const resolved = await resolve(examples, {
      service: 'shop',
      environment: 'production',
      kind: 'deploy',
      configDigest: digest,
      fieldDigests,
    });
    assert.deepEqual(resolved.plan, production());
    assert.equal(resolved.digest, digest);
    assert.equal(resolved.source, examples);
    assert.deepEqual(resolved.fieldDigests, fieldDigests);
  });

  it('without a digest (a preview) nothing is compared', async () => {
    const resolved = await resolve(examples, {
      service: 'shop',
      environment: 'staging',
    });
    assert.equal(resolved.plan.environment, 'staging');
  });

  it('refuses a previewed digest that is not its plan: names the fields that differ and how to update', async () => {
    const plan = production();
    const previewed = planDigest({
      ...plan,
      approvals: { ...plan.approvals, gates: [] },
      release: { ...plan.release, command: ['sh', '-c', 'touch /tmp/marker'] },
    });
    const message = await refusal(
      examples,
      {
        service: 'shop',
        environment: 'production',
        kind: 'deploy',
        configDigest: previewed.digest,
        fieldDigests: previewed.fieldDigests,
      },
      'PlanDigestMismatch',
    );
    assert.match(
      message,
      /the plan of shop\/production in the worker's runbook config \(.*examples\/runbook\.yaml\) is not the one you previewed: approvals\.gates, release\.command differ/,
    );
    assert.match(message, /nothing was started or changed/);
    assert.match(message, /`runbook deploy shop --env production --version <version> --dry-run`/);
    const bare = await refusal(
      examples,
      { service: 'shop', environment: 'production', kind: 'rollback', configDigest: previewed.digest },
      'PlanDigestMismatch',
    );
    assert.match(bare, /is not the one you previewed: the plan differs \(the worker's sha256:.*, yours sha256:/);
    assert.match(bare, /`runbook rollback shop --env production --dry-run`/);
  });

  it("refuses an unknown service or environment in the config's own words", async () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    assert.match(
      await refusal(examples, { service: 'shpo', environment: 'staging', configDigest: digest }, 'PlanNotFound'),
      /unknown service "shpo" \(did you mean "shop"\?\); .*runbook\.yaml defines: shop, shop-tools; fix: use one of shop, shop-tools/,
    );
    assert.match(
      await refusal(examples, { service: 'shop', environment: 'qa', configDigest: digest }, 'PlanNotFound'),
      /service "shop" has no environment "qa"; its environments: staging, demo, production; fix: use one of/,
    );
  });

  it('refuses when the worker has no config, cannot read it, or it is invalid', async () => {
    const req = { service: 'shop', environment: 'staging' };
    assert.match(
      await refusal(undefined, req, 'RunbookConfigUnusable'),
      /this worker has no runbook config \(RUNBOOK_CONFIG is not set/,
    );
    assert.match(
      await refusal(path.join(dir, 'missing.yaml'), req, 'RunbookConfigUnusable'),
      /runbook config not found: .*missing\.yaml/,
    );
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, readFileSync(examples, 'utf8').replace('maxP95LatencyMs: 500', 'maxP95LatencyMs: fast'));
    assert.match(
      await refusal(broken, req, 'RunbookConfigUnusable'),
      /cannot be used: .*broken\.yaml: 1 problem:\n {2}services\.shop\.analysis\.maxP95LatencyMs/,
    );
  });
});
