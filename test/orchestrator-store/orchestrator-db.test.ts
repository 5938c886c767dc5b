import assert from 'node:assert/strict';
import pg from 'pg';
import {
  acquireLock,
  lastSucceededReleases,
  listDrillRuns,
  migrateOrchestratorDb,
  recordDrillRun,
  recordRelease,
  releaseLock,
  type ReleaseRecord,
} from '../../src/orchestrator-store/orchestrator-db';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

describe('orchestrator database (releases, runbook locks, drills; real PostgreSQL)', function () {
  let fixture: PgFixture;
  let pool: pg.Pool;

  before(async function () {
    this.timeout(120_000);
    fixture = await startPgFixture();
    pool = new pg.Pool({ connectionString: fixture.urlFor(await fixture.createDatabase('runbook')), max: 8 });
  });

  after(async function () {
    this.timeout(60_000);
    await pool?.end();
    await fixture?.stop();
  });

  it('creates its schema idempotently, also when workers start together', async () => {
    await Promise.all([migrateOrchestratorDb(pool), migrateOrchestratorDb(pool), migrateOrchestratorDb(pool)]);
    await migrateOrchestratorDb(pool);
    const { rows } = await pool.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    assert.deepEqual(
      rows.map((r) => r.name),
      ['drill_runs', 'releases', 'runbook_locks', 'snapshot_manifests'],
    );
    const { rows: indexes } = await pool.query<{ def: string }>(
      `SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'releases' AND indexname LIKE '%finished_at'`,
    );
    assert.match(indexes[0]?.def ?? '', /\(service, environment, finished_at DESC\)/);
  });

  describe('runbook locks', () => {
    const running = new Set<string>();
    const isRunning = async (workflowId: string) => running.has(workflowId);
    const lock = (service: string, workflowId: string, kind = 'deploy') =>
      acquireLock(pool, { service, environment: 'prod', workflowId, kind }, isRunning);

    before(() => migrateOrchestratorDb(pool));

    it('acquires, re-acquires as the same holder, and names the holder on conflict', async () => {
      running.add('deploy-1');
      assert.deepEqual(await lock('api', 'deploy-1'), { acquired: true });
      assert.deepEqual(await lock('api', 'deploy-1'), { acquired: true }, 'a retried activity holds it already');
      const conflict = await lock('api', 'rollback-2', 'rollback');
      assert.equal(conflict.acquired, false);
      assert.ok(!conflict.acquired);
      assert.equal(conflict.holder, 'deploy-1');
      assert.equal(conflict.kind, 'deploy');
      assert.ok(conflict.since instanceof Date && Date.now() - conflict.since.getTime() < 60_000);
      assert.deepEqual(await lock('web', 'rollback-2', 'rollback'), { acquired: true }, 'other services are free');
    });

    it('takes over the lock of a holder that no longer runs', async () => {
      running.add('deploy-old');
      assert.deepEqual(await lock('billing', 'deploy-old'), { acquired: true });
      running.delete('deploy-old'); // e.g. terminated without releasing
      assert.deepEqual(await lock('billing', 'drill-7', 'restore'), { acquired: true, takenOverFrom: 'deploy-old' });
      running.add('drill-7');
      const conflict = await lock('billing', 'deploy-8');
      assert.ok(!conflict.acquired && conflict.holder === 'drill-7' && conflict.kind === 'restore');
    });

    it('lets only the holder release it', async () => {
      running.add('deploy-9');
      assert.deepEqual(await lock('search', 'deploy-9'), { acquired: true });
      assert.equal(await releaseLock(pool, 'search', 'prod', 'someone-else'), false);
      const still = await lock('search', 'deploy-10');
      assert.ok(!still.acquired && still.holder === 'deploy-9');
      assert.equal(await releaseLock(pool, 'search', 'prod', 'deploy-9'), true);
      assert.equal(await releaseLock(pool, 'search', 'prod', 'deploy-9'), false, 'released already');
      assert.deepEqual(await lock('search', 'deploy-10'), { acquired: true });
    });

    it('gives the lock to exactly one of many concurrent callers', async () => {
      const callers = Array.from({ length: 8 }, (_, i) => `race-${i}`);
      callers.forEach((c) => running.add(c));
      const results = await Promise.all(callers.map((c) => lock('race', c)));
      assert.equal(results.filter((r) => r.acquired).length, 1);

      const winner = callers[results.findIndex((r) => r.acquired)]!;
      running.delete(winner);
      const others = callers.filter((c) => c !== winner);
      const takeovers = await Promise.all(others.map((c) => lock('race', c)));
      assert.deepEqual(
        takeovers.filter((r) => r.acquired),
        [{ acquired: true, takenOverFrom: winner }],
        'one caller takes over the dead holder, the others see it',
      );
    });
  });

  it('records releases idempotently and lists the succeeded ones, newest first', async () => {
    await migrateOrchestratorDb(pool);
    const base = { service: 'shop', environment: 'prod', startedAt: new Date('2024-05-01T10:00:00Z') };
    const release = (n: number, outcome: ReleaseRecord['outcome'], minute: number): ReleaseRecord => ({
      ...base,
      version: `1.${n}.0`,
      releaseId: `r-${n}`,
      workflowId: `deploy-shop-${n}`,
      kind: 'deploy',
      outcome,
      finishedAt: new Date(Date.UTC(2024, 4, 1, 10, minute)),
    });
    await recordRelease(pool, release(1, 'succeeded', 1));
    await recordRelease(pool, release(2, 'rolled-back', 2));
    await recordRelease(pool, { ...release(3, 'failed', 3), reason: 'health check', details: { step: 'canary' } });
    await recordRelease(pool, { ...release(3, 'succeeded', 4), snapshotId: 'snap-3' }); // the same workflow, again
    await recordRelease(pool, { ...release(4, 'succeeded', 5), service: 'other' });

    const rows = await lastSucceededReleases(pool, 'shop', 'prod', 10);
    assert.deepEqual(
      rows.map((r) => [r.workflowId, r.version, r.snapshotId, r.reason]),
      [
        ['deploy-shop-3', '1.3.0', 'snap-3', null],
        ['deploy-shop-1', '1.1.0', null, null],
      ],
    );
    assert.deepEqual(rows[0]?.details, {});
    assert.equal(rows[0]?.finishedAt.toISOString(), '2024-05-01T10:04:00.000Z');
    assert.equal(typeof rows[0]?.id, 'number');
    assert.equal((await lastSucceededReleases(pool, 'shop', 'prod', 1)).length, 1);
    const { rows: count } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM releases WHERE workflow_id = 'deploy-shop-3'`,
    );
    assert.equal(count[0]?.n, '1');
    await assert.rejects(
      recordRelease(pool, { ...release(5, 'succeeded', 6), outcome: 'exploded' as ReleaseRecord['outcome'] }),
      /violates check constraint/,
    );
  });

  it('records drill runs, updates them at sign-off, and lists them newest first', async () => {
    await migrateOrchestratorDb(pool);
    const drill = {
      service: 'shop',
      environment: 'prod',
      workflowId: 'drill-1',
      snapshotId: 'snap-1',
      snapshotAgeSeconds: 3600,
      phaseTimings: { restore: 12.5, verify: 3.25 },
      rtoSeconds: 15.75,
      rtoTargetSeconds: 900,
      overTarget: false,
      integrity: { ok: true, differences: [] },
      outcome: 'awaiting-sign-off',
      startedAt: new Date('2024-05-01T10:00:00Z'),
      finishedAt: new Date('2024-05-01T10:00:16Z'),
    };
    await recordDrillRun(pool, drill);
    await recordDrillRun(pool, { ...drill, workflowId: 'drill-0', startedAt: new Date('2024-04-01T10:00:00Z') });
    await recordDrillRun(pool, { ...drill, outcome: 'passed', signedOffBy: 'alice' });

    const runs = await listDrillRuns(pool, 'shop', 'prod', 10);
    assert.deepEqual(
      runs.map((r) => [r.workflowId, r.outcome, r.signedOffBy]),
      [
        ['drill-1', 'passed', 'alice'],
        ['drill-0', 'awaiting-sign-off', null],
      ],
    );
    assert.deepEqual(runs[0]?.phaseTimings, { restore: 12.5, verify: 3.25 });
    assert.equal(runs[0]?.rtoSeconds, 15.75);
    assert.deepEqual(runs[0]?.integrity, { ok: true, differences: [] });
    assert.equal(runs[0]?.overTarget, false);
    assert.deepEqual(await listDrillRuns(pool, 'shop', 'staging', 10), []);
  });
});
