import assert from 'node:assert/strict';
import pg from 'pg';
import { ensureServiceRole, serviceRoleName, serviceRolePassword, urlWith } from '../../src/pg/service-role';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

/** Connects as `role` and runs `sql`; resolves to the rows, or rejects with PostgreSQL's error. */
async function asRole(pgf: PgFixture, database: string, role: string, password: string, sql: string) {
  const client = new pg.Client({ connectionString: urlWith(pgf.urlFor(database), { database, user: role, password }) });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('service roles: each service owns its database, and nothing more (real PostgreSQL)', function () {
  this.timeout(60_000);
  let pgf: PgFixture;
  before(async () => {
    pgf = await startPgFixture();
  });
  after(async () => pgf?.stop());

  it('names a role per service and environment, within 63 characters, never two services the same', () => {
    assert.equal(serviceRoleName('shop', 'staging'), 'shop_staging_app');
    assert.equal(serviceRoleName('my-api', 'prod'), 'my_api_prod_app');
    const long = serviceRoleName('a'.repeat(60), 'production');
    assert.ok(long.length <= 63, long);
    assert.notEqual(long, serviceRoleName('a'.repeat(59), 'production'));
    assert.equal(serviceRolePassword('secret', 'shop_staging_app'), serviceRolePassword('secret', 'shop_staging_app'));
    assert.notEqual(
      serviceRolePassword('secret', 'shop_staging_app'),
      serviceRolePassword('other', 'shop_staging_app'),
    );
  });

  it('hands the database and what the migrations created to the role, which is no superuser', async () => {
    const db = await pgf.createDatabase('owned');
    // What a migration run as the superuser leaves: a schema, a table with a serial, a view, a function, an enum.
    await pgf.query(
      db,
      `CREATE SCHEMA extra;
       CREATE TYPE mood AS ENUM ('ok', 'sad');
       CREATE TABLE items (id serial PRIMARY KEY, name text, m mood);
       CREATE TABLE extra.notes (id bigint GENERATED ALWAYS AS IDENTITY, body text);
       CREATE VIEW item_names AS SELECT name FROM items;
       CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM items';
       INSERT INTO items (name) VALUES ('a')`,
    );
    const role = serviceRoleName('owned', 'test');
    const password = serviceRolePassword('worker-secret', role);
    await ensureServiceRole(pgf.urlFor('postgres'), db, role, password);

    const rows = await asRole(pgf, db, role, password, 'SELECT name FROM item_names');
    assert.deepEqual(rows, [{ name: 'a' }]);
    await asRole(pgf, db, role, password, `INSERT INTO items (name, m) VALUES ('b', 'ok')`);
    await asRole(pgf, db, role, password, `INSERT INTO extra.notes (body) VALUES ('x')`);
    assert.deepEqual(await asRole(pgf, db, role, password, 'SELECT item_count() AS n'), [{ n: '2' }]);
    await asRole(pgf, db, role, password, 'CREATE TABLE created_by_app (id int)');

    const [who] = await asRole(
      pgf,
      db,
      role,
      password,
      `SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user`,
    );
    assert.deepEqual(who, { rolsuper: false, rolcreatedb: false, rolcreaterole: false });
    const owners = await pgf.query<{ owner: string }>(
      db,
      `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace
        WHERE n.nspname IN ('public', 'extra')`,
    );
    assert.deepEqual(owners, [{ owner: role }]);
  });

  it('keeps a role out of the other databases of the server and away from the server files', async () => {
    const mine = await pgf.createDatabase('mine');
    const theirs = await pgf.createDatabase('theirs');
    const role = serviceRoleName('mine', 'test');
    const password = serviceRolePassword('worker-secret', role);
    await ensureServiceRole(pgf.urlFor('postgres'), mine, role, password);
    await ensureServiceRole(pgf.urlFor('postgres'), theirs, serviceRoleName('theirs', 'test'), 'other');

    const refused = await asRole(pgf, theirs, role, password, 'SELECT 1').catch((err: Error) => err);
    assert.ok(refused instanceof Error, 'connecting to another database must fail');
    assert.match((refused as Error).message, /permission denied for database/);
    const readFile = await asRole(pgf, mine, role, password, `SELECT pg_read_file('postgresql.conf')`).catch(
      (err: Error) => err,
    );
    assert.match((readFile as Error).message, /permission denied/);
    const wrong = await asRole(pgf, mine, role, 'guessed', 'SELECT 1').catch((err: Error) => err);
    assert.match((wrong as Error).message, /password authentication failed/);
  });

  it('is idempotent, and hands over what a later migration or a restore added', async () => {
    const db = await pgf.createDatabase('again');
    const role = serviceRoleName('again', 'test');
    const password = serviceRolePassword('worker-secret', role);
    await ensureServiceRole(pgf.urlFor('postgres'), db, role, password);
    await pgf.query(db, 'CREATE TABLE later (id int)');
    await ensureServiceRole(pgf.urlFor('postgres'), db, role, password);
    await asRole(pgf, db, role, password, 'INSERT INTO later VALUES (1)');
    const [owner] = await pgf.query<{ owner: string }>(
      'postgres',
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
      [db],
    );
    assert.equal(owner?.owner, role);
  });

  it('concurrent calls for the same role (two workers, two releases starting) all succeed', async () => {
    const db = await pgf.createDatabase('together');
    await pgf.query(db, 'CREATE TABLE t1 (id serial PRIMARY KEY); CREATE TABLE t2 (id int); CREATE VIEW v AS SELECT 1');
    const role = serviceRoleName('together', 'test');
    const password = serviceRolePassword('worker-secret', role);
    // Without the lock, ALTER ROLE and ALTER ... OWNER of concurrent calls failed with "tuple concurrently updated".
    await Promise.all(Array.from({ length: 6 }, () => ensureServiceRole(pgf.urlFor('postgres'), db, role, password)));
    assert.deepEqual(await asRole(pgf, db, role, password, 'SELECT count(*)::int AS n FROM t1'), [{ n: 0 }]);
  });
});
