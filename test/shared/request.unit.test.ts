import assert from 'node:assert/strict';
import { deployRequestSchema, drillRequestSchema, parseRequest, rollbackRequestSchema } from '../../src/shared/request';

const digest = `sha256:${'a'.repeat(64)}`;
const deploy = { service: 'shop', environment: 'staging', version: 'v2', requestedBy: 'dave', configDigest: digest };

const refused = (schema: Parameters<typeof parseRequest>[0], input: unknown): string => {
  const parsed = parseRequest(schema, 'deploy', input);
  assert.equal(parsed.ok, false, `accepted ${JSON.stringify(input).slice(0, 200)}`);
  return parsed.ok ? '' : parsed.message;
};

describe('runbook requests (shared/request.ts)', () => {
  it('accepts a request: service, environment, version, who, why and the previewed digest', () => {
    const parsed = parseRequest(deployRequestSchema, 'deploy', {
      ...deploy,
      reason: 'change 42',
      fieldDigests: { 'approvals.gates': '0123456789abcdef', smoke: 'fedcba9876543210' },
    });
    assert.ok(parsed.ok);
    assert.equal(parsed.request.version, 'v2');
  });

  it("takes the requester's declaration of the version's migrations, and refuses another word", () => {
    const parsed = parseRequest(deployRequestSchema, 'deploy', { ...deploy, migrations: 'breaking' });
    assert.ok(parsed.ok);
    assert.equal(parsed.request.migrations, 'breaking');
    assert.match(
      refused(deployRequestSchema, { ...deploy, migrations: 'risky' }),
      /migrations: must be backward or breaking/,
    );
  });

  it('refuses a request that carries a plan, of any shape, with its own message', () => {
    for (const plan of [{ approvals: { gates: [] } }, null, 'x', []]) {
      assert.match(
        refused(deployRequestSchema, { ...deploy, plan }),
        /a deploy request carries no plan: the worker resolves the plan .* from its own runbook config/,
      );
    }
  });

  it('bounds every field: names, versions, who (64), why (500), the digests', () => {
    assert.match(
      refused(deployRequestSchema, { ...deploy, service: 'Shop!' }),
      /^invalid deploy request: service: must be a service name/,
    );
    assert.match(refused(deployRequestSchema, { ...deploy, environment: 'x'.repeat(64) }), /environment:/);
    assert.match(refused(deployRequestSchema, { ...deploy, version: '../../etc' }), /version: must be a version/);
    assert.match(refused(deployRequestSchema, { ...deploy, version: 'v'.repeat(129) }), /version:/);
    assert.match(
      refused(deployRequestSchema, { ...deploy, requestedBy: 'd'.repeat(65) }),
      /requestedBy: must be at most 64/,
    );
    assert.match(
      refused(deployRequestSchema, { ...deploy, requestedBy: 'dave smith' }),
      /requestedBy: must be a user name/,
    );
    assert.match(refused(deployRequestSchema, { ...deploy, reason: 'r'.repeat(501) }), /reason: must be at most 500/);
    assert.match(
      refused(deployRequestSchema, { ...deploy, configDigest: 'abc' }),
      /configDigest: must be the sha256 digest/,
    );
    assert.match(
      refused(deployRequestSchema, {
        ...deploy,
        fieldDigests: Object.fromEntries([...Array(101).keys()].map((i) => [`f${i}`, '0'.repeat(16)])),
      }),
      /fieldDigests: must name at most 100 fields/,
    );
    assert.match(
      refused(deployRequestSchema, { ...deploy, fieldDigests: { gates: 'x' } }),
      /fieldDigests: must map to 16 hex digits/,
    );
    assert.match(refused(deployRequestSchema, { ...deploy, gates: [] }), /Unrecognized key/);
    assert.match(refused(deployRequestSchema, 'deploy shop'), /^invalid deploy request: \(request\):/);
  });

  it('keeps a refusal short however large the input (it goes into the history)', () => {
    const message = refused(deployRequestSchema, {
      ...Object.fromEntries([...Array(50).keys()].map((i) => [`k${i}${'x'.repeat(10_000)}`, 1])),
    });
    assert.ok(message.length < 3_000, `${message.length} characters`);
  });

  it('rollback and drill requests: their own options, the same bounds', () => {
    const { version: _v, ...base } = deploy;
    assert.ok(
      parseRequest(rollbackRequestSchema, 'rollback', {
        ...base,
        toVersion: 'v1',
        restoreSnapshotId: 'shop-staging-pre-migrate-1a2b3c4d',
      }).ok,
    );
    assert.match(
      refused(rollbackRequestSchema, { ...base, restoreSnapshotId: 'x;drop' }),
      /restoreSnapshotId: must be a snapshot id/,
    );
    assert.ok(
      parseRequest(drillRequestSchema, 'drill', {
        ...base,
        fresh: true,
        signoffTimeoutMs: 60_000,
        requestedBy: 'schedule:drill-shop-staging',
      }).ok,
    );
    assert.match(
      refused(drillRequestSchema, { ...base, fresh: true, snapshotId: 'shop-1' }),
      /fresh: give snapshotId or fresh, not both/,
    );
    assert.match(
      refused(drillRequestSchema, { ...base, signoffTimeoutMs: 10 }),
      /signoffTimeoutMs: must be at least 1000/,
    );
  });
});
