import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { testStack, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';
import { putPlan } from '../helpers/worker-config';
import { shopPlan, withGates } from '../workflows/deploy-fixture';

/**
 * `--dry-run` and a refused start through the CLI: the worker trusts a runbook config of its own, the operator's
 * runbook.yaml is another file (the same plan, or a changed one).
 */
describe('runbook deploy|rollback|drill --dry-run: the plan the worker would run (the CLI against the test stack)', function () {
  this.timeout(180_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-dry-run-'));
  const workerConfig = path.join(dir, 'worker', 'runbook.yaml');
  const { taskQueue } = useWorker('dry-run', () => ({ runbookConfig: workerConfig }));
  let plan: ResolvedService;
  let env: NodeJS.ProcessEnv;
  let same: string;
  let changed: string;

  before(async () => {
    const stack = testStack();
    plan = withGates(await shopPlan(), ['before-start']);
    putPlan(workerConfig, plan);
    same = path.join(dir, 'mine', 'runbook.yaml');
    putPlan(same, plan);
    changed = path.join(dir, 'changed', 'runbook.yaml');
    putPlan(changed, {
      ...plan,
      approvals: { ...plan.approvals, gates: [] },
      release: { ...plan.release, command: ['sh', '-c', 'touch /tmp/pwned'] },
    });
    env = {
      RUNBOOK_CONFIG: same,
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: process.env.DATABASE_URL ?? '',
      RUNBOOK_USER: 'dave',
    };
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const runbook = (args: string[], extra: NodeJS.ProcessEnv = {}) => runbookCli(args, { ...env, ...extra }, 120_000);

  it("prints the worker's plan (gates, approvers, traffic, commands, database, platform) and exits 0 when it is yours", async () => {
    const r = await runbook(['deploy', plan.service, '--version', 'v2', '--env', 'staging', '--dry-run']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    assert.match(
      out,
      new RegExp(`^dry run: deploy ${plan.service} v2 to staging, requested by dave; nothing is started`),
    );
    assert.match(out, new RegExp(`the plan the worker runs, from its runbook config ${workerConfig}:`));
    assert.match(
      out,
      new RegExp(
        `\\n  platform +single-host: frontend port ${plan.listen.port}, releases on ports ${plan.release.portRange.min}-`,
      ),
    );
    assert.match(
      out,
      /\n {2}release +node server\.js in .*examples\/shop\/releases\/\{version\}; env APP_VERSION=\{version\} PORT=\{port\}; drain 500ms/,
    );
    assert.match(out, /\n {2}health +GET \/health -> 200 and GET \/health\/ready -> 200 within 20s \(each 2s\)/);
    assert.match(out, /\n {2}smoke +list items: GET \/api\/items -> 200 matching \/"items"\//);
    assert.match(
      out,
      new RegExp(
        `\\n  database +${plan.database!.name} \\(URL derived by the worker from its stack\\); migrations .*shop/migrations`,
      ),
    );
    assert.match(out, /\n {2}traffic +50% for 2s -> 100%/);
    assert.match(
      out,
      /\n {2}judge +against a baseline \(analysis.compare.baseline: auto\): a new process of the stable version, without migrations, behind the same health gate, at the canary's weight taken from the stable's share, stopped when the canary is promoted or rolled back: fails when the canary's error rate is over 2x the baseline's/,
    );
    assert.match(
      out,
      /or its latency over 1\.5x \(and 10 ms more: the p95, and the whole distribution against that margin\), significant at 99% per step \(Fisher, Mann-Whitney\); latency judged after a 250ms warm-up of each step\n/,
    );
    assert.match(
      out,
      /\n {2}cut-off +HAProxy takes the canary out after 5 consecutive errors \(on-error mark-down; never the stable release\), or the cut-off's watch \(every 20 ms\) when at least 3 of its last 20 requests failed and at least 40% of them \(analysis\.cutoff\.rate\), and the deploy rolls back at once/,
    );
    assert.match(
      out,
      /\n {2}evidence +50%: 5 canary requests \(analysis.minRequests; set expectedRps or stepMinRequests\); a step without it goes on, and the outcome says "unjudged" \(onInconclusive: proceed\)/,
    );
    assert.match(
      out,
      /\n {2}approvals +gates before-start; approvers alice, bob \(four-eyes\); timeout 1m, then abort/,
    );
    assert.match(out, /\n {2}rollback +gates none; .*database restore approved by alice, bob \(four-eyes\)/);
    assert.match(out, /\n {2}digest +sha256:[0-9a-f]{64}\n/);
    assert.match(out, new RegExp(`your runbook.yaml \\(${same}\\) has the same plan: the worker runs what you see`));
    const listed = await runbook(['list', '--service', plan.service]);
    assert.match(listed.stdout, /nothing found/, 'a dry run starts no runbook');
  });

  it('says which fields differ, with both values, and exits 1; --json says the same', async () => {
    const r = await runbook(['deploy', plan.service, '--version', 'v2', '--dry-run'], { RUNBOOK_CONFIG: changed });
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(
      r.stdout,
      new RegExp(`your runbook.yaml \\(${changed}, sha256:[0-9a-f]{64}\\) DIFFERS from the worker's:`),
    );
    assert.match(r.stdout, /\n {2}approvals\.gates: the worker's \["before-start"\], yours \[\]\n/);
    assert.match(
      r.stdout,
      /\n {2}release\.command: the worker's \["node","server\.js"\], yours \["sh","-c","touch \/tmp\/pwned"\]\n/,
    );
    assert.match(r.stdout, /a runbook started now would be refused \(PlanDigestMismatch\)/);

    const json = await runbook(['deploy', plan.service, '--version', 'v2', '--dry-run', '--json'], {
      RUNBOOK_CONFIG: changed,
    });
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as {
      matches: boolean;
      worker: { source: string; digest: string; plan: ResolvedService };
      differences: Array<{ field: string }>;
    };
    assert.equal(report.matches, false);
    assert.equal(report.worker.source, workerConfig);
    assert.deepEqual(report.worker.plan.approvals.gates, ['before-start']);
    assert.deepEqual(
      report.differences.map((d) => d.field),
      ['approvals.gates', 'release.command'],
    );
  });

  it('a start from the changed runbook.yaml is refused by the worker, naming the fields (deploy --wait exits 5)', async () => {
    const r = await runbook(['deploy', plan.service, '--version', 'v1', '--env', 'staging', '--wait'], {
      RUNBOOK_CONFIG: changed,
    });
    assert.equal(r.code, 5, `${r.stdout}\n${r.stderr}`);
    assert.match(
      r.stdout,
      new RegExp(
        `FAILED: the plan of ${plan.service}/staging in the worker's runbook config \\(${workerConfig}\\) is not the one you previewed: approvals\\.gates, release\\.command differ`,
      ),
    );
    const status = await runbook(['status', /started (\S+):/.exec(r.stdout)![1]!]);
    assert.match(status.stdout, /outcome: FAILED: the plan of .* is not the one you previewed/);
  });

  it('without --wait, a start the worker refuses is said to be refused (exit 5), not started; --json says taken: refused', async () => {
    const r = await runbook(['deploy', plan.service, '--version', 'v1', '--env', 'staging'], {
      RUNBOOK_CONFIG: changed,
    });
    assert.equal(r.code, 5, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /: REFUSED by the worker: the plan of .* is not the one you previewed: approvals\.gates/);
    assert.doesNotMatch(r.stdout, /taken by the worker/);
    const json = await runbook(['drill', plan.service, '--env', 'staging', '--fresh', '--json'], {
      RUNBOOK_CONFIG: changed,
    });
    assert.equal(json.code, 5, `${json.stdout}\n${json.stderr}`);
    const out = JSON.parse(json.stdout.trim().split('\n').at(-1) ?? '{}') as { taken?: string; reason?: string };
    assert.equal(out.taken, 'refused');
    assert.match(out.reason ?? '', /is not the one you previewed/);
  });

  it('rollback and drill take --dry-run too; an unknown service is the worker refusing, in its words', async () => {
    const rollback = await runbook(['rollback', plan.service, '--to', 'v1', '--dry-run']);
    assert.equal(rollback.code, 0, `${rollback.stdout}\n${rollback.stderr}`);
    assert.match(rollback.stdout, new RegExp(`^dry run: roll ${plan.service}/staging back to v1, requested by dave`));
    const drill = await runbook(['drill', plan.service, '--fresh', '--dry-run']);
    assert.equal(drill.code, 0, `${drill.stdout}\n${drill.stderr}`);
    assert.match(drill.stdout, new RegExp(`^dry run: restore drill of ${plan.service}/staging \\(a fresh snapshot\\)`));

    const unknown = await runbook(['deploy', 'no-such-shop', '--version', 'v1', '--env', 'staging', '--dry-run']);
    assert.equal(unknown.code, 2, `${unknown.stdout}\n${unknown.stderr}`);
    assert.match(
      unknown.stderr,
      /runbook: the worker refused: the worker's runbook config: unknown service "no-such-shop"/,
    );

    const help = await runbook(['deploy', '--help']);
    assert.match(help.stdout, /--dry-run +show the plan the worker would run and whether it is yours/);
  });
});
