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

  describe('plain ordered SQL files (no -- Up Migration markers), as seed runbooks write them', () => {
    const applied = async (db: string) =>
      (await pg.query<{ name: string }>(db, 'SELECT name FROM pgmigrations ORDER BY run_on, id')).map((r) => r.name);

    it('applies each once, in numeric order (010 after 002), recorded in pgmigrations; a second run applies nothing', async () => {
      const db = await pg.createDatabase('plain');
      // Each file needs the one before it: a wrong order fails the run.
      const dir = folder({
        '010_add_stock.sql':
          'ALTER TABLE items ADD COLUMN stock int NOT NULL DEFAULT 0;\nUPDATE items SET stock = 5;\n',
        '001_initial_schema.sql':
          "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\nINSERT INTO items (name) VALUES ('a');\n",
        '002_add_price.sql':
          '-- prices in cents\nALTER TABLE items ADD COLUMN price int;\nUPDATE items SET price = 100;\n',
      });
      const names = ['001_initial_schema', '002_add_price', '010_add_stock'];
      assert.deepEqual(await migrator.pending(db, dir), names);
      assert.deepEqual(await migrator.migrate(db, dir), { applied: names, version: '010_add_stock' });
      assert.deepEqual(await applied(db), names);
      assert.deepEqual(await pg.query(db, 'SELECT name, price, stock FROM items'), [
        { name: 'a', price: 100, stock: 5 },
      ]);

      assert.deepEqual(await migrator.pending(db, dir), []);
      assert.deepEqual(await migrator.migrate(db, dir), { applied: [], version: '010_add_stock' });
      assert.deepEqual(await pg.query(db, 'SELECT count(*)::int AS n FROM items'), [{ n: 1 }], 'nothing ran twice');
    });

    it('orders unpadded numbers numerically too (2 before 10)', async () => {
      const db = await pg.createDatabase('plain');
      const dir = folder({
        '10_c.sql': 'INSERT INTO seq VALUES (10);',
        '2_b.sql': 'INSERT INTO seq VALUES (2);',
        '1_a.sql': 'CREATE TABLE seq (n int, at serial);',
      });
      assert.deepEqual((await migrator.migrate(db, dir)).applied, ['1_a', '2_b', '10_c']);
      assert.deepEqual(
        (await pg.query<{ n: number }>(db, 'SELECT n FROM seq ORDER BY at')).map((r) => r.n),
        [2, 10],
      );
    });

    it('a failing third file leaves nothing of the run applied', async () => {
      const db = await pg.createDatabase('plain');
      const dir = folder({
        '001_initial_schema.sql': 'CREATE TABLE items (id int PRIMARY KEY);\nINSERT INTO items VALUES (1);',
        '002_add_price.sql': 'ALTER TABLE items ADD COLUMN price int;',
        '010_broken.sql': 'UPDATE items SET price = 1;\nSELECT no_such_column FROM items;',
      });
      await assert.rejects(
        migrator.migrate(db, dir),
        /migration 010_broken\.sql failed on database "plain_\d+_\d+" \(line 2\): column "no_such_column" does not exist; nothing of this run was applied/,
      );
      assert.deepEqual(await tables(db), [], 'no items, no pgmigrations');
      assert.deepEqual(await migrator.pending(db, dir), ['001_initial_schema', '002_add_price', '010_broken']);
    });

    it("refuses a file with its own BEGIN/COMMIT before anything runs (its COMMIT would end the run's transaction)", async () => {
      const db = await pg.createDatabase('plain');
      const dir = folder({
        '001_initial_schema.sql': 'BEGIN;\nCREATE TABLE items (id int);\nCOMMIT;\n',
        '002_add_price.sql': 'ALTER TABLE items ADD COLUMN price int;',
        '003_broken.sql': 'SELECT 1/0;',
      });
      const refused =
        /migration 001_initial_schema\.sql runs its own BEGIN \(line 1\).*remove the file's BEGIN\/COMMIT; nothing of this run was applied/;
      await assert.rejects(migrator.pending(db, dir), refused);
      const err = await migrator.migrate(db, dir).then(
        () => assert.fail('migrated'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof MigrationError);
      assert.match(err.message, refused);
      assert.equal(err.file, '001_initial_schema.sql');
      assert.deepEqual(await tables(db), [], 'before the check, 001 and 002 were committed while the run failed');

      // A plpgsql body's BEGIN ... END is no transaction control.
      const ok = folder({
        '001_fn.sql': 'CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n',
      });
      assert.deepEqual((await migrator.migrate(db, ok)).applied, ['001_fn']);
    });
  });
});
