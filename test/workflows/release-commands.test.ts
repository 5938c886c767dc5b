import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DeployResult, DeployState } from '../../src/shared/deploy';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { spawnChildWorker, startWorker, uniqueName, useWorker } from '../harness';
import { commandPlan, ownReleases } from './release-commands-fixture';
import { queryDb, runner, shopPlan, snapshotPath, startDeploy, startRollback, waitForState } from './deploy-fixture';
import { startDrill } from './drill-fixture';

const started = (state: DeployState) => state.candidate?.releaseId;

async function expectNothingStarted(plan: ResolvedService, result: DeployResult): Promise<void> {
  assert.equal(started(result.state), undefined, 'no release was started');
  assert.equal(
    await runner()
      .list()
      .then((all) => all.filter((r) => r.service === plan.service).length),
    0,
  );
}

describe('release commands: migrations and checks the release brings', function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('release-commands');
  const made: string[] = [];
  const releases = (versions: string[]) => {
    const own = ownReleases(versions);
    made.push(own.root);
    return own;
  };
  after(() => {
    for (const root of made) rmSync(root, { recursive: true, force: true });
  });

  it("migrates with the release's own tool, checks its status, runs a command smoke check, and records the schema", async () => {
    const own = releases(['v1']);
    const plan = await commandPlan(own, {
      smoke: [
        { name: 'script', command: ['node', 'scripts/smoke.js', '{url}'], timeoutMs: 30_000, runFrom: 'release' },
      ],
    });
    const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const m = result.state.migrations!;
    assert.equal(m.by, 'command');
    assert.equal(m.before?.tables, 0);
    assert.equal(m.after?.tables, 1);
    assert.notEqual(m.before?.digest, m.after?.digest);
    assert.equal(m.command?.exitCode, 0);
    assert.equal(m.status?.exitCode, 0);
    // The runner masks the DATABASE_URL it gave the command wherever it shows up in the output.
    assert.match(m.command!.tail, /migrated with \*\*\*/);
    assert.doesNotMatch(m.command!.tail, /postgres(ql)?:\/\//);
    assert.match(m.status!.tail, /schema up to date/);
    const runs = own.runs();
    assert.deepEqual(
      runs.map((r) => r.split(' ')[0]),
      ['migrate', 'status', 'smoke'],
      'each ran once, in order',
    );
    assert.match(runs[2]!, /^smoke http:\/\/127\.0\.0\.1:\d+$/, '{url} is the candidate');
    const timeline = result.state.timeline.map((t) => t.message).join('\n');
    assert.match(timeline, /node scripts\/migrate\.js ok exited 0/);
    assert.match(timeline, /schema .* -> .*1 table/);
    const history = await queryDb<{ details: { migrations?: { by: string; changed: boolean } } }>(
      ORCHESTRATOR_DB,
      'SELECT details FROM releases WHERE snapshot_id = $1',
      [result.snapshotId],
    );
    assert.equal(history[0]?.details.migrations?.by, 'command');
    assert.equal(history[0]?.details.migrations?.changed, true);
  });

  it('a failing migrate command fails the deploy before anything starts; the snapshot is kept', async () => {
    const own = releases(['v1']);
    const plan = await commandPlan(own, { mode: 'fail' });
    const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', /migrate command node scripts\/migrate\.js fail exited 3/);
    assert.match(result.reason ?? '', /boom: migration 002_orders failed/);
    assert.match(result.reason ?? '', /snapshot .* is kept/);
    assert.ok(result.snapshotId);
    assert.ok(existsSync(path.join(snapshotPath(plan), `${result.snapshotId}.dump`)), 'the snapshot is kept');
    await expectNothingStarted(plan, result);
    assert.deepEqual(
      own.runs().map((r) => r.split(' ')[0]),
      ['migrate'],
      'no status command after a failure',
    );
    const kept = result.state.migrations;
    assert.equal(kept?.command?.exitCode, 3, 'the status keeps the failed run');
    assert.match(kept?.command?.tail ?? '', /boom/);
    assert.equal(kept?.after, undefined);
  });

  it('a migrate command that hangs is stopped at its timeout and fails the deploy', async () => {
    const own = releases(['v1']);
    const plan = await commandPlan(own, { mode: 'hang', timeoutMs: 3_000 });
    const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', /timed out after \d+\.\d s and was stopped/);
    const pid = Number(own.runs()[0]?.split(' ')[2]);
    assert.ok(pid > 0);
    assert.throws(() => process.kill(pid, 0), 'the hung command is gone');
    await expectNothingStarted(plan, result);
  });

  it('a status command that reports pending migrations fails the deploy', async () => {
    const own = releases(['v1']);
    const plan = await commandPlan(own, { status: 'pending' });
    const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', /status command node scripts\/status\.js pending exited 1/);
    assert.match(result.reason ?? '', /pending: 002_orders/);
    await expectNothingStarted(plan, result);
  });

  it('a failing command smoke check fails the deploy and stops the new release', async () => {
    const own = releases(['v1']);
    const plan = await commandPlan(own, {
      smoke: [
        {
          name: 'script',
          command: ['node', 'scripts/smoke.js', '{url}', 'fail'],
          timeoutMs: 30_000,
          runFrom: 'release',
        },
      ],
    });
    const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(result.outcome, 'failed');
    assert.match(result.reason ?? '', /smoke check "script" failed on v1/);
    assert.match(result.reason ?? '', /GET \/api\/items: 200/);
    const live = await runner().list();
    assert.equal(live.filter((r) => r.service === plan.service).length, 0, 'the new release was stopped');
  });

  it('SIGKILL of the worker mid-migration: the retried activity adopts the running command; it runs once', async () => {
    const crashQueue = uniqueName('release-commands-crash');
    const own = releases(['v1']);
    const plan = await commandPlan(own, { mode: 'slow' });
    const doomed = spawnChildWorker(crashQueue);
    let survivor: { stop(): Promise<void> } | undefined;
    try {
      const handle = await startDeploy(crashQueue, plan, 'v1');
      await waitForState(handle, (s) => s.phase === 'migrate', 'the migration', 90_000);
      const until = Date.now() + 30_000;
      while (own.runs().length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      assert.equal(own.runs().length, 1, 'the migrate command started');
      await doomed.kill();
      survivor = await startWorker(crashQueue, 'survivor');
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.deepEqual(
        own.runs().map((r) => r.split(' ')[0]),
        ['migrate', 'status'],
        'the migrate command ran once, though two workers ran its activity',
      );
      assert.equal(result.state.migrations?.command?.adopted, true);
    } finally {
      await doomed.kill();
      await survivor?.stop();
    }
  });

  it("the drill runs the release's migrate and integrity commands on the copy; the output is its integrity notes", async () => {
    const own = releases(['v1']);
    const base = await commandPlan(own);
    const plan: ResolvedService = {
      ...base,
      drill: {
        rtoTargetMs: 600_000,
        integrityCommand: { command: ['node', 'scripts/integrity.js'], timeoutMs: 30_000 },
      },
    };
    const v1 = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(v1.outcome, 'succeeded', v1.reason);
    await queryDb(plan.database!.name, "INSERT INTO items (name, price_cents) VALUES ('pear', 120), ('fig', 80)");
    const drillHandle = await startDrill(taskQueue, plan, { fresh: true });
    const drill = await drillHandle.result();
    assert.equal(drill.outcome, 'passed', drill.reason);
    const command = drill.drill.integrity.command!;
    assert.equal(command.ok, true);
    assert.match(command.notes, /items: 2 rows, 0 with a negative price/);
    const runs = own.runs();
    const scratch = `/${drill.drill.scratchDatabase}`;
    assert.ok(runs.includes(`integrity ${scratch}`), `the integrity command ran against the copy: ${runs.join('; ')}`);
    assert.equal(runs.filter((r) => r.startsWith('migrate')).length, 2, 'the deploy, then the drill on the copy');
    const record = await queryDb<{ integrity: { command?: { notes: string } } }>(
      ORCHESTRATOR_DB,
      'SELECT integrity FROM drill_runs WHERE workflow_id = $1',
      [drillHandle.workflowId],
    );
    assert.match(record[0]?.integrity.command?.notes ?? '', /2 rows/);
  });

  it('the first deploy of a new service creates its database on the embedded stack', async () => {
    const base = await shopPlan();
    const name = `${base.database!.name}_new`;
    const plan: ResolvedService = { ...base, database: { ...base.database!, name } };
    const first = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(first.outcome, 'succeeded', first.reason);
    assert.match(first.state.timeline.map((t) => t.message).join('\n'), new RegExp(`created the database ${name}`));
    const tables = await queryDb<{ n: number }>(
      name,
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'items'",
    );
    assert.equal(tables[0]?.n, 1, 'migrated');
    const second = await (await startDeploy(taskQueue, plan, 'v2')).result();
    assert.equal(second.outcome, 'succeeded', second.reason);
    assert.doesNotMatch(second.state.timeline.map((t) => t.message).join('\n'), /created the database/);
  });

  it('an app-only rollback across a breaking migration is refused, naming the choices', async () => {
    const own = releases(['v1', 'v2']);
    const plan = await commandPlan(own);
    const v1 = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(v1.outcome, 'succeeded', v1.reason);
    const breaking: ResolvedService = {
      ...plan,
      database: {
        ...plan.database!,
        migrate: { ...plan.database!.migrate!, command: ['node', 'scripts/migrate.js', 'breaking'] },
        compatibility: 'breaking',
      },
    };
    const v2 = await (await startDeploy(taskQueue, breaking, 'v2')).result();
    assert.equal(v2.outcome, 'succeeded', v2.reason);
    const rollback = await (await startRollback(taskQueue, breaking)).result();
    assert.equal(rollback.outcome, 'failed');
    assert.match(rollback.reason ?? '', /app-only rollback of .* to v1 is refused: v2 .* declared breaking/);
    assert.match(rollback.reason ?? '', new RegExp(`--restore-db ${v2.snapshotId}`));
    assert.match(rollback.reason ?? '', /roll forward/);
    const live = (await runner().list()).filter((r) => r.service === plan.service);
    assert.deepEqual(
      live.map((r) => r.version),
      ['v2'],
      'v2 still serves',
    );
  });
});
