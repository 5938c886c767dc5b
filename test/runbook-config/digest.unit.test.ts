import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  canonicalJson,
  canonicalPlan,
  loadRunbookConfig,
  planDifferences,
  planDigest,
  resolveService,
} from '../../src/runbook-config';
import type { SingleHostService } from '../../src/shared/service-plan';

const examples = path.join(__dirname, '../../examples/runbook.yaml');
const staging = () => resolveService(loadRunbookConfig(examples), 'shop', 'staging') as SingleHostService;

describe('the digest of a resolved plan (runbook-config/digest.ts)', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** The example config copied into a folder of its own (another checkout of the same reviewed file). */
  function checkout(edit: (text: string) => string = (t) => t): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-digest-'));
    dirs.push(dir);
    const file = path.join(dir, 'runbook.yaml');
    writeFileSync(file, edit(readFileSync(examples, 'utf8')));
    return file;
  }

  it('is the same for the same config in two checkouts: source left out, paths inside the folder relative', () => {
    const here = staging();
    const there = resolveService(loadRunbookConfig(checkout()), 'shop', 'staging') as SingleHostService;
    assert.notEqual(here.release.cwd, there.release.cwd, 'absolute paths differ between the checkouts');
    assert.equal(planDigest(here).digest, planDigest(there).digest);
    const canonical = canonicalPlan(here);
    assert.equal(canonical.source, undefined);
    assert.deepEqual(canonical.release, { ...(canonical.release as object), cwd: './shop/releases/{version}' });
    assert.equal((canonical.database as { migrationsDir: string }).migrationsDir, './shop/migrations');
  });

  it('is sha256 over JSON with sorted keys: key order does not matter, list order does', () => {
    const plan = staging();
    const { digest } = planDigest(plan);
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    const reordered = Object.fromEntries(Object.entries(plan).reverse()) as unknown as SingleHostService;
    assert.equal(planDigest(reordered).digest, digest);
    assert.equal(canonicalJson({ b: 1, a: [2, 1] }), '{"a":[2,1],"b":1}');
    const steps = [...plan.traffic.steps].reverse();
    assert.notEqual(planDigest({ ...plan, traffic: { steps } }).digest, digest);
  });

  it('keeps a path outside the config folder absolute', () => {
    const plan = { ...staging(), release: { ...staging().release, cwd: '/opt/shop/{version}' } };
    assert.equal((canonicalPlan(plan).release as { cwd: string }).cwd, '/opt/shop/{version}');
  });

  it('names the fields that differ, one level down in the blocks that are maps', () => {
    const plan = resolveService(loadRunbookConfig(examples), 'shop', 'production') as SingleHostService;
    const forged: SingleHostService = {
      ...plan,
      approvals: { ...plan.approvals, gates: [] },
      release: { ...plan.release, command: ['sh', '-c', 'touch /tmp/x'] },
    };
    const a = planDigest(plan);
    const b = planDigest(forged);
    assert.notEqual(a.digest, b.digest);
    assert.deepEqual(
      Object.keys(a.fieldDigests).filter((k) => a.fieldDigests[k] !== b.fieldDigests[k]),
      ['approvals.gates', 'release.command'],
    );
    assert.ok(Object.values(a.fieldDigests).every((d) => /^[0-9a-f]{16}$/.test(d)));
    assert.ok(Object.keys(a.fieldDigests).length <= 100, 'a request may carry at most 100 field digests');
    assert.deepEqual(
      planDifferences(plan, forged).map((d) => [d.field, d.theirs]),
      [
        ['approvals.gates', '[]'],
        ['release.command', '["sh","-c","touch /tmp/x"]'],
      ],
    );
  });

  it('a field only one plan has is a difference', () => {
    const plan = staging();
    const { drill: _drill, ...withoutDrill } = plan;
    assert.deepEqual(
      planDifferences(plan, withoutDrill as SingleHostService).map((d) => d.field),
      ['drill.rtoTargetMs', 'drill.schedule'],
    );
  });
});
