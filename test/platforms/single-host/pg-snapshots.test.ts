import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { createMigrator } from '../../../src/pg/migrator';
import { libpqEnv } from '../../../src/pg/client-tools';
import { createPgSnapshotStore, type PgSnapshotStore } from '../../../src/platforms/single-host/pg-snapshots';
import { PlatformError } from '../../../src/platforms/types';
import type { SnapshotManifest, SnapshotProgress, SnapshotStore } from '../../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../../helpers/pg-fixture';

const MANIFEST_KEY = randomBytes(32);

const SCHEMA = `-- Up Migration
CREATE TABLE items (
  id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2), created timestamptz NOT NULL,
  data jsonb, tags text[], score float8, blob bytea
);
CREATE INDEX items_name ON items (name);
CREATE TABLE orders (id bigserial PRIMARY KEY, item_id int NOT NULL REFERENCES items, qty int NOT NULL);
CREATE SCHEMA audit;
CREATE TABLE audit.events (at timestamptz NOT NULL DEFAULT now(), what text NOT NULL);
-- Down Migration
`;

const POPULATE = [
  `INSERT INTO items (name, price, created, data, tags, score, blob)
   SELECT 'item ' || i, i * 1.25, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
          jsonb_build_object('i', i, 'even', i % 2 = 0), ARRAY['t' || (i % 7)], i / 3.0, decode(md5(i::text), 'hex')
     FROM generate_series(1, 100000) i`,
  `INSERT INTO orders (item_id, qty) SELECT 1 + (i * 7919) % 100000, 1 + i % 5 FROM generate_series(1, 30000) i`,
  `INSERT INTO audit.events (what) SELECT 'event ' || i FROM generate_series(1, 1000) i`,
];

/** A PlatformError of the snapshot store: only SnapshotError (busy, a failed or cancelled tool) is retried. */
const isSnapshotError = (type: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof PlatformError, `expected a PlatformError, got ${String(err)}`);
  assert.equal(err.type, type);
  assert.equal(err.permanent, type !== 'SnapshotError');
  assert.match(err.message, message);
  return true;
};

describe('single-host snapshot store (pg_dump/pg_restore, real PostgreSQL)', function () {
  let pg0: PgFixture;
  let store: SnapshotStore;
  let source: string;
  let dir: string;
  let ids = 0;
  const snapshotId = () => `snap-${process.pid}-${++ids}`;
  const req = (id: string) => ({
    snapshotId: id,
    service: 'shop',
    environment: 'test',
    database: source,
    workflowId: `wf-${id}`,
  });
  const exists = async (db: string) =>
    (await pg0.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [db])).length === 1;

  before(async function () {
    this.timeout(120_000);
    pg0 = await startPgFixture();
    dir = path.join(pg0.scratch, 'snapshots');
    store = createPgSnapshotStore({
      dir,
      urlFor: pg0.urlFor,
      binDir: pg0.binDir,
      progressIntervalMs: 20,
      manifestKey: MANIFEST_KEY,
    });
    source = await pg0.createDatabase('shop');
    const migrations = path.join(pg0.scratch, 'shop-migrations');
    mkdirSync(migrations);
    await writeFile(path.join(migrations, '001_schema.sql'), SCHEMA);
    await createMigrator(pg0.urlFor).migrate(source, migrations);
    for (const sql of POPULATE) await pg0.query(source, sql);
  });

  after(async function () {
    this.timeout(60_000);
    await pg0?.stop();
  });

  it('takes a snapshot while writes go on, restores it into a new database, and the copy matches', async () => {
    const id = snapshotId();
    const writer = new pg.Client({ connectionString: pg0.urlFor(source) });
    await writer.connect();
    let writing = true;
    let written = 0;
    const writes = (async () => {
      while (writing) {
        await writer.query(`INSERT INTO audit.events (what) VALUES ('during the snapshot')`);
        written++;
      }
    })();
    const phases: SnapshotProgress[] = [];
    let manifest: SnapshotManifest;
    const t0 = performance.now();
    try {
      manifest = await store.take(req(id), (p) => phases.push(p));
    } finally {
      writing = false;
      await writes;
      await writer.end();
    }
    const takeMs = performance.now() - t0;
    assert.ok(written > 0, 'the writer ran during the snapshot');

    assert.equal(manifest.snapshotId, id);
    assert.equal(manifest.database, source);
    assert.equal(manifest.migrationVersion, '001_schema');
    assert.match(manifest.sha256, /^[0-9a-f]{64}$/);
    assert.match(manifest.serverVersion, /^1[5-9]/);
    assert.equal(manifest.location, path.join(dir, 'shop-test', `${id}.dump`));
    assert.equal(statSync(manifest.location).size, manifest.bytes);
    assert.ok(!existsSync(`${manifest.location}.partial`));
    assert.deepEqual(
      manifest.tables.map((t) => [t.table, t.rows]),
      [
        ['audit.events', manifest.tables[0]?.rows],
        ['public.items', 100000],
        ['public.orders', 30000],
        ['public.pgmigrations', 1],
      ],
    );
    assert.ok((manifest.tables[0]?.rows ?? 0) >= 1000);
    assert.deepEqual(phases[0], { phase: 'dump', bytes: 0 });
    assert.equal(phases[phases.length - 1]?.phase, 'done');
    assert.deepEqual(await store.get(id), manifest);
    assert.deepEqual(await store.verify(id), { ok: true });

    const target = `${source}_restored`;
    const restorePhases: string[] = [];
    const t1 = performance.now();
    await store.restore(id, target, { jobs: 2 }, (p) => restorePhases.push(p.phase));
    const restoreMs = performance.now() - t1;
    assert.deepEqual([...new Set(restorePhases)], ['verify', 'restore', 'done']);

    const comparison = await store.compare(target, manifest);
    assert.deepEqual(comparison.differences, []);
    assert.equal(comparison.ok, true);
    const indexes = await pg0.query<{ indexname: string }>(
      target,
      `SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1`,
    );
    assert.deepEqual(
      indexes.map((r) => r.indexname),
      ['items_name', 'items_pkey'],
    );
    console.log(
      `      ${(manifest.bytes / 1e6).toFixed(1)} MB dump of 131k rows: take ${takeMs.toFixed(0)} ms ` +
        `(with ${written} concurrent inserts), restore -j 2 ${restoreMs.toFixed(0)} ms`,
    );
    await store.dropDatabase(target);
    assert.equal(await exists(target), false);
  });

  it('a write after the snapshot shows as a difference', async () => {
    const manifest = await store.take(req(snapshotId()));
    assert.deepEqual((await store.compare(source, manifest)).differences, []);
    await pg0.query(source, `INSERT INTO items (name, created) VALUES ('late', now())`);
    await pg0.query(source, 'UPDATE orders SET qty = qty + 1 WHERE id = 1');
    await pg0.query(source, 'CREATE TABLE public.extra (id int)');
    const comparison = await store.compare(source, manifest);
    assert.equal(comparison.ok, false);
    assert.deepEqual(comparison.differences, [
      'public.items: 100001 rows, snapshot has 100000',
      'public.orders: same 30000 rows but different contents (checksum differs)',
      'public.extra: not in the snapshot (0 rows)',
    ]);
    await pg0.query(source, `DELETE FROM items WHERE name = 'late'`);
    await pg0.query(source, 'UPDATE orders SET qty = qty - 1 WHERE id = 1');
    await pg0.query(source, 'DROP TABLE public.extra');
    assert.deepEqual((await store.compare(source, manifest)).differences, [], 'the same data gives the same checksums');
  });

  it('taking the same snapshot id again adopts the complete snapshot; a partial one is replaced', async () => {
    const id = snapshotId();
    const first = await store.take(req(id));
    const before = statSync(first.location);
    const phases: string[] = [];
    const again = await store.take(req(id), (p) => phases.push(p.phase));
    assert.deepEqual(again, first);
    assert.deepEqual(phases, ['adopted']);
    const after = statSync(first.location);
    assert.equal(after.mtimeMs, before.mtimeMs, 'the dump was not rewritten');
    assert.equal(after.ino, before.ino);

    const partialId = snapshotId();
    const folder = path.join(dir, 'shop-test');
    await writeFile(path.join(folder, `${partialId}.dump.partial`), 'left by a crashed worker');
    const fresh = await store.take(req(partialId));
    assert.deepEqual(await store.verify(partialId), { ok: true });
    assert.ok(!existsSync(path.join(folder, `${partialId}.dump.partial`)));

    truncateSync(fresh.location, 100); // a manifest whose dump does not match is not adopted
    const retaken = await store.take(req(partialId));
    assert.notEqual(retaken.createdAtMs, 0);
    assert.deepEqual(await store.verify(partialId), { ok: true });

    await assert.rejects(
      store.take({ ...req(id), database: 'postgres' }),
      isSnapshotError('Snapshot_conflict', /snapshot id .* is already taken by a snapshot of database "shop_/),
    );
  });

  it('a truncated or corrupt dump fails verify with a clear reason, and restore refuses it', async () => {
    const truncated = await store.take(req(snapshotId()));
    truncateSync(truncated.location, Math.floor(truncated.bytes / 2));
    const t = await store.verify(truncated.snapshotId);
    assert.equal(t.ok, false);
    assert.match(t.ok ? '' : t.reason, /is \d+ bytes but its manifest says \d+: it is truncated or was overwritten/);

    const flipped = await store.take(req(snapshotId()));
    const fd = openSync(flipped.location, 'r+');
    const byte = Buffer.alloc(1);
    const at = Math.floor(flipped.bytes / 2);
    readSync(fd, byte, 0, 1, at);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
    closeSync(fd);
    const f = await store.verify(flipped.snapshotId);
    assert.equal(f.ok, false);
    assert.match(f.ok ? '' : f.reason, /is corrupt: its sha256 is [0-9a-f]{64}, its manifest says [0-9a-f]{64}/);

    for (const [m, reason] of [
      [truncated, /truncated/],
      [flipped, /corrupt/],
    ] as const) {
      const target = `${source}_bad`;
      await assert.rejects(
        store.restore(m.snapshotId, target, { jobs: 1 }),
        isSnapshotError(
          'SnapshotCorrupt',
          new RegExp(`snapshot ${m.snapshotId} cannot be restored: .*${reason.source}`),
        ),
      );
      assert.equal(await exists(target), false, 'nothing was created');
    }

    // A file with a matching size and sha256 that is no archive: only pg_restore --list notices.
    const forged = await store.take(req(snapshotId()));
    const garbage = Buffer.alloc(1000, 7);
    await writeFile(forged.location, garbage);
    const manifestFile = forged.location.replace(/\.dump$/, '.json');
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(garbage).digest('hex');
    await writeFile(manifestFile, JSON.stringify({ ...forged, bytes: 1000, sha256 }));
    const g = await store.verify(forged.snapshotId);
    assert.equal(g.ok, false);
    assert.match(g.ok ? '' : g.reason, /its manifest was changed after it was signed/);
    // Even an operator who signs it is stopped there: the dump is checked before it is signed.
    await assert.rejects(
      (store as PgSnapshotStore).sign(forged.snapshotId),
      isSnapshotError(
        'SnapshotCorrupt',
        /pg_restore cannot read the archive .*input file does not appear to be a valid archive/,
      ),
    );

    assert.deepEqual(await store.verify('no-such-snapshot'), {
      ok: false,
      reason: `there is no snapshot no-such-snapshot in ${dir}`,
    });
  });

  it('a dump replaced with a rewritten manifest is refused before any restore; an operator can vouch for one', async () => {
    // The attacker's dump is a real archive (of a database of their own) with a manifest rewritten to match it.
    const genuine = await store.take(req(snapshotId()));
    const planted = await pg0.createDatabase('planted');
    await pg0.query(planted, 'CREATE TABLE items (id int); INSERT INTO items VALUES (666)');
    const theirs = createPgSnapshotStore({
      dir: path.join(pg0.scratch, 'attacker'),
      urlFor: pg0.urlFor,
      binDir: pg0.binDir,
      manifestKey: randomBytes(32),
    });
    const forged = await theirs.take({ ...req(snapshotId()), database: planted });
    copyFileSync(forged.location, genuine.location);
    const manifestFile = genuine.location.replace(/\.dump$/, '.json');
    const rewritten = { ...genuine, bytes: forged.bytes, sha256: forged.sha256, tables: forged.tables };
    for (const [manifest, reason] of [
      [rewritten, /its manifest was changed after it was signed/],
      [{ ...rewritten, signature: forged.signature }, /signed with key [0-9a-f]{16}, not with this worker's key/],
      [{ ...rewritten, signature: undefined }, /its manifest is not signed/],
    ] as const) {
      await writeFile(manifestFile, JSON.stringify(manifest));
      const target = `${source}_planted`;
      const phases: string[] = [];
      await assert.rejects(
        store.restore(genuine.snapshotId, target, { jobs: 1 }, (p) => phases.push(p.phase)),
        isSnapshotError(
          'SnapshotUntrusted',
          new RegExp(`snapshot ${genuine.snapshotId} is not restored: .*${reason.source}.*runbook snapshots sign`),
        ),
      );
      assert.deepEqual(phases, [], 'refused before anything ran');
      assert.equal(await exists(target), false, 'nothing was created');
      const v = await store.verify(genuine.snapshotId);
      assert.match(v.ok ? '' : v.reason, reason);
      // Nor is it adopted by a deploy that retries with the same id.
      await assert.rejects(store.take(req(genuine.snapshotId)), isSnapshotError('SnapshotUntrusted', /is not adopted/));
    }

    // A snapshot taken before manifests were signed: restorable once an operator has signed it (dump checked first).
    const old = await store.take(req(snapshotId()));
    const oldFile = old.location.replace(/\.dump$/, '.json');
    await writeFile(oldFile, JSON.stringify({ ...old, signature: undefined }));
    assert.equal((await store.verify(old.snapshotId)).ok, false);
    const signed = await (store as PgSnapshotStore).sign(old.snapshotId);
    assert.deepEqual(signed.signature, old.signature, 'the same key signs the same manifest the same way');
    assert.deepEqual(await store.verify(old.snapshotId), { ok: true });
  });

  it('restores into a target left over from a crashed attempt, adopts a finished one, refuses a foreign one', async () => {
    // A crash between CREATE DATABASE and its COMMENT leaves an unmarked, empty database: a leftover too.
    const bare = await pg0.createDatabase('bare');
    await store.restore((await store.take(req(snapshotId()))).snapshotId, bare, { jobs: 1 });

    const manifest = await store.take(req(snapshotId()));
    const target = `${source}_crashed`;
    // What a restore that crashed half-way leaves: the database, marked as being restored, with some of the data.
    await pg0.query('postgres', `CREATE DATABASE ${target}`);
    await pg0.query('postgres', `COMMENT ON DATABASE ${target} IS 'runbook: restoring snapshot some-earlier-id'`);
    await pg0.query(target, 'CREATE TABLE items (id int)');
    await store.restore(manifest.snapshotId, target, { jobs: 4 });
    assert.deepEqual((await store.compare(target, manifest)).differences, []);

    const phases: string[] = [];
    await store.restore(manifest.snapshotId, target, { jobs: 4 }, (p) => phases.push(p.phase));
    assert.deepEqual(phases, ['verify', 'adopted']);

    const other = await store.take(req(snapshotId()));
    await assert.rejects(
      store.restore(other.snapshotId, target, { jobs: 1 }),
      isSnapshotError('Snapshot_conflict', /database ".*_crashed" already exists and is not left over from a restore/),
    );
    const foreign = await pg0.createDatabase('foreign');
    await pg0.query(foreign, 'CREATE TABLE precious (id int)'); // someone's live database
    await assert.rejects(
      store.restore(other.snapshotId, foreign, { jobs: 1 }),
      isSnapshotError('Snapshot_conflict', /already exists and is not left over from a restore: choose another target/),
    );
    await assert.rejects(
      store.restore(other.snapshotId, source, { jobs: 1 }),
      isSnapshotError(
        'Snapshot_invalid',
        /refusing to restore snapshot .* into "shop_.*", the database it was taken from/,
      ),
    );
    await store.dropDatabase(target);
  });

  it('a failing or cancelled restore drops the half-restored target and says why', async () => {
    const role = `reader_${process.pid}`;
    const db = await pg0.createDatabase('grants');
    await pg0.query('postgres', `CREATE ROLE ${role}`);
    await pg0.query(db, 'CREATE TABLE t (id int)');
    await pg0.query(db, `GRANT SELECT ON t TO ${role}`);
    const manifest = await store.take({ ...req(snapshotId()), database: db });
    await pg0.query(db, `REVOKE SELECT ON t FROM ${role}`);
    await pg0.query('postgres', `DROP ROLE ${role}`); // as on another server without that role

    const target = `${db}_copy`;
    await assert.rejects(
      store.restore(manifest.snapshotId, target, { jobs: 1 }),
      isSnapshotError(
        'SnapshotError',
        new RegExp(
          `pg_restore failed \\(1\\): .*role "${role}" does not exist.*the half-restored database was dropped`,
          's',
        ),
      ),
    );
    assert.equal(await exists(target), false);

    const big = await store.take(req(snapshotId()));
    const abort = new AbortController();
    await assert.rejects(
      store.restore(
        big.snapshotId,
        target,
        { jobs: 1 },
        (p) => p.phase === 'restore' && setTimeout(() => abort.abort(), 50),
        abort.signal,
      ),
      isSnapshotError('SnapshotError', /pg_restore was cancelled; the half-restored database was dropped/),
    );
    assert.equal(await exists(target), false);
  });

  it('a cancelled snapshot leaves no files behind', async () => {
    const id = snapshotId();
    const abort = new AbortController();
    await assert.rejects(
      store.take(req(id), (p) => p.phase === 'dump' && abort.abort(), abort.signal),
      isSnapshotError('SnapshotError', /was cancelled/),
    );
    const folder = path.join(dir, 'shop-test');
    assert.ok(!existsSync(path.join(folder, `${id}.dump.partial`)));
    assert.ok(!existsSync(path.join(folder, `${id}.json`)));
    assert.equal(await store.get(id), undefined);
  });

  it('lists snapshots newest first and validates names', async () => {
    const listed = await store.list('shop', 'test');
    assert.ok(listed.length >= 5);
    assert.deepEqual(
      listed.map((m) => m.createdAtMs),
      listed.map((m) => m.createdAtMs).sort((a, b) => b - a),
    );
    assert.deepEqual(await store.list('shop', 'nowhere'), []);

    await assert.rejects(
      store.take(req('../escape')),
      isSnapshotError('Snapshot_invalid', /invalid snapshot id "\.\.\/escape"/),
    );
    await assert.rejects(
      store.get('Upper'),
      isSnapshotError('Snapshot_invalid', /invalid snapshot id "Upper": use 1 to 63/),
    );
    await assert.rejects(
      store.restore(listed[0]!.snapshotId, 'a"; DROP DATABASE x; --', { jobs: 1 }),
      isSnapshotError('Snapshot_invalid', /invalid target database/),
    );
    await assert.rejects(
      store.dropDatabase('template1'),
      isSnapshotError('Snapshot_invalid', /refusing to drop the system database/),
    );
    await assert.rejects(
      store.restore(listed[0]!.snapshotId, 'x', { jobs: 0 }),
      isSnapshotError('Snapshot_invalid', /jobs/),
    );
  });

  it('passes credentials to pg_dump/pg_restore through the environment', () => {
    const env = libpqEnv('postgres://app%40x:p%40ss%2Fw@127.0.0.1:5433/shop?sslmode=disable');
    assert.equal(env.PGHOST, '127.0.0.1');
    assert.equal(env.PGPORT, '5433');
    assert.equal(env.PGUSER, 'app@x');
    assert.equal(env.PGPASSWORD, 'p@ss/w');
    assert.equal(env.PGDATABASE, 'shop');
    assert.equal(env.PGSSLMODE, 'disable');
  });
});
