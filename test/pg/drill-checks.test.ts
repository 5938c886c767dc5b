import assert from 'node:assert/strict';
import { createDrillChecks } from '../../src/pg/drill-checks';
import type { DrillChecks } from '../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

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
    // An expression index over a function that lies about being immutable: redefining the function leaves the
    // index entries pointing at values the heap no longer produces, which --heapallindexed detects.
    await pg.query(db, `CREATE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'`);
    await pg.query(db, 'CREATE TABLE t (x int); INSERT INTO t SELECT g FROM generate_series(1, 100) g');
    await pg.query(db, 'CREATE INDEX t_f ON t (f(x))');
    await pg.query(db, `CREATE OR REPLACE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1000'`);
    const r = await checks.amcheck(db);
    assert.equal(r.ok, false);
    assert.match(r.detail, /^corruption found: btree index ".*\.public\.t_f":[\s\S]*lacks matching index tuple/);
  });

  it('amcheck that cannot run is an error, not a verdict', async () => {
    await assert.rejects(
      checks.amcheck('no_such_database'),
      /pg_amcheck on "no_such_database" failed \(1\): .*does not exist/,
    );
  });
});
