import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { UserError } from '../../src/errors';
import { postgresBinDir } from '../../src/pg/bin-dir';
import {
  ROOT_CLUSTERS_DIR,
  databaseUrl,
  postgresComponent,
  postgresPaths,
  removeCluster,
} from '../../src/stack/postgres';
import { resolveStackSettings, type StackSettings } from '../../src/stack/settings';
import { freePort } from '../../src/system/processes';

const run = promisify(execFile);

async function query(settings: StackSettings, sql: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: databaseUrl(settings, 'runbook') });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/**
 * What `find <dir> -perm /077` prints: anything group or others could use. Symbolic links (pgBackRest's `latest`) are
 * left out: Linux ignores a link's own mode, and what it points to is listed if it is open.
 */
async function openToOthers(dir: string): Promise<string[]> {
  const { stdout } = await run('find', [dir, '-perm', '/077', '!', '-type', 'l']);
  return stdout.split('\n').filter(Boolean);
}

/**
 * The stack's PostgreSQL (src/stack/postgres.ts) when the data folder is in a private (0700) folder, as a repository
 * under /root is on a fresh VM. As root the server runs as the `postgres` user, which cannot pass through such a folder.
 */
describe('the stack PostgreSQL in a private home (as root)', function () {
  this.timeout(180_000);
  let parent: string;
  let settings: StackSettings;
  const ctx = () => ({ settings, log: () => {} });

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // the postgres user only comes into play as root
    parent = mkdtempSync(path.join(os.tmpdir(), 'runbook-root-home-'));
    chmodSync(parent, 0o700);
  });

  after(async () => {
    if (!settings) return;
    await postgresComponent.stop(ctx()).catch(() => false);
    removeCluster(settings.home);
    rmSync(parent, { recursive: true, force: true });
  });

  it('starts with its data folder inside a 0700 folder: the cluster is the postgres user’s, the data folder stays private', async () => {
    settings = resolveStackSettings(
      {},
      { home: path.join(parent, 'repo', '.runbook'), postgresPort: await freePort() },
    );
    await postgresComponent.start(ctx());
    await query(settings, 'CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)');

    const p = postgresPaths(settings.home);
    assert.equal(path.dirname(p.cluster), ROOT_CLUSTERS_DIR);
    const postgresUid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    for (const d of [p.cluster, p.data, p.socketDir]) {
      assert.equal(statSync(d).uid, postgresUid, d);
      assert.equal(statSync(d).mode & 0o777, 0o700, d);
    }
    assert.equal(statSync(p.dir).uid, 0, 'the data folder’s own part (the password) is root’s');
    assert.equal(statSync(parent).mode & 0o777, 0o700, 'the folder above is left as it was');
    assert.deepEqual(await openToOthers(parent), []);
    assert.deepEqual(await openToOthers(p.cluster), [], 'its socket is 0700 too');
  });

  it('a cluster that an older version made in the data folder is moved out, with its data, when it is stopped', async () => {
    assert.ok(settings, 'the first test started the cluster');
    await postgresComponent.stop(ctx());
    const p = postgresPaths(settings.home);
    // The older layout: data/ and run/ in <home>/postgres (the postgres user's), no record.
    const { uid, gid } = statSync(p.cluster);
    renameSync(p.data, path.join(p.dir, 'data'));
    rmSync(p.record);
    rmSync(p.cluster, { recursive: true, force: true });
    mkdirSync(path.join(p.dir, 'run'));
    chownSync(path.join(p.dir, 'run'), uid, gid);
    chownSync(p.dir, uid, gid);
    assert.equal(postgresPaths(settings.home).data, path.join(p.dir, 'data'), 'used in place until it is moved');

    // While it runs there (the older version had opened the folders above to the postgres user), it is not moved.
    for (const d of [parent, path.dirname(settings.home), settings.home]) chmodSync(d, 0o755);
    const pgCtl = path.join(postgresBinDir()!, 'pg_ctl');
    const legacy = path.join(p.dir, 'data');
    const opts = `-p ${settings.postgresPort} -k ${path.join(p.dir, 'run')} -c listen_addresses=127.0.0.1`;
    await run('runuser', ['-u', 'postgres', '--', pgCtl, 'start', '-w', '-D', legacy, '-l', '/dev/null', '-o', opts]);
    try {
      await assert.rejects(postgresComponent.preflight(ctx()), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /PostgreSQL runs from .*inside the data folder/);
        assert.match(err.fix ?? '', /runbook down/);
        return true;
      });
      assert.equal(await postgresComponent.stop(ctx()), true, '`runbook down` stops it where it is');
    } finally {
      await run('runuser', ['-u', 'postgres', '--', pgCtl, 'stop', '-D', legacy, '-m', 'fast']).catch(() => undefined);
    }
    for (const d of [parent, path.dirname(settings.home), settings.home]) chmodSync(d, 0o700);

    await postgresComponent.start(ctx());
    const moved = postgresPaths(settings.home);
    assert.equal(path.dirname(moved.cluster), ROOT_CLUSTERS_DIR);
    assert.ok(existsSync(moved.record));
    assert.ok(!existsSync(path.join(p.dir, 'data')));
    assert.equal(statSync(p.dir).uid, 0);
    assert.deepEqual(await query(settings, 'SELECT n FROM kept'), [{ n: 42 }], 'its databases came along');
  });

  it('a data folder copied with its cluster record does not share the other one’s cluster', async () => {
    assert.ok(settings, 'the first test started the cluster');
    const copy = path.join(parent, 'copy', '.runbook');
    mkdirSync(path.join(copy, 'postgres'), { recursive: true, mode: 0o700 });
    copyFileSync(postgresPaths(settings.home).record, postgresPaths(copy).record);
    const copied = resolveStackSettings({}, { home: copy, postgresPort: await freePort() });
    await assert.rejects(postgresComponent.start({ settings: copied, log: () => {} }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /belongs to the data folder .*repo\/\.runbook/);
      return true;
    });
  });
});
