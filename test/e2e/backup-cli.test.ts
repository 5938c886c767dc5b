import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { ARCHIVE_CONF, stanzaInfo } from '../../src/platforms/single-host/pgbackrest';
import { holdsOf, scratchClusters } from '../../src/platforms/single-host/pgbackrest-restore';
import { backupScheduleId, type BackupResult, type PitrDrillResult } from '../../src/shared/backup';
import {
  databaseUrl,
  ensureDatabase,
  postgresComponent,
  postgresPaths,
  stackPgbackrest,
} from '../../src/stack/postgres';
import { freePort } from '../../src/system/processes';
import { testStack, uniqueName, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';

const examples = path.join(__dirname, '../../examples');
const runbook = (args: string[], env: NodeJS.ProcessEnv) => runbookCli(args, env, 170_000);

/** examples/runbook.yaml's shop as a service of its own, with `backup`. */
async function writeConfig(dir: string, service: string, database: string, backup: unknown): Promise<string> {
  const doc = parse(readFileSync(path.join(examples, 'runbook.yaml'), 'utf8')) as {
    services: Record<string, Record<string, unknown>>;
  };
  const shop = doc.services.shop!;
  const low = 25000 + (process.pid % 50) * 20;
  doc.services = {
    [service]: {
      ...shop,
      listen: { port: await freePort() },
      release: {
        ...(shop.release as Record<string, unknown>),
        cwd: path.join(examples, 'shop/releases/{version}'),
        portRange: [low, low + 19],
      },
      database: { name: database, migrations: path.join(examples, 'shop/migrations') },
      traffic: { steps: [{ weight: 100 }] },
      backup,
      environments: { staging: {} },
    },
  };
  const file = path.join(dir, 'runbook.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

/**
 * `runbook backup` (src/cli/backup-command.ts) against the test stack: the backupService workflow on an in-process
 * worker, pgBackRest on the stack's PostgreSQL.
 */
describe('runbook backup (the CLI against the test stack)', function () {
  this.timeout(240_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-backup-e2e-'));
  let env: NodeJS.ProcessEnv;
  let service: string;
  const { taskQueue } = useWorker('backup-cli', () => ({ runbookConfig: path.join(dir, 'runbook.yaml') }));

  before(async () => {
    const stack = testStack();
    service = uniqueName('shop').replace(/[^a-z0-9-]/g, '');
    const database = service.replace(/-/g, '_');
    await ensureDatabase(stack.settings, database);
    env = {
      RUNBOOK_CONFIG: await writeConfig(dir, service, database, {
        schedule: { full: '0 3 * * 0' },
        retention: { full: 1 },
      }),
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: process.env.DATABASE_URL ?? '',
    };
  });

  after(async () => {
    if (env) await runbook(['backup', 'schedule', service, '--env', 'staging', '--delete'], env);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a one-off full backup runs as a workflow, its result recorded, and is listed', async () => {
    const r = await runbook(['backup', service, '--env', 'staging', '--type', 'full', '--wait', '--json'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as BackupResult & { workflowId: string };
    assert.equal(result.outcome, 'succeeded');
    assert.equal(result.backup.type, 'full');
    assert.ok(result.backup.bytes > 0 && result.backup.repoBytes > 0);
    assert.ok(result.backup.durationMs > 0);
    assert.match(result.backup.walStart ?? '', /^[0-9A-F]{24}$/);
    assert.deepEqual(result.verified, { ok: true, problems: [] });
    const listed = await runbook(['backup', 'list', service, '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const labels = (JSON.parse(listed.stdout) as { backups: { label: string }[] }).backups.map((b) => b.label);
    assert.ok(labels.includes(result.backup.label), listed.stdout);
    const text = await runbook(['backup', 'list', service], env);
    assert.match(text.stdout, new RegExp(`${result.backup.label}\\s+full`));
  });

  it('backup schedule makes a Temporal Schedule; its run backs up and retention (full: 1) expires the oldest', async () => {
    const runner = stackPgbackrest(testStack().settings);
    const before = (await stanzaInfo(runner)).backups.filter((b) => b.type === 'full').map((b) => b.label);
    assert.ok(before.length >= 1);
    const created = await runbook(['backup', 'schedule', service, '--env', 'staging'], env);
    assert.equal(created.code, 0, `${created.stdout}\n${created.stderr}`);
    const scheduleId = backupScheduleId(service, 'staging', 'full');
    assert.match(created.stdout, new RegExp(`${scheduleId}: created: full, cron "0 3 \\* \\* 0"`));
    const { client } = testStack();
    const handle = client.schedule.getHandle(scheduleId);
    await handle.trigger();
    let workflowId: string | undefined;
    for (let i = 0; i < 60 && !workflowId; i++) {
      workflowId = (await handle.describe()).info.recentActions[0]?.action.workflow.workflowId;
      if (!workflowId) await sleep(500);
    }
    assert.ok(workflowId, 'the schedule started a run');
    const result = (await client.workflow.getHandle(workflowId).result()) as BackupResult;
    assert.equal(result.backup.type, 'full');
    for (const old of before) assert.ok(result.expired.includes(old), `${old} expired: ${result.expired.join(', ')}`);
    const after = (await stanzaInfo(runner)).backups.map((b) => b.label);
    assert.deepEqual(after, [result.backup.label], 'only the newest full is left');

    const deleted = await runbook(['backup', 'schedule', service, '--env', 'staging', '--delete'], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /deleted/);
  });

  it('drill --to-time restores the cluster as of a moment into a scratch cluster, measures the RPO, removes it', async () => {
    const { settings } = testStack();
    const database = service.replace(/-/g, '_');
    const q = async (text: string) => {
      const c = new pg.Client({ connectionString: databaseUrl(settings, database) });
      await c.connect();
      try {
        return (await c.query(text)).rows;
      } finally {
        await c.end();
      }
    };
    await q("CREATE TABLE marks (v text); INSERT INTO marks VALUES ('before')");
    await sleep(1_100);
    const [mark] = await q('SELECT clock_timestamp() AS t');
    const at = (mark!.t as Date).toISOString();
    await sleep(1_100);
    await q("INSERT INTO marks VALUES ('after')");
    await stackPgbackrest(settings).run(['check']); // the segment with both inserts reaches the archive
    const r = await runbook(['drill', service, '--env', 'staging', '--to-time', at, '--wait', '--json'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as PitrDrillResult;
    assert.equal(result.outcome, 'passed');
    assert.ok(result.tables >= 1, 'the service database is on the copy');
    assert.ok(result.rpoMs !== null && result.rpoMs >= 0, `RPO ${result.rpoMs}`);
    assert.equal(result.removed, true);
    assert.deepEqual(scratchClusters(stackPgbackrest(settings)), [], 'no scratch cluster left');
    assert.deepEqual(holdsOf(stackPgbackrest(settings)), []);

    const early = await runbook(
      ['drill', service, '--env', 'staging', '--to-time', '2001-01-01T00:00:00Z', '--wait'],
      env,
    );
    assert.equal(early.code, 5, early.stdout);
    assert.match(early.stderr, /no backup ended before 2001-01-01T00:00:00.000Z.*fix: pick a later time/);
    const bad = await runbook(['drill', service, '--env', 'staging', '--to-time', 'yesterday'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--to-time must be an ISO 8601 time/);
  });

  it('a backup while WAL archiving is broken fails, saying what to do; runbook up mends it', async () => {
    const { settings } = testStack();
    const archiveFile = path.join(postgresPaths(settings.home).data, ARCHIVE_CONF);
    const good = readFileSync(archiveFile, 'utf8');
    const reload = async () => {
      const c = new pg.Client({ connectionString: databaseUrl(settings, 'postgres') });
      await c.connect();
      await c.query('SELECT pg_reload_conf()');
      await c.end();
    };
    writeFileSync(archiveFile, good.replace(/archive_command = '.*'/, "archive_command = 'false'"));
    await reload();
    try {
      const r = await runbook(['backup', service, '--env', 'staging', '--type', 'full', '--wait'], env);
      assert.equal(r.code, 5, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /WAL archiving does not work/);
      assert.match(r.stderr, /fix: .*runbook up/);
    } finally {
      await postgresComponent.start({ settings, log: () => {} }); // what `runbook up` does: rewrites and reloads
    }
    assert.equal(readFileSync(archiveFile, 'utf8'), good);
  });

  it('a service without backup: is refused with what to add', async () => {
    const config = parse(readFileSync(env.RUNBOOK_CONFIG!, 'utf8')) as {
      services: Record<string, { backup?: unknown }>;
    };
    delete config.services[service]!.backup;
    const file = path.join(dir, 'no-backup.yaml');
    writeFileSync(file, stringify(config));
    const r = await runbook(['backup', service, '--env', 'staging'], { ...env, RUNBOOK_CONFIG: file });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /has no backup: block/);
    assert.match(r.stderr, /retention/);
  });
});
