import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgresBinDir } from '../../src/pg/bin-dir';
import {
  ARCHIVE_CONF,
  expireBackups,
  stanzaInfo,
  takeBackup,
  verifyRepository,
} from '../../src/platforms/single-host/pgbackrest';
import {
  holdsOf,
  recoveredTo,
  removeScratch,
  restoreToTime,
  scratchClusters,
} from '../../src/platforms/single-host/pgbackrest-restore';
import { PlatformError } from '../../src/platforms/types';
import {
  databaseUrl,
  postgresComponent,
  postgresPaths,
  removeCluster,
  stackPgbackrest,
} from '../../src/stack/postgres';
import { resolveStackSettings, type StackSettings } from '../../src/stack/settings';
import { freePort } from '../../src/system/processes';

const run = promisify(execFile);

async function sql(settings: StackSettings, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: databaseUrl(settings, 'postgres') });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

/** The stack's PostgreSQL with pgBackRest (src/stack/postgres.ts, src/platforms/single-host/pgbackrest.ts). */
describe('the stack PostgreSQL archives WAL to pgBackRest', function () {
  this.timeout(300_000);
  let home: string;
  let settings: StackSettings;
  const lines: string[] = [];
  const ctx = () => ({ settings, log: (l: string) => lines.push(l) });

  before(async () => {
    home = mkdtempSync(path.join(os.tmpdir(), 'runbook-pgbackrest-'));
    settings = resolveStackSettings({}, { home, postgresPort: await freePort() });
  });

  after(async () => {
    await postgresComponent.stop(ctx()).catch(() => false);
    removeCluster(home);
    rmSync(home, { recursive: true, force: true });
  });

  it('a new cluster archives from its first start: private config without secret, stanza made, doctor passes', async () => {
    await postgresComponent.start(ctx());
    const runner = stackPgbackrest(settings);
    assert.equal(statSync(runner.paths.config).mode & 0o777, 0o600);
    const config = readFileSync(runner.paths.config, 'utf8');
    const password = readFileSync(postgresPaths(home).passwordFile, 'utf8').trim();
    assert.ok(!config.includes(password), 'the superuser password is not in pgbackrest.conf');
    assert.match(config, /^\[runbook\]$/m);
    const [mode] = await sql(settings, 'SHOW archive_mode');
    assert.equal(mode?.archive_mode, 'on');
    assert.ok(!lines.some((l) => /restarting/.test(l)), 'a new cluster starts with archiving: no restart');
    const checks = await postgresComponent.check(ctx());
    const backups = checks.find((c) => c.check === 'backups');
    assert.equal(backups?.ok, true, backups?.detail);
    assert.match(backups?.detail ?? '', /pgbackrest check/);
  });

  it('a cluster of an older version (running, archive_mode off) gets archiving on its next up, restarted once', async () => {
    const p = postgresPaths(home);
    const runner = stackPgbackrest(settings);
    // The older layout: no archive settings, no pgBackRest files, and the server running without archiving.
    rmSync(path.join(p.data, ARCHIVE_CONF));
    rmSync(runner.paths.dir, { recursive: true, force: true });
    const pgCtl = path.join(postgresBinDir()!, 'pg_ctl');
    const asPostgres = (args: string[]) =>
      process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', pgCtl, ...args]) : run(pgCtl, args);
    await asPostgres(['restart', '-w', '-m', 'fast', '-D', p.data, '-l', p.log]);
    assert.equal((await sql(settings, 'SHOW archive_mode'))[0]?.archive_mode, 'off');
    const doctor = (await postgresComponent.check(ctx())).find((c) => c.check === 'backups');
    assert.equal(doctor?.ok, false);
    assert.match(doctor?.fix ?? '', /runbook up/);
    await sql(settings, 'CREATE TABLE IF NOT EXISTS kept (n int); INSERT INTO kept VALUES (7)');

    lines.length = 0;
    await postgresComponent.start(ctx());
    assert.ok(
      lines.some((l) => /restarting to turn on WAL archiving/.test(l)),
      lines.join('\n'),
    );
    assert.equal((await sql(settings, 'SHOW archive_mode'))[0]?.archive_mode, 'on');
    assert.deepEqual(await sql(settings, 'SELECT n FROM kept'), [{ n: 7 }]);
    assert.equal((await postgresComponent.check(ctx())).find((c) => c.check === 'backups')?.ok, true);

    lines.length = 0;
    await postgresComponent.start(ctx());
    assert.ok(!lines.some((l) => /restarting/.test(l)), 'the next up changes nothing');
  });

  it('takes full, diff and incr backups, recorded with size and WAL range; a retried backup id is adopted', async () => {
    const runner = stackPgbackrest(settings);
    const full = await takeBackup(runner, { backupId: 'test-full-1', type: 'full', service: 'shop' });
    assert.equal(full.type, 'full');
    assert.ok(full.bytes > 0 && full.repoBytes > 0);
    assert.match(full.walStart ?? '', /^[0-9A-F]{24}$/);
    assert.match(full.walStop ?? '', /^[0-9A-F]{24}$/);
    const again = await takeBackup(runner, { backupId: 'test-full-1', type: 'full', service: 'shop' });
    assert.equal(again.label, full.label, 'the same id: the same backup, not a second one');
    const diff = await takeBackup(runner, { backupId: 'test-diff-1', type: 'diff', service: 'shop' });
    assert.equal(diff.type, 'diff');
    assert.equal(diff.prior, full.label);
    const incr = await takeBackup(runner, { backupId: 'test-incr-1', type: 'incr', service: 'shop' });
    assert.equal(incr.prior, diff.label);
    const info = await stanzaInfo(runner);
    assert.deepEqual(
      info.backups.map((b) => b.label),
      [full.label, diff.label, incr.label],
    );
    assert.equal(info.backups[0]?.annotation['runbook-service'], 'shop');
    const verified = await verifyRepository(runner);
    assert.equal(verified.ok, true, verified.problems.join('\n'));
    const open = (await run('find', [runner.paths.dir, '-perm', '/077', '!', '-type', 'l'])).stdout
      .split('\n')
      .filter(Boolean);
    assert.deepEqual(open, [], 'the repository, its log and its config are private to their owner');
  });

  it('retention expires the oldest full with its chain, never the newest full nor a kept one', async () => {
    const runner = stackPgbackrest(settings);
    const second = await takeBackup(runner, { backupId: 'test-full-2', type: 'full', service: 'shop' });
    const third = await takeBackup(runner, { backupId: 'test-full-3', type: 'full', service: 'shop' });
    const before = (await stanzaInfo(runner)).backups.map((b) => b.label);
    const [first] = before;
    assert.ok(first);

    // A running drill needs the oldest full: with it kept, full: 1 expires everything else but the newest full (the
    // first full's diff and incr too: the drill needs the full, not what depends on it).
    const kept = await expireBackups(runner, { full: 1 }, [first], Date.now());
    assert.deepEqual(
      kept.expired,
      before.filter((l) => l !== first && l !== third.label),
    );
    assert.ok(kept.expired.includes(second.label));
    assert.deepEqual(
      (await stanzaInfo(runner)).backups.map((b) => b.label),
      [first, third.label],
    );

    // Once nothing needs it, the oldest full goes.
    const expired = await expireBackups(runner, { full: 1 }, [], Date.now());
    assert.deepEqual(expired.expired, [first]);
    assert.deepEqual(
      (await stanzaInfo(runner)).backups.map((b) => b.label),
      [third.label],
    );
    const info = await stanzaInfo(runner);
    assert.ok(info.archive && info.archive.min >= (info.backups[0]?.walStart ?? ''), 'the WAL before it went too');
  });

  it('restores to a moment into a scratch cluster: the rows up to it, the RPO from the last replayed commit, then removed', async () => {
    const runner = stackPgbackrest(settings);
    await sql(settings, 'CREATE TABLE pitr (v text, at timestamptz DEFAULT clock_timestamp())');
    await sql(settings, "INSERT INTO pitr (v) VALUES ('before')");
    const [before] = await sql(settings, "SELECT at FROM pitr WHERE v = 'before'");
    await sleep(1_100);
    const [mark] = await sql(settings, 'SELECT clock_timestamp() AS t');
    const targetMs = (mark!.t as Date).getTime();
    await sleep(1_100);
    await sql(settings, "INSERT INTO pitr (v) VALUES ('after')");
    await runner.run(['check']); // switches the WAL segment and waits until it is archived
    const port = await freePort();
    const copy = await restoreToTime(runner, { target: 'pitr_test', atMs: targetMs, port });
    try {
      assert.deepEqual(holdsOf(runner), [copy.backup], 'the base backup is held while the copy exists');
      const held = await expireBackups(runner, { full: 1 }, holdsOf(runner), Date.now());
      assert.deepEqual(held.expired, []);
      const url = databaseUrl({ ...settings, postgresPort: port }, 'postgres');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const rows = (await client.query('SELECT v FROM pitr ORDER BY at')).rows;
      await client.end();
      assert.deepEqual(rows, [{ v: 'before' }], 'exactly the rows committed up to the target');
      const facts = await recoveredTo(url, copy.backup);
      assert.ok(facts.lastCommitMs !== null);
      assert.ok(facts.lastCommitMs <= targetMs, 'nothing after the target');
      assert.ok(facts.lastCommitMs >= (before!.at as Date).getTime(), "the 'before' row's commit was replayed");
      const [live] = await sql(settings, 'SHOW archive_mode');
      assert.equal(live?.archive_mode, 'on', 'the live cluster is untouched');
    } finally {
      await removeScratch(runner, 'pitr_test');
    }
    assert.ok(!existsSync(copy.dir), 'the scratch cluster is removed');
    assert.deepEqual(holdsOf(runner), []);
    assert.deepEqual(scratchClusters(runner), []);
  });

  it('a backup with archiving broken fails with ArchiveBroken and what to do', async () => {
    const p = postgresPaths(home);
    const archiveFile = path.join(p.data, ARCHIVE_CONF);
    const good = readFileSync(archiveFile, 'utf8');
    writeFileSync(archiveFile, good.replace(/archive_command = '.*'/, "archive_command = 'false'"));
    await sql(settings, 'SELECT pg_reload_conf()');
    try {
      await assert.rejects(
        takeBackup(stackPgbackrest(settings), { backupId: 'test-broken', type: 'full', service: 'shop' }),
        (err: unknown) => {
          assert.ok(err instanceof PlatformError, String(err));
          assert.equal(err.type, 'ArchiveBroken', err.message);
          assert.equal(err.permanent, true);
          assert.match(err.fix ?? '', /runbook up/);
          return true;
        },
      );
    } finally {
      lines.length = 0;
      await postgresComponent.start(ctx()); // rewrites the archive settings and reloads
    }
    assert.equal(readFileSync(archiveFile, 'utf8'), good);
    assert.ok(existsSync(archiveFile));
  });
});
