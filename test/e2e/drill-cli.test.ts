import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import type { DrillResult } from '../../src/shared/drill';
import { drillScheduleId } from '../../src/shared/drill';
import { ensureDatabase } from '../../src/stack/postgres';
import { freePort } from '../../src/system/processes';
import { testStack, uniqueName, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';

const examples = path.join(__dirname, '../../examples');

const runbook = (args: string[], env: NodeJS.ProcessEnv) => runbookCli(args, env, 170_000);

/** examples/runbook.yaml's shop, as a service of its own for this test: name, ports, database, short timings. */
async function writeConfig(dir: string, service: string, database: string): Promise<string> {
  const doc = parse(readFileSync(path.join(examples, 'runbook.yaml'), 'utf8')) as {
    services: Record<string, Record<string, unknown>>;
  };
  const shop = doc.services.shop!;
  const low = 24000 + (process.pid % 50) * 20;
  const release = shop.release as Record<string, unknown>;
  doc.services = {
    [service]: {
      ...shop,
      listen: { port: await freePort() },
      release: {
        ...release,
        cwd: path.join(examples, 'shop/releases/{version}'),
        portRange: [low, low + 19],
        drain: '500ms',
      },
      health: { ...(shop.health as object), deadline: '20s' },
      database: { name: database, migrations: path.join(examples, 'shop/migrations') },
      traffic: { steps: [{ weight: 100 }] },
      approvals: { gates: [], approvers: ['alice', 'bob'], fourEyes: true, timeout: '1m', onTimeout: 'abort' },
      drill: { rtoTarget: '5m', schedule: '0 3 * * 1' },
      // A team's choice for this staging: unsigned CLI requests and decisions count, as unverified:<name>.
      environments: { staging: { signing: { unsigned: 'accept-unverified' } } },
    },
  };
  const file = path.join(dir, 'runbook.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

describe('runbook drill (the CLI against the test stack)', function () {
  this.timeout(180_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-drill-e2e-'));
  let env: NodeJS.ProcessEnv;
  let service: string;
  const drills: string[] = [];
  // The worker trusts the same runbook.yaml as the CLI (written below; it is read on every request).
  const { taskQueue } = useWorker('drill-cli', () => ({ runbookConfig: path.join(dir, 'runbook.yaml') }));

  before(async () => {
    const stack = testStack();
    service = uniqueName('shop').replace(/[^a-z0-9-]/g, '');
    const database = service.replace(/-/g, '_');
    await ensureDatabase(stack.settings, database);
    env = {
      RUNBOOK_CONFIG: await writeConfig(dir, service, database),
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: process.env.DATABASE_URL ?? '',
      RUNBOOK_USER: 'dave',
    };
    const v1 = await runbook(['deploy', service, '--version', 'v1', '--env', 'staging', '--wait'], env);
    assert.equal(v1.code, 0, `${v1.stdout}\n${v1.stderr}`);
  });

  after(async () => {
    await runbook(['drill', 'schedule', service, '--env', 'staging', '--delete'], env);
    rmSync(dir, { recursive: true, force: true });
  });

  it('drill --wait runs one now: the timeline, PASSED with the RTO, the snapshot age and the integrity checks', async () => {
    const r = await runbook(['drill', service, '--env', 'staging', '--fresh', '--wait'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const id = /started (drill-\S+):/.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    drills.push(id);
    assert.match(r.stdout, /\[restore\] restoring .* \(pg_restore -j2\)/);
    assert.match(r.stdout, /\[integrity\] pg_amcheck: no corruption in \d+ relations/);
    assert.match(r.stdout, new RegExp(`${id}: PASSED: restored .* and v1 was ready in`));
    assert.match(r.stdout, /RTO \d+\.\ds \(target 5m00s, within\) +snapshot age \(RPO\) \d/);
    assert.match(r.stdout, /integrity: amcheck ok, manifest ok \(\d+ tables, \d+ rows\), schema ok/);
    assert.match(r.stdout, /cleanup: stopped the app .*; dropped /);
  });

  it('refuses options of another form, and --snapshot with --fresh', async () => {
    const wrong = await runbook(['drill', service, '--env', 'staging', '--cron', '0 3 * * 1'], env);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /drill: --cron does not apply here/);
    const both = await runbook(['drill', service, '--env', 'staging', '--fresh', '--snapshot', 'x'], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --snapshot <id> or --fresh, not both/);
  });

  it('drill schedule creates a Temporal Schedule (SKIP, catch-up window), updates it, and a triggered run completes', async () => {
    const scheduleId = drillScheduleId(service, 'staging');
    const created = await runbook(['drill', 'schedule', service, '--env', 'staging', '--every', '7d'], env);
    assert.equal(created.code, 0, `${created.stdout}\n${created.stderr}`);
    assert.match(
      created.stdout,
      new RegExp(`created the schedule ${scheduleId}: every 7d, overlap SKIP, catch-up window 1h`),
    );
    assert.match(created.stdout, new RegExp(`Web UI: +http://\\S+/namespaces/default/schedules/${scheduleId}`));

    const handle = testStack().client.schedule.getHandle(scheduleId);
    let d = await handle.describe();
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.policies.catchupWindow, 3_600_000);
    assert.equal(d.spec.intervals?.[0]?.every, 7 * 24 * 3_600_000);
    assert.equal(d.action.workflowType, 'restoreDrill');
    const input = d.action.args?.[0] as Record<string, unknown>;
    assert.equal(input.service, service, 'the action input is the request');
    assert.equal(input.environment, 'staging');
    assert.match(String(input.configDigest), /^sha256:[0-9a-f]{64}$/, 'with the digest of the plan as it is now');
    assert.equal(input.plan, undefined, 'no plan: the worker resolves it');
    assert.equal(input.requestedBy, `schedule:${scheduleId}`);

    // Paused in the UI meanwhile: an update of the plan keeps it paused.
    await handle.pause('paused from the Web UI');
    const updated = await runbook(['drill', 'schedule', service, '--env', 'staging'], env);
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /updated the schedule .*: cron "0 3 \* \* 1" \(UTC\).*\(PAUSED\)/);
    d = await handle.describe();
    assert.equal(d.state.paused, true);
    assert.deepEqual(d.spec.intervals ?? [], []);
    assert.equal(d.spec.calendars?.length, 1, 'the configured cron');
    await handle.unpause();
    d = await handle.describe();
    assert.equal(d.info.nextActionTimes[0]?.getUTCDay(), 1, 'Mondays');
    assert.equal(d.info.nextActionTimes[0]?.getUTCHours(), 3);

    await handle.trigger();
    let workflowId: string | undefined;
    for (let i = 0; i < 100 && !workflowId; i++) {
      workflowId = (await handle.describe()).info.recentActions.at(-1)?.action.workflow.workflowId;
      if (!workflowId) await sleep(100);
    }
    assert.ok(workflowId && workflowId.startsWith(`${scheduleId}-`), workflowId);
    drills.push(workflowId);
    const result = (await testStack().client.workflow.getHandle(workflowId).result()) as DrillResult;
    assert.equal(result.outcome, 'passed', result.reason);
    assert.equal(result.drill.snapshot?.source, 'latest');
  });

  it('drill history reads the drill_runs table, else Temporal visibility, and says which', async () => {
    const table = await runbook(['drill', 'history', service, '--env', 'staging'], env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^source: the drill_runs table \(127\.0\.0\.1:\d+\/runbook\)/);
    for (const id of drills) assert.match(table.stdout, new RegExp(`passed +\\d+\\.\\ds +5m00s .* ${id}`));

    const empty = mkdtempSync(path.join(os.tmpdir(), 'runbook-no-stack-'));
    try {
      const visibility = await runbook(['drill', 'history', service, '--env', 'staging', '--json'], {
        ...env,
        RUNBOOK_HOME: empty,
        DATABASE_URL: '',
      });
      assert.equal(visibility.code, 0, visibility.stderr);
      const out = JSON.parse(visibility.stdout) as {
        source: string;
        drills: Array<{ workflowId: string; rtoSeconds: number; snapshotAgeSeconds: number }>;
      };
      assert.match(
        out.source,
        /^Temporal visibility \(RunbookKind="drill", RunbookRtoSeconds\).*no DATABASE_URL, and no embedded stack/,
      );
      assert.deepEqual(out.drills.map((x) => x.workflowId).sort(), [...drills].sort());
      for (const x of out.drills) assert.ok(x.rtoSeconds > 0 && x.snapshotAgeSeconds >= 0);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('drill report writes a self-contained HTML report with the RTO chart', async () => {
    const out = path.join(dir, 'report.html');
    const r = await runbook(['drill', 'report', service, '--env', 'staging', '--out', out], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`wrote ${out}: 2 drill\\(s\\)`));
    const html = readFileSync(out, 'utf8');
    assert.match(html, /<svg [^>]*aria-label="RTO per drill over time"/);
    assert.match(html, /target 5m00s/);
    for (const id of drills) assert.ok(html.includes(id));
    assert.doesNotMatch(html, /<script|<link|https?:\/\/(?!www\.w3\.org)/, 'self-contained');
  });
});
