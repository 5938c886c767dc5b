import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MigrationError, createMigrator } from '../../src/pg/migrator';
import type { Migrator } from '../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

const sql = (up: string, down = '') => `-- Up Migration\n${up}\n\n-- Down Migration\n${down}\n`;

describe('postgres migrator (node-pg-migrate, real PostgreSQL)', function () {
  let pg: PgFixture;
  let migrator: Migrator;
  let folders = 0;

  /** A throwaway migrations folder with these files. */
  function folder(files: Record<string, string>): string {
    const dir = path.join(pg.scratch, `migrations-${++folders}`);
    mkdirSync(dir);
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
    return dir;
  }

  const tables = async (db: string) =>
    (
      await pg.query<{ name: string }>(
        db,
        `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
      )
    ).map((r) => r.name);

  before(async function () {
    this.timeout(120_000);
    pg = await startPgFixture();
    migrator = createMigrator(pg.urlFor);
  });

  after(async function () {
    this.timeout(60_000);
    await pg?.stop();
  });

  it('lists pending migrations, applies them, and applies nothing on a second run', async () => {
    const db = await pg.createDatabase('mig');
    const dir = folder({
      '001_items.sql': sql('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);', 'DROP TABLE items;'),
      '002_index.sql': sql('CREATE INDEX items_name ON items (name);'),
    });
    assert.deepEqual(await migrator.pending(db, dir), ['001_items', '002_index']);
    assert.deepEqual(await tables(db), [], 'pending() changes nothing');

    assert.deepEqual(await migrator.migrate(db, dir), { applied: ['001_items', '002_index'], version: '002_index' });
    assert.deepEqual(await migrator.pending(db, dir), []);
    assert.deepEqual(await migrator.migrate(db, dir), { applied: [], version: '002_index' });

    writeFileSync(path.join(dir, '003_price.sql'), sql('ALTER TABLE items ADD COLUMN price numeric;'));
    assert.deepEqual(await migrator.pending(db, dir), ['003_price']);
    assert.deepEqual(await migrator.migrate(db, dir), { applied: ['003_price'], version: '003_price' });
  });

  it('a failing migration names the file and line, and leaves the database unchanged', async () => {
    const db = await pg.createDatabase('mig');
    const dir = folder({ '001_items.sql': sql('CREATE TABLE items (id int PRIMARY KEY);') });
    await migrator.migrate(db, dir);
    await pg.query(db, 'INSERT INTO items VALUES (1), (2)');
    writeFileSync(
      path.join(dir, '002_orders.sql'),
      sql('CREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1);'),
    );
    writeFileSync(path.join(dir, '003_broken.sql'), sql('DELETE FROM items;\n\nUPDATE no_such_table SET x = 1;'));

    const err = await migrator.migrate(db, dir).then(
      () => assert.fail('the broken migration was applied'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MigrationError);
    assert.equal(err.file, '003_broken.sql');
    assert.match(err.message, /migration 003_broken\.sql failed on database "mig_\d+_\d+" \(line 4\)/);
    assert.match(err.message, /relation "no_such_table" does not exist/);
    assert.match(err.message, /nothing of this run was applied/);

    assert.deepEqual(await tables(db), ['items', 'pgmigrations'], '002_orders was rolled back');
    assert.equal((await pg.query(db, 'SELECT * FROM items')).length, 2, "003's DELETE was rolled back");
    assert.deepEqual(
      (await pg.query<{ name: string }>(db, 'SELECT name FROM pgmigrations')).map((r) => r.name),
      ['001_items'],
    );
    assert.deepEqual(await migrator.pending(db, dir), ['002_orders', '003_broken']);
  });

  it('a failing first run leaves a fresh database without even the pgmigrations table', async () => {
    const db = await pg.createDatabase('mig');
    const dir = folder({
      '001_items.sql': sql('CREATE TABLE items (id int);'),
      '002_broken.sql': sql('SELECT 1/0;'),
    });
    await assert.rejects(migrator.migrate(db, dir), /migration 002_broken\.sql failed .*division by zero/);
    assert.deepEqual(await tables(db), []);
  });

  it('concurrent runs apply each migration once', async () => {
    const db = await pg.createDatabase('mig');
    const dir = folder({
      '001_slow.sql': sql('CREATE TABLE counter (n int); SELECT pg_sleep(0.5); INSERT INTO counter VALUES (1);'),
      '002_more.sql': sql('INSERT INTO counter VALUES (2);'),
    });
    const runs = await Promise.all([migrator.migrate(db, dir), migrator.migrate(db, dir), migrator.migrate(db, dir)]);
    assert.deepEqual(runs.flatMap((r) => r.applied).sort(), ['001_slow', '002_more']);
    assert.ok(runs.every((r) => r.version === '002_more'));
    assert.deepEqual(
      (await pg.query<{ n: number }>(db, 'SELECT n FROM counter ORDER BY n')).map((r) => r.n),
      [1, 2],
    );
  });

  it('refuses a missing folder and a new migration that sorts before an applied one', async () => {
    const db = await pg.createDatabase('mig');
    const missing = path.join(pg.scratch, 'no-such-folder');
    await assert.rejects(migrator.pending(db, missing), /migrations folder .*no-such-folder does not exist/);
    await assert.rejects(migrator.migrate(db, missing), /migrations folder .*no-such-folder does not exist/);

    const dir = folder({ '002_b.sql': sql('CREATE TABLE b (id int);') });
    await migrator.migrate(db, dir);
    writeFileSync(path.join(dir, '001_a.sql'), sql('CREATE TABLE a (id int);'));
    await assert.rejects(migrator.pending(db, dir), /001_a\.sql .* sorts before 002_b/);
    await assert.rejects(migrator.migrate(db, dir), /Not run migration 001_a is preceding already run migration 002_b/);
    assert.deepEqual(await tables(db), ['b', 'pgmigrations']);
  });
});
