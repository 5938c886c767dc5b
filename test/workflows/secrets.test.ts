import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { approveUpdate, statusQuery } from '../../src/shared/messages';
import type { SingleHostService as ServicePlan } from '../../src/shared/service-plan';
import { databaseUrl, postgresPaths } from '../../src/stack/postgres';
import { exportHistory, spawnChildWorker, testStack, uniqueName } from '../harness';
import { startDrill } from './drill-fixture';
import { queryDb, shopPlan, startDeploy, startRollback, waitingAt } from './deploy-fixture';

const run = promisify(execFile);

/** Every file under `dir` (not following links), but not into the `skip` folders. */
function filesUnder(dir: string, skip: Set<string>): string[] {
  const found: string[] = [];
  const visit = (p: string) => {
    if (skip.has(p)) return;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
    else if (st.isFile()) found.push(p);
  };
  visit(dir);
  return found;
}

/** The history as `temporal workflow show --output json` exports it, with every base64 payload decoded after it. */
async function exportedHistory(workflowId: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-secrets-history-'));
  try {
    const file = path.join(dir, 'history.json');
    await exportHistory(testStack(), workflowId, file);
    const text = readFileSync(file, 'utf8');
    const decoded: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') {
        if (v.length >= 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(v)) decoded.push(Buffer.from(v, 'base64').toString('utf8'));
      } else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(JSON.parse(text));
    assert.ok(
      decoded.some((d) => d.includes('"service"')),
      'the payloads were decoded',
    );
    return `${text}\n${decoded.join('\n')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A release folder whose server prints what it knows (its environment's DATABASE_URL and friends), then `behaves`. */
function leakyRelease(root: string, version: string, behaviour: string): void {
  mkdirSync(path.join(root, version), { recursive: true });
  writeFileSync(
    path.join(root, version, 'server.js'),
    `'use strict';
const url = process.env.DATABASE_URL;
console.log('DATABASE_URL=' + url);
console.log('PGPASSWORD=' + new URL(url).password + ' password=' + decodeURIComponent(new URL(url).password));
console.error(JSON.stringify({ msg: 'connecting', password: decodeURIComponent(new URL(url).password) }));
${behaviour}
`,
  );
}

/**
 * Outcome 4 of issue 11: nothing secret at rest or in history. A worker (the real entry point, in its own process)
 * holds a canary database password (its DATABASE_URL and a service's urlEnv) and a fake AWS key in its environment;
 * real deploys, a rollback that restores the database, a restore drill and two releases that print their
 * DATABASE_URL run on the real stack. Then the exported histories (payloads decoded), the results and failure
 * messages, the status queries, the release and drill rows and every file in the data folder are searched for them.
 * The one place the canary may be is the leaky apps' own release.log: it stays on the worker, 0600.
 */
describe('nothing secret at rest or in history', function () {
  this.timeout(600_000);
  const taskQueue = uniqueName('secrets');
  const role = `canary_${randomBytes(4).toString('hex')}`;
  const password = `canary-pw-${randomBytes(8).toString('hex')}`;
  const awsKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const awsSecret = randomBytes(30).toString('base64');
  const needles = [password, awsKeyId, awsSecret];
  let canaryUrl: (database: string) => string;
  let worker: ReturnType<typeof spawnChildWorker> | undefined;
  let leakyRoot: string;
  let plan: ServicePlan;
  const workflows: WorkflowHandle[] = [];
  const shown: string[] = [];

  before(async () => {
    const admin = new URL(databaseUrl(testStack().settings, 'postgres'));
    await queryDb('postgres', `CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${password}'`);
    canaryUrl = (database) => {
      const u = new URL(admin.toString());
      u.username = role;
      u.password = password;
      u.pathname = `/${database}`;
      return u.toString();
    };
    plan = await shopPlan({
      rollback: {
        approvals: { gates: [], approvers: ['alice', 'bob'], fourEyes: true, timeoutMs: 60_000, onTimeout: 'abort' },
        dbRestoreApprovers: ['alice', 'bob'],
      },
    });
    plan = { ...plan, database: { ...plan.database!, urlEnv: 'CANARY_SHOP_DATABASE_URL' } };
    leakyRoot = mkdtempSync(path.join(os.tmpdir(), 'runbook-leaky-'));
    chmodSync(leakyRoot, 0o755); // releases run as the release user, who must read them
    leakyRelease(leakyRoot, 'leaky-crash', 'setTimeout(() => process.exit(1), 300);');
    leakyRelease(
      leakyRoot,
      'leaky-health',
      `require('node:http').createServer((req, res) => { res.writeHead(503); res.end('cannot reach ' + url); })
  .listen(Number(process.env.PORT), '127.0.0.1');`,
    );
    worker = spawnChildWorker(taskQueue, {
      env: {
        DATABASE_URL: canaryUrl('runbook'),
        CANARY_SHOP_DATABASE_URL: canaryUrl(plan.database!.name),
        AWS_ACCESS_KEY_ID: awsKeyId,
        AWS_SECRET_ACCESS_KEY: awsSecret,
        AWS_REGION: 'us-east-1',
        RUNBOOK_LOG_LEVEL: 'INFO',
      },
      logFile: path.join(testStack().settings.home, 'worker', `${taskQueue}.log`),
    });
  });

  after(async () => {
    await worker?.kill();
    if (leakyRoot) rmSync(leakyRoot, { recursive: true, force: true });
    // The role owns what its worker made (databases, tables): give that back, then drop it.
    const dbs = await queryDb<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datallowconn');
    for (const { datname } of dbs) {
      await queryDb(datname, `REASSIGN OWNED BY ${role} TO CURRENT_USER`).catch(() => undefined);
    }
    await queryDb('postgres', `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  async function finished<T extends { outcome: string; reason?: string }>(
    handle: WorkflowHandle,
    result: Promise<T>,
  ): Promise<T> {
    workflows.push(handle);
    const r = await result;
    shown.push(r.reason ?? '');
    return r;
  }

  it('deploys, a rollback that restores the database, and a restore drill run with the canary credentials', async () => {
    const v1 = await startDeploy(taskQueue, plan, 'v1');
    assert.equal((await finished(v1, v1.result())).outcome, 'succeeded');
    await queryDb(plan.database!.name, "INSERT INTO items (name) VALUES ('before v2')");
    const v2 = await startDeploy(taskQueue, plan, 'v2');
    const deployed = await finished(v2, v2.result());
    assert.equal(deployed.outcome, 'succeeded', deployed.reason);

    const rollback = await startRollback(taskQueue, plan, { restoreSnapshotId: deployed.snapshotId!, toVersion: 'v1' });
    await waitingAt(rollback, 'restore-database');
    await rollback.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'restore' }] });
    const rolledBack = await finished(rollback, rollback.result());
    assert.equal(rolledBack.outcome, 'succeeded', rolledBack.reason);

    const drill = await startDrill(taskQueue, plan);
    const drilled = await finished(drill, drill.result());
    assert.equal(drilled.outcome, 'passed', drilled.reason);
  });

  it('a release that prints its DATABASE_URL and crashes: the failure names its log on the worker and shows none of it', async () => {
    const leaky = { ...plan, release: { ...plan.release, cwd: path.join(leakyRoot, '{version}') } };
    const handle = await startDeploy(taskQueue, leaky, 'leaky-crash');
    const r = await finished(handle, handle.result());
    assert.equal(r.outcome, 'failed');
    const releaseId = r.state.candidate!.releaseId;
    const log = path.join(testStack().settings.home, 'releases', `${plan.service}-${plan.environment}`, releaseId);
    assert.match(r.reason ?? '', /the release process .* is not running; its log: /);
    assert.ok((r.reason ?? '').includes(path.join(log, 'release.log')), r.reason);
    assert.ok((r.reason ?? '').includes(os.hostname()), 'the host the log is on');
    assert.doesNotMatch(r.reason ?? '', /DATABASE_URL|PGPASSWORD|connecting/, 'nothing of what the app printed');
    // The control: the app did print the canary, to its own log, which stays on the worker (0600).
    assert.ok(readFileSync(path.join(log, 'release.log'), 'utf8').includes(password));
  });

  it('a release whose health check answers with its DSN: the health gate’s message shows it scrubbed', async () => {
    const leaky = {
      ...plan,
      release: { ...plan.release, cwd: path.join(leakyRoot, '{version}') },
      health: { ...plan.health, timeoutMs: 1_000, deadlineMs: 2_000 },
    };
    const handle = await startDeploy(taskQueue, leaky, 'leaky-health');
    const r = await finished(handle, handle.result());
    assert.equal(r.outcome, 'failed');
    assert.match(r.reason ?? '', /did not become healthy/);
    assert.match(r.reason ?? '', new RegExp(`cannot reach postgres://${role}:\\*\\*\\*@127\\.0\\.0\\.1`));
  });

  it('no canary in the histories, results, failure messages, status queries, release and drill rows, or the data folder', async () => {
    assert.equal(workflows.length, 6);
    const places: Array<[string, string | Buffer]> = [];
    for (const handle of workflows) {
      places.push([`history of ${handle.workflowId}`, await exportedHistory(handle.workflowId)]);
      places.push([`status of ${handle.workflowId}`, JSON.stringify(await handle.query(statusQuery))]);
    }
    places.push(['results and failure messages', shown.join('\n')]);
    places.push([
      'release history rows',
      JSON.stringify(await queryDb('runbook', 'SELECT * FROM releases WHERE service = $1', [plan.service])),
    ]);
    places.push([
      'drill rows',
      JSON.stringify(await queryDb('runbook', 'SELECT * FROM drill_runs WHERE service = $1', [plan.service])),
    ]);

    const home = testStack().settings.home;
    const pgPaths = postgresPaths(home);
    const appLogs = new Set(
      filesUnder(path.join(home, 'releases'), new Set()).filter((f) => path.basename(f) === 'release.log'),
    );
    const files = filesUnder(home, new Set([pgPaths.data])).filter((f) => !appLogs.has(f));
    if (pgPaths.cluster !== pgPaths.dir) files.push(pgPaths.log);
    assert.ok(
      files.some((f) => f.endsWith(`${taskQueue}.log`)),
      'the worker’s own log is searched',
    );
    assert.ok(
      files.some((f) => f.endsWith('temporal.db')),
      'the Temporal server’s SQLite file is searched',
    );
    assert.ok(
      files.some((f) => f.endsWith('.dump')),
      'the snapshots are searched',
    );
    for (const f of files) places.push([f, readFileSync(f)]);

    const found = places.flatMap(([where, text]) =>
      needles.filter((n) => text.includes(n)).map((n) => `${where} holds ${n === password ? 'the password' : n}`),
    );
    assert.deepEqual(found, []);
    // The searches can see: the worker's environment had them (the control above found the password in an app log).
    assert.ok(readFileSync(`/proc/${worker!.process.pid}/environ`, 'utf8').includes(awsSecret));
  });

  it('`find <data folder> -perm /077` is empty: every file 0600 (or stricter), every folder 0700', async () => {
    const home = testStack().settings.home;
    const { stdout } = await run('find', [home, '-perm', '/077', '!', '-type', 'l']);
    assert.equal(stdout, '');
    const cluster = postgresPaths(home).cluster;
    if (cluster !== postgresPaths(home).dir)
      assert.equal((await run('find', [cluster, '-perm', '/077', '!', '-type', 'l'])).stdout, '');
  });
});
