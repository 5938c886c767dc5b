import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { createReleaseRunner } from '../../src/platforms/single-host/release-runner';
import { removeCluster } from '../../src/stack/postgres';
import { freePort, isAlive, portOpen } from '../../src/system/processes';
import { sample } from './metrics.test';
import { runbookCli, type CliResult } from '../helpers/cli';

/** The CLI on this test's own stack (never a TEMPORAL_ADDRESS or a profile file from the environment). */
const runbook = (args: string[], env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<CliResult> =>
  runbookCli(
    args,
    { TEMPORAL_ADDRESS: '', TEMPORAL_PROFILE: '', TEMPORAL_CONFIG_FILE: '/dev/null', ...env },
    timeoutMs,
  );

/**
 * examples/runbook.yaml with the demo environment on free ports (the test may share the machine with another stack),
 * its folders absolute: the config the stack's worker and the demo both use.
 */
async function demoConfig(dir: string): Promise<string> {
  const examples = path.join(__dirname, '../../examples');
  const doc = parse(readFileSync(path.join(examples, 'runbook.yaml'), 'utf8')) as {
    services: { shop: Record<string, Record<string, unknown>> & { environments: Record<string, object> } };
  };
  const shop = doc.services.shop;
  shop.release!.cwd = path.join(examples, 'shop/releases/{version}');
  shop.database!.migrations = path.join(examples, 'shop/migrations');
  const low = 23000 + (process.pid % 50) * 20;
  shop.environments.demo = {
    ...shop.environments.demo,
    listen: { port: await freePort() },
    release: { portRange: [low, low + 19] },
  };
  const file = path.join(dir, 'runbook.yaml');
  writeFileSync(file, stringify(doc));
  return file;
}

interface DoctorReport {
  ok: boolean;
  checks: Array<{ component: string; check: string; ok: boolean; detail: string; fix?: string }>;
}

describe('runbook up / doctor / demo / down (the CLI on a stack of its own)', function () {
  this.timeout(300_000);
  let parent: string;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let ports: number[];
  let config: string;

  before(async () => {
    // The repository in a private (0700) home, as under /root on a fresh VM.
    parent = mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-'));
    home = path.join(parent, 'repo', '.runbook');
    config = await demoConfig(mkdtempSync(path.join(os.tmpdir(), 'runbook-e2e-config-')));
    ports = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    env = {
      RUNBOOK_HOME: home,
      RUNBOOK_TEMPORAL_PORT: String(ports[0]),
      RUNBOOK_UI_PORT: String(ports[1]),
      RUNBOOK_PG_PORT: String(ports[2]),
      RUNBOOK_HAPROXY_STATS_PORT: String(ports[3]),
      RUNBOOK_METRICS_PORT: String(ports[4]),
      DATABASE_URL: '',
    };
  });

  after(async () => {
    await runbook(['down'], env);
    removeCluster(home);
    rmSync(parent, { recursive: true, force: true });
    rmSync(path.dirname(config), { recursive: true, force: true });
  });

  it('up --detach starts every component, doctor is all green, and the demo (README command 1) runs its deploy story', async () => {
    const up = await runbook(['up', '--detach', '--json', '--config', config], env);
    assert.equal(up.code, 0, up.stderr);
    const { addresses } = JSON.parse(up.stdout) as { addresses: Record<string, string> };
    assert.deepEqual(Object.keys(addresses), ['postgres', 'releases', 'haproxy', 'temporal', 'worker']);
    assert.match(addresses.worker ?? '', new RegExp(`runbook config ${config}`));
    // Private from the first start on (worker.json used to be 0644 until the next `up` tightened it).
    assert.equal(
      (await promisify(execFile)('find', [home, '-perm', '/077', '!', '-type', 'l'])).stdout,
      '',
      'find -perm /077 after up',
    );

    const doctor = await runbook(['doctor', '--json'], env);
    const report = JSON.parse(doctor.stdout) as DoctorReport;
    assert.equal(doctor.code, 0, JSON.stringify(report.checks.filter((c) => !c.ok)));
    assert.ok(report.ok);
    for (const name of [
      'binaries',
      'reachable',
      'runtime API',
      'frontend',
      'web ui',
      'search attributes',
      'polling',
      'runbook config',
      'metrics',
    ]) {
      assert.ok(
        report.checks.some((c) => c.check === name && c.ok),
        `check ${name}`,
      );
    }
    const ui = await fetch(`http://127.0.0.1:${ports[1]}/`);
    assert.equal(ui.status, 200, 'the Temporal Web UI answers');

    const demoArgs = ['demo', '--config', config];
    const demo = await runbook(demoArgs, env);
    assert.equal(demo.code, 0, `${demo.stdout}\n${demo.stderr}`);
    assert.match(demo.stdout, /deploy-shop-demo-v2-\S+: SUCCEEDED: v2 is live/);
    assert.match(demo.stdout, /deploy-shop-demo-v3-\S+: ROLLED-BACK: canary analysis failed/);
    assert.match(demo.stdout, /deploy v2: .*\n(.*\n)*? +load during this deploy: \d+ requests, 0 failed/);
    assert.match(demo.stdout, /All as expected/);
    // The demo signs as production does (issue 12): dave's request and alice's sign-off with throwaway keys.
    const demoKeys = path.join(home, 'keys', 'demo');
    assert.match(demo.stdout, new RegExp(`signers: dave \\(requests\\) and alice \\(sign-off\\) .* in ${demoKeys}`));
    assert.match(
      demo.stdout,
      new RegExp(`signoff \\S+ --as alice --key ${path.join(demoKeys, 'alice')} --print-signal`),
    );
    assert.match(demo.stdout, /signed off as alice with the demo key/);
    const v2 = /(deploy-shop-demo-v2-\S+): SUCCEEDED/.exec(demo.stdout)?.[1] as string;
    const status = await runbook(['status', v2], env);
    assert.match(status.stdout, /requester: dave \(verified, key SHA256:/);
    assert.match(status.stdout, /decision: go-live approved by alice \(verified, key SHA256:\S+\) via CLI/);
    assert.match(
      readFileSync(path.join(home, 'demo', 'runbook.yaml'), 'utf8'),
      /- alice ssh-ed25519 \S+ demo-throwaway/,
    );
    // Nothing the stack wrote is open to other users (issue 11): files 0600, folders 0700.
    assert.equal(statSync(parent).mode & 0o777, 0o700, 'the home above the repository stays private');
    assert.equal(
      (await promisify(execFile)('find', [home, '-perm', '/077', '!', '-type', 'l'])).stdout,
      '',
      'find -perm /077',
    );

    // The stack's worker exports the runbooks' metrics, and logs JSON lines that carry the workflow id.
    const metrics = await (await fetch(`http://127.0.0.1:${ports[4]}/metrics`)).text();
    const demoLabels = { service: 'shop', environment: 'demo', kind: 'deploy' };
    assert.ok(
      (sample(metrics, 'runbook_outcomes', { ...demoLabels, outcome: 'succeeded' }) ?? 0) >= 2,
      'v1 and v2 succeeded',
    );
    assert.equal(sample(metrics, 'runbook_outcomes', { ...demoLabels, outcome: 'rolled-back' }), 1, 'v3 rolled back');
    assert.ok((sample(metrics, 'runbook_analysis_decisions', { service: 'shop', verdict: 'fail' }) ?? 0) >= 1);
    assert.equal(sample(metrics, 'runbook_rollback_seconds_count', { service: 'shop', kind: 'automatic' }), 1);
    const lines = readFileSync(path.join(home, 'worker/worker.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; workflowId?: string; phase?: string });
    const v3 = lines.filter((l) => l.workflowId?.startsWith('deploy-shop-demo-v3-'));
    assert.ok(
      v3.some((l) => l.phase === 'rolling-back'),
      'the rollback is logged with the workflow id',
    );
  });

  it('up again is harmless: every component is adopted, none started twice', async () => {
    const again = await runbook(['up', '--detach'], env);
    assert.equal(again.code, 0, again.stderr);
    for (const name of ['postgres', 'haproxy', 'temporal', 'worker'])
      assert.match(again.stdout, new RegExp(`${name}: already running`));
  });

  it('up with another runbook config restarts the worker with it (the plans come from its config)', async () => {
    const other = path.join(path.dirname(config), 'other.yaml');
    copyFileSync(config, other);
    const up = await runbook(['up', '--detach', '--config', other], env);
    assert.equal(up.code, 0, up.stderr);
    assert.match(
      up.stdout,
      // The demo left the worker on its copy of the config, with the demo's signers.
      new RegExp(
        `worker: restarting \\(pid \\d+\\): its runbook config changes from ${path.join(home, 'demo', 'runbook.yaml')} to ${other}`,
      ),
    );
    const doctor = JSON.parse((await runbook(['doctor', '--json'], env)).stdout) as DoctorReport;
    const check = doctor.checks.find((c) => c.check === 'runbook config');
    assert.ok(check?.ok, JSON.stringify(check));
    assert.match(check.detail, new RegExp(`^${other} \\(shop, shop-tools\\)$`));
  });

  it('down stops everything and frees the ports; doctor then names each problem and its fix', async () => {
    const pidOf = (file: string) => Number(readFileSync(path.join(home, file), 'utf8'));
    const pids = ['temporal/temporal.pid', 'worker/worker.pid', 'haproxy/haproxy.pid'].map(pidOf);
    const down = await runbook(['down'], env);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /stopped: worker, temporal, haproxy, releases, postgres/);
    for (const pid of pids) assert.ok(!isAlive(pid) || isZombieOrGone(pid), `pid ${pid} is gone`);
    for (const port of ports) assert.equal(await portOpen(port), false, `port ${port} is free`);
    const releases = createReleaseRunner({ dir: path.join(home, 'releases'), releaseUrlFor: async () => '' });
    assert.deepEqual(await releases.list(), [], "the demo's app releases were stopped too");

    const doctor = await runbook(['doctor'], env);
    assert.equal(doctor.code, 1);
    assert.match(doctor.stdout, /FAIL temporal +frontend .*\n.*fix: runbook up/);
    assert.match(doctor.stdout, /FAIL worker/);
  });

  it('recovers from stale pid files (a crash, or a pid reused by another program) without manual cleanup', async () => {
    writeFileSync(path.join(home, 'temporal/temporal.pid'), '999999\n');
    writeFileSync(path.join(home, 'worker/worker.pid'), `${process.pid}\n`); // alive, but not a worker
    const up = await runbook(['up', '--detach'], env);
    assert.equal(up.code, 0, up.stderr);
    assert.doesNotMatch(up.stdout, /temporal: already running/);
    assert.match(up.stdout, /worker: starting/);
    assert.ok(isAlive(process.pid), 'the unrelated process was not touched');
    assert.equal((await runbook(['down'], env)).code, 0);
  });

  it('a port taken by another program: a clear message and the fix, nothing started, no stack trace', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(ports[0], '127.0.0.1', resolve));
    try {
      const up = await runbook(['up', '--detach'], env);
      assert.equal(up.code, 2);
      assert.match(up.stderr, new RegExp(`runbook: port ${ports[0]} \\(Temporal frontend\\) is already in use`));
      assert.match(up.stderr, /fix: .*RUNBOOK_TEMPORAL_PORT=<port> runbook up/);
      assert.doesNotMatch(up.stderr, /^\s+at /m);
      assert.equal(await portOpen(ports[2]!), false, 'PostgreSQL was not started');
    } finally {
      blocker.close();
    }
  });

  it('down --purge removes the data folder and its cluster; it refuses a folder that is not a data folder', async () => {
    const notData = mkdtempSync(path.join(os.tmpdir(), 'runbook-not-data-'));
    try {
      const refused = await runbook(['down', '--purge', '--home', notData], env);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /is not a runbook data folder .*: nothing removed/);
      assert.ok(existsSync(notData), 'nothing removed');
    } finally {
      rmSync(notData, { recursive: true, force: true });
    }
    const cluster = (JSON.parse(readFileSync(path.join(home, 'postgres', 'cluster.json'), 'utf8')) as { dir: string })
      .dir;
    assert.ok(existsSync(cluster), cluster);
    const purged = await runbook(['down', '--purge'], env);
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /removed: .*/);
    assert.equal(existsSync(home), false, 'the data folder is gone');
    if (!cluster.startsWith(home)) assert.equal(existsSync(cluster), false, 'the cluster folder is gone');
  });

  it('unknown commands and flags are one clear line with the fix', async () => {
    const bad = await runbook(['upp'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /runbook: unknown command "upp"\n {2}fix: runbook --help/);
    const flag = await runbook(['up', '--detatch'], env);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /runbook: up: Unknown option '--detatch'/);
    const help = await runbook(['up', '--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Examples:\n {2}runbook up --detach/);
  });
});

function isZombieOrGone(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
