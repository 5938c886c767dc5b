import assert from 'node:assert/strict';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createDbActivities } from '../../src/activities/db';
import { createDatabaseIfMissing } from '../../src/pg/create-database';
import { urlWith } from '../../src/pg/service-role';
import { createSingleHostPlatform } from '../../src/platforms/single-host';
import type { PlatformParts } from '../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';
import { mockActivityEnv } from './mock-env';

const exists = async (pgf: PgFixture, database: string) =>
  (await pgf.query(`postgres`, 'SELECT 1 FROM pg_database WHERE datname = $1', [database])).length === 1;

const ownerOf = async (pgf: PgFixture, database: string) =>
  (
    await pgf.query<{ owner: string }>(
      'postgres',
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
      [database],
    )
  )[0]?.owner;

/** The PreflightFailed an activity call rejects with. */
async function preflightOf(call: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await call.then(
    () => assert.fail('prepareDatabase passed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  assert.equal(err.type, 'PreflightFailed');
  assert.equal(err.nonRetryable, true);
  return err;
}

describe('prepareDatabase: a first deploy creates its database on the stack, checks an external one (real PostgreSQL)', function () {
  this.timeout(60_000);
  let pgf: PgFixture;
  let counter = 0;
  const fresh = (prefix: string) => `${prefix}_${process.pid}_${++counter}`;

  /** The db activities on a real single-host platform over the fixture's server, with `env` as the worker's. */
  function activities(opts: { serviceRoles: boolean; env?: NodeJS.ProcessEnv; platform?: PlatformParts }) {
    const platform =
      opts.platform ??
      createSingleHostPlatform({
        home: path.join(pgf.scratch, `home-${++counter}`),
        haproxySocket: path.join(pgf.scratch, 'no-haproxy.sock'),
        urlFor: pgf.urlFor,
        workerSecret: 'test-worker-secret',
        serviceRoles: opts.serviceRoles,
      });
    const env = mockActivityEnv();
    const db = createDbActivities({ platforms: { get: () => platform }, env: opts.env ?? {} });
    return (req: Parameters<typeof db.prepareDatabase>[0]) => env.run(db.prepareDatabase, req);
  }

  before(async function () {
    this.timeout(120_000);
    pgf = await startPgFixture();
  });
  after(async function () {
    this.timeout(60_000);
    await pgf?.stop();
  });

  it('creates the database on the first call and finds it on the next', async () => {
    const prepare = activities({ serviceRoles: false });
    const database = fresh('first');
    assert.equal(await exists(pgf, database), false);
    assert.equal(await prepare({ service: 'first', environment: 'test', database }), 'created');
    assert.equal(await exists(pgf, database), true);
    assert.equal(await prepare({ service: 'first', environment: 'test', database }), 'exists');
    assert.equal(await ownerOf(pgf, database), 'postgres');
  });

  it("with service roles, the new database belongs to the service's role, which can connect to it", async () => {
    const prepare = activities({ serviceRoles: true });
    const database = fresh('owned');
    assert.equal(await prepare({ service: 'owned-svc', environment: 'test', database }), 'created');
    assert.equal(await ownerOf(pgf, database), 'owned_svc_test_app');
    const grants = await pgf.query<{ public: boolean }>(
      'postgres',
      `SELECT has_database_privilege('public', $1, 'CONNECT') AS public`,
      [database],
    );
    assert.deepEqual(grants, [{ public: false }], 'other roles cannot connect');
    assert.equal(await prepare({ service: 'owned-svc', environment: 'test', database }), 'exists');
  });

  it('concurrent calls (two workers) both succeed, one of them creating it', async () => {
    const prepare = activities({ serviceRoles: true });
    const database = fresh('race');
    const req = { service: 'race', environment: 'test', database };
    const outcomes = await Promise.all([prepare(req), prepare(req), prepare(req), prepare(req)]);
    assert.ok(outcomes.includes('created'), outcomes.join());
    assert.ok(outcomes.every((o) => o === 'created' || o === 'exists'));
    assert.equal(await ownerOf(pgf, database), 'race_test_app');

    const direct = fresh('race_direct');
    const raced = await Promise.all(
      Array.from({ length: 6 }, () => createDatabaseIfMissing(pgf.urlFor('postgres'), direct)),
    );
    assert.equal(raced.filter((o) => o === 'created').length, 1, raced.join());
  });

  it('quotes the name it creates', async () => {
    const odd = `Odd "name" ${++counter}`;
    assert.equal(await createDatabaseIfMissing(pgf.urlFor('postgres'), odd), 'created');
    assert.equal(await exists(pgf, odd), true);
    assert.equal(await createDatabaseIfMissing(pgf.urlFor('postgres'), odd), 'exists');
  });

  it('never creates a database named by urlEnv: a missing one is PreflightFailed with the psql command, no password', async () => {
    const database = fresh('external');
    const url = urlWith(pgf.urlFor('postgres'), { database });
    const password = decodeURIComponent(new URL(url).password);
    assert.ok(password.length > 0, 'the fixture has a password');
    const prepare = activities({ serviceRoles: true, env: { SHOP_DATABASE_URL: url } });
    const port = new URL(url).port;

    const err = await preflightOf(
      prepare({ service: 'shop', environment: 'test', database, urlEnv: 'SHOP_DATABASE_URL' }),
    );
    assert.equal(
      err.message,
      `database "${database}" does not exist on 127.0.0.1:${port} (from SHOP_DATABASE_URL): create it first: ` +
        `psql -h 127.0.0.1 -p ${port} -U postgres -d postgres -c 'CREATE DATABASE ${database} OWNER postgres'`,
    );
    assert.ok(!err.message.includes(password) && !err.message.includes(url));
    assert.equal(await exists(pgf, database), false, 'the platform did not create it');

    await pgf.createDatabase('unused'); // the server still works; now create it as the hint says
    await createDatabaseIfMissing(pgf.urlFor('postgres'), database);
    assert.equal(
      await prepare({ service: 'shop', environment: 'test', database, urlEnv: 'SHOP_DATABASE_URL' }),
      'exists',
    );
  });

  it('an unset urlEnv, a refused login: PreflightFailed naming the variable and user, never the password', async () => {
    const database = await pgf.createDatabase('external');
    const wrong = urlWith(pgf.urlFor(database), { database, password: 'not-the-password-123' });
    const prepare = activities({ serviceRoles: false, env: { SHOP_DATABASE_URL: wrong } });

    const refused = await preflightOf(
      prepare({ service: 'shop', environment: 'test', database, urlEnv: 'SHOP_DATABASE_URL' }),
    );
    assert.match(refused.message, /127\.0\.0\.1:\d+ \(from SHOP_DATABASE_URL\) refuses the login of user "postgres"/);
    assert.match(refused.message, /password authentication failed/);
    assert.ok(!refused.message.includes('not-the-password-123'));

    const unset = await preflightOf(
      prepare({ service: 'shop', environment: 'test', database, urlEnv: 'OTHER_DATABASE_URL' }),
    );
    assert.match(unset.message, /the worker has no OTHER_DATABASE_URL set/);
  });

  it('a platform without ensureDatabase (aws-ecs) checks through urlEnv, and refuses a database without one', async () => {
    const database = await pgf.createDatabase('rds');
    const { ensureDatabase: _none, ...withoutCreate } = createSingleHostPlatform({
      home: path.join(pgf.scratch, 'home-aws-like'),
      haproxySocket: path.join(pgf.scratch, 'no-haproxy.sock'),
      urlFor: pgf.urlFor,
      workerSecret: 'test-worker-secret',
      serviceRoles: false,
    });
    const prepare = activities({
      serviceRoles: false,
      platform: withoutCreate,
      env: { SHOP_DATABASE_URL: pgf.urlFor(database) },
    });
    assert.equal(
      await prepare({ service: 'shop', environment: 'test', database, urlEnv: 'SHOP_DATABASE_URL' }),
      'exists',
    );
    const err = await preflightOf(prepare({ service: 'shop', environment: 'test', database }));
    assert.match(err.message, /has no database\.urlEnv and this platform does not create databases/);
  });
});
