import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createDrillActivities } from '../../src/activities/drill';
import { amcheckBatches, createDrillChecks } from '../../src/pg/drill-checks';
import type { AmcheckProgress, DrillChecks, PlatformParts } from '../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

/** A database whose index on t_f lies (see "an index that lost heap tuples"): corruption pg_amcheck finds. */
async function corruptIndex(pg: PgFixture, db: string, table = 't'): Promise<void> {
  // An expression index over a function that lies about being immutable: redefining the function leaves the
  // index entries pointing at values the heap no longer produces, which --heapallindexed detects.
  await pg.query(db, `CREATE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'`);
  await pg.query(db, `CREATE TABLE ${table} (x int); INSERT INTO ${table} SELECT g FROM generate_series(1, 100) g`);
  await pg.query(db, `CREATE INDEX ${table}_f ON ${table} (f(x))`);
  await pg.query(db, `CREATE OR REPLACE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1000'`);
}

describe("the restore drill's database checks (pg_amcheck; real PostgreSQL)", function () {
  this.timeout(120_000);
  let pg: PgFixture;
  let checks: DrillChecks;

  before(async () => {
    pg = await startPgFixture();
    checks = createDrillChecks({ urlFor: pg.urlFor, binDir: pg.binDir });
  });
  after(async () => pg?.stop());

  it('ping answers with the server version; a missing database is the connection error', async () => {
    const db = await pg.createDatabase('ping');
    assert.match((await checks.ping(db)).serverVersion, /^\d+\.\d+/);
    await assert.rejects(checks.ping('no_such_database'), /database "no_such_database" does not exist/);
  });

  it('amcheck: a sound database passes (heap and B-tree, --heapallindexed, amcheck installed on the way)', async () => {
    const db = await pg.createDatabase('sound');
    await pg.query(db, 'CREATE TABLE t (id serial PRIMARY KEY, name text); CREATE INDEX ON t (name)');
    await pg.query(db, "INSERT INTO t (name) SELECT 'n' || g FROM generate_series(1, 5000) g");
    const r = await checks.amcheck(db);
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^no corruption in \d+ relations \(\d+ pages\): heap, B-tree indexes, --heapallindexed$/);
    const ext = await pg.query<{ n: string }>(db, "SELECT count(*) AS n FROM pg_extension WHERE extname = 'amcheck'");
    assert.equal(ext[0]?.n, '1');
  });

  it('amcheck: an index that lost heap tuples is corruption, reported with where it is', async () => {
    const db = await pg.createDatabase('corrupt');
    await corruptIndex(pg, db);
    const r = await checks.amcheck(db);
    assert.equal(r.ok, false);
    assert.match(r.detail, /^corruption found: btree index ".*\.public\.t_f":[\s\S]*lacks matching index tuple/);
  });

  it('amcheck that cannot run is an error, not a verdict', async () => {
    await assert.rejects(
      checks.amcheck('no_such_database'),
      /pg_amcheck on "no_such_database" failed \(listing its tables\): database "no_such_database" does not exist/,
    );
  });

  it('amcheck runs in batches of tables and reports each; the batches add up to the whole check', async () => {
    const db = await pg.createDatabase('batches');
    for (const t of ['a_first', 'b_second', 'c_third']) {
      await pg.query(db, `CREATE TABLE ${t} (id serial PRIMARY KEY, name text); CREATE INDEX ON ${t} (name)`);
      await pg.query(db, `INSERT INTO ${t} (name) SELECT 'n' || g FROM generate_series(1, 500) g`);
    }
    const whole = await checks.amcheck(db);
    const small = createDrillChecks({ urlFor: pg.urlFor, binDir: pg.binDir, batch: { pages: 1_000_000, tables: 20 } });
    const seen: AmcheckProgress[] = [];
    const batched = await small.amcheck(db, { onProgress: (p) => seen.push(p) });
    assert.equal(batched.ok, true, batched.detail);
    assert.equal(batched.detail, whole.detail, 'the batches check what one run checks');
    assert.ok(seen.length >= 3, `${seen.length} batches`);
    assert.deepEqual(
      seen.map((p) => p.after),
      [...seen.map((p) => p.after)].sort(),
      'batches follow the tables in order',
    );
    assert.equal(seen.at(-1)!.after, 'public.c_third');
    // A table over the page limit is a batch of its own; small ones share one up to the table limit.
    const sizes = (b: { pages: number }[][]) => b.map((x) => x.map((t) => t.pages));
    assert.deepEqual(sizes(amcheckBatches([{ pages: 5 }, { pages: 200_000 }, { pages: 1 }])), [[5], [200_000], [1]]);
    assert.deepEqual(
      sizes(
        amcheckBatches(
          [1, 2, 3].map((pages) => ({ pages })),
          { pages: 10, tables: 2 },
        ),
      ),
      [[1, 2], [3]],
    );
  });

  it("amcheck resumes after the tables an earlier attempt's progress names, on the same database only", async () => {
    const db = await pg.createDatabase('resume');
    // Corruption in a table an earlier attempt already checked (public.a_first) ...
    await corruptIndex(pg, db, 'a_first');
    await pg.query(
      db,
      'CREATE TABLE b_second (id int PRIMARY KEY); INSERT INTO b_second SELECT generate_series(1, 50)',
    );
    const earlier: AmcheckProgress = { database: db, after: 'public.a_first', relations: 90, pages: 400 };
    // ... is not checked again: only b_second (heap and primary key) is, and the figures add to the earlier ones.
    const resumed = await checks.amcheck(db, { resume: earlier });
    assert.equal(resumed.ok, true, resumed.detail);
    assert.match(resumed.detail, /^no corruption in 92 relations \(\d+ pages\): .* \(resumed after public\.a_first\)$/);
    // Progress of another database is not resumed from: the whole database is checked, and the corruption found.
    const other = await checks.amcheck(db, { resume: { ...earlier, database: 'another_copy' } });
    assert.equal(other.ok, false);
    assert.match(other.detail, /btree index ".*\.public\.a_first_f"/);
  });

  it("the drill's amcheck activity heartbeats each batch and a retried attempt resumes from those details", async () => {
    const db = await pg.createDatabase('activity');
    await corruptIndex(pg, db, 'a_first');
    const small = createDrillChecks({ urlFor: pg.urlFor, binDir: pg.binDir, batch: { pages: 1_000_000, tables: 20 } });
    const activities = createDrillActivities({
      platforms: { get: () => ({ drillChecks: small }) as unknown as PlatformParts },
    } as unknown as Parameters<typeof createDrillActivities>[0]);
    const quiet = { logger: new DefaultLogger('ERROR', () => {}) };

    const first = new MockActivityEnvironment(undefined, quiet);
    const beats: unknown[] = [];
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const found: { ok: boolean } = await first.run(() => activities.amcheckDatabase(db));
    assert.equal(found.ok, false);
    const progress = beats.filter((b): b is { amcheck: AmcheckProgress } => !!(b as { amcheck?: unknown })?.amcheck);
    assert.ok(progress.length >= 1, 'the batches before the corrupt one were heartbeated');
    assert.ok(progress.every((b) => b.amcheck.database === db && b.amcheck.after < 'public.a_first'));

    // A retry whose earlier attempt got past a_first resumes there: the corruption is behind it.
    const retried = new MockActivityEnvironment(
      { attempt: 2, heartbeatDetails: { amcheck: { database: db, after: 'public.a_first', relations: 1, pages: 1 } } },
      quiet,
    );
    const resumed: { ok: boolean; detail: string } = await retried.run(() => activities.amcheckDatabase(db));
    assert.equal(resumed.ok, true, resumed.detail);
    assert.match(resumed.detail, /resumed after public\.a_first/);
  });
});
