import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createMigrator } from '../../src/pg/migrator';
import { freePort } from '../../src/system/processes';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

const RELEASES = path.join(__dirname, '../../examples/shop/releases');
const V6 = path.join(RELEASES, 'v6-migrate-command');

interface Run {
  code: number;
  out: string;
}

/** Runs `node <args>` in `cwd` (the release folder, as the release command runner does) with DATABASE_URL. */
async function node(cwd: string, args: string[], databaseUrl?: string): Promise<Run> {
  const env = {
    PATH: process.env.PATH,
    NODE_PATH: path.join(__dirname, '../../node_modules'), // for a copy outside the repository, where pg resolves
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  try {
    const { stdout, stderr } = await promisify(execFile)('node', args, { cwd, env, timeout: 30_000 });
    return { code: 0, out: `${stdout}${stderr}`.trim() };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() };
  }
}

describe('examples/shop releases that bring their own migrations and tools (real PostgreSQL)', function () {
  this.timeout(60_000);
  let pgf: PgFixture;
  before(async function () {
    this.timeout(120_000);
    pgf = await startPgFixture();
  });
  after(async function () {
    this.timeout(60_000);
    await pgf?.stop();
  });

  it('v5-own-migrations: its plain SQL folder migrates a new database with the runbooks migrator', async () => {
    const db = await pgf.createDatabase('shop_tools_sql');
    const migrator = createMigrator(pgf.urlFor);
    const v5 = path.join(RELEASES, 'v5-own-migrations', 'migrations');
    assert.deepEqual((await migrator.migrate(db, v5)).applied, ['001_create_items', '002_add_items_price_cents']);
    // v6's folder holds the same files and one more: an upgrade applies only that one.
    assert.deepEqual((await migrator.migrate(db, path.join(V6, 'migrations'))).applied, ['003_index_items_name']);
  });

  it('v6-migrate-command: migrate.js applies in order once, --status says what is pending, a failure applies nothing', async () => {
    const db = await pgf.createDatabase('shop_tools');
    const url = pgf.urlFor(db);
    assert.deepEqual(await node(V6, ['scripts/migrate.js', '--status'], url), {
      code: 1,
      out: 'migrate: 3 pending: 001_create_items.sql, 002_add_items_price_cents.sql, 003_index_items_name.sql',
    });
    assert.deepEqual(await node(V6, ['scripts/migrate.js'], url), {
      code: 0,
      out: 'migrate: applied 001_create_items, 002_add_items_price_cents, 003_index_items_name',
    });
    assert.deepEqual(await node(V6, ['scripts/migrate.js'], url), { code: 0, out: 'migrate: nothing to apply' });
    assert.deepEqual(await node(V6, ['scripts/migrate.js', '--status'], url), {
      code: 0,
      out: 'migrate: nothing pending (3 applied)',
    });
    const names = await pgf.query<{ name: string }>(db, 'SELECT name FROM shop_migrations ORDER BY applied_at, name');
    assert.deepEqual(
      names.map((r) => r.name),
      ['001_create_items', '002_add_items_price_cents', '003_index_items_name'],
    );

    // A copy of the release with a good and a broken migration more: neither is applied.
    const copy = path.join(pgf.scratch, 'v6-copy');
    cpSync(V6, copy, { recursive: true });
    writeFileSync(path.join(copy, 'migrations', '004_add_sku.sql'), 'ALTER TABLE items ADD COLUMN sku text;');
    writeFileSync(path.join(copy, 'migrations', '010_broken.sql'), 'UPDATE items SET no_such_column = 1;');
    const failed = await node(copy, ['scripts/migrate.js'], url);
    assert.equal(failed.code, 1);
    assert.match(failed.out, /migrate: 010_broken\.sql failed: column "no_such_column" .* nothing was applied/);
    const columns = await pgf.query(db, `SELECT 1 FROM information_schema.columns WHERE column_name = 'sku'`);
    assert.deepEqual(columns, [], '004 was rolled back');
    assert.equal((await node(copy, ['scripts/migrate.js', '--status'], url)).code, 1);

    assert.equal((await node(V6, ['scripts/migrate.js'])).code, 2, 'no DATABASE_URL');
  });

  it('v6-migrate-command: integrity.js passes on good data and names a negative price; smoke.js checks /api/items', async () => {
    const db = await pgf.createDatabase('shop_tools');
    const url = pgf.urlFor(db);
    await node(V6, ['scripts/migrate.js'], url);
    await pgf.query(db, `INSERT INTO items (name, price_cents) VALUES ('pear', 120), ('fig', NULL)`);
    assert.deepEqual(await node(V6, ['scripts/integrity.js'], url), {
      code: 0,
      out: 'integrity: ok: 2 items, 3 migrations recorded, no negative prices, no empty names',
    });
    await pgf.query(db, `INSERT INTO items (name, price_cents) VALUES ('refund', -5)`);
    assert.deepEqual(await node(V6, ['scripts/integrity.js'], url), {
      code: 1,
      out: 'integrity: FAIL: 1 items with a negative price (3 items, 3 migrations recorded)',
    });

    const port = await freePort();
    const server = spawn('node', ['server.js'], {
      cwd: V6,
      env: { PATH: process.env.PATH, PORT: String(port), APP_VERSION: 'v6-migrate-command', DATABASE_URL: url },
      stdio: 'ignore',
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 100; i++) {
        if (
          await fetch(`${base}/health`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(await node(V6, ['scripts/smoke.js', base]), {
        code: 0,
        out: 'smoke: GET /api/items 200, 3 items',
      });
    } finally {
      server.kill('SIGTERM');
    }
    const refused = await node(V6, ['scripts/smoke.js', `http://127.0.0.1:${await freePort()}`]);
    assert.equal(refused.code, 1);
    assert.equal((await node(V6, ['scripts/smoke.js'])).code, 2, 'no URL');
  });
});
