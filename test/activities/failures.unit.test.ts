/** The one translation of platform errors into Temporal failures (src/activities/failures.ts), without a server. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { toActivityFailure, withActivityFailures } from '../../src/activities/failures';
import { createReleaseRunner } from '../../src/platforms/single-host/release-runner';
import { PlatformError } from '../../src/platforms/types';

describe('toActivityFailure and withActivityFailures', () => {
  it('turns a permanent PlatformError into a non-retryable ApplicationFailure of its type, message and details', () => {
    const err = new PlatformError('ecs:UpdateService on ECS service shop-green: AccessDeniedException: no', {
      type: 'AwsAccessDenied',
      permanent: true,
      fix: "grant the worker's IAM role ecs:UpdateService",
      details: [{ code: 'AccessDeniedException' }],
    });
    assert.equal(err.name, 'PlatformError');
    const failure = toActivityFailure(err);
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'AwsAccessDenied');
    assert.equal(failure.nonRetryable, true);
    assert.equal(
      failure.message,
      "ecs:UpdateService on ECS service shop-green: AccessDeniedException: no; fix: grant the worker's IAM role ecs:UpdateService",
    );
    assert.deepEqual(failure.details, [{ code: 'AccessDeniedException' }]);
    assert.equal(failure.stack, err.stack, 'the stack says where the platform threw it');
  });

  it('keeps a PlatformError that is not permanent retryable, with its type', () => {
    const failure = toActivityFailure(
      new PlatformError('snapshot s-1 of "shop" is being taken by another worker right now', {
        type: 'SnapshotError',
        permanent: false,
      }),
    );
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'SnapshotError');
    assert.equal(failure.nonRetryable, false);
    assert.equal(failure.message, 'snapshot s-1 of "shop" is being taken by another worker right now');
  });

  it('leaves anything else as it is', () => {
    const plain = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    assert.equal(toActivityFailure(plain), plain);
    const failure = ApplicationFailure.nonRetryable('no', 'ServiceBusy');
    assert.equal(toActivityFailure(failure), failure);
    assert.equal(toActivityFailure('text'), 'text');
  });

  it('wraps every activity: results pass, PlatformErrors leave as ApplicationFailures', async () => {
    const activities = withActivityFailures({
      async ok(n: number) {
        return n + 1;
      },
      async refused() {
        throw new PlatformError('setWeights on route shop/prod: the percentages must sum to 100, got 110 (a=110)', {
          type: 'InvalidTrafficSplit',
          permanent: true,
        });
      },
    });
    assert.equal(await activities.ok(1), 2);
    await assert.rejects(activities.refused(), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'InvalidTrafficSplit');
      assert.equal(err.nonRetryable, true);
      return true;
    });
  });

  it('single-host release starts fail with ReleaseStartFailed (permanent), as the workflows expect', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-releases-'));
    try {
      const runner = createReleaseRunner({ dir, releaseUrlFor: async () => '' });
      const spec = { service: 'shop', environment: 'prod', releaseId: 'shop-1-0-0-aaaa', version: '1.0.0' };
      const err = toActivityFailure(await runner.start(spec).catch((e: unknown) => e));
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, 'ReleaseStartFailed');
      assert.equal(err.nonRetryable, true);
      assert.equal(err.message, 'shop: no release settings (platform single-host)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
