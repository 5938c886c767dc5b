import assert from 'node:assert/strict';
import { WorkflowFailedError, type ScheduleHandle, type WorkflowHandle } from '@temporalio/client';
import type { DrillResult } from '../../src/shared/drill';
import type { SingleHostService } from '../../src/shared/service-plan';
import { signRequest } from '../../src/signing/decisions';
import type { deployService } from '../../src/workflows';
import { runbookConfigFor, testStack, uniqueName, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';
import { putSigners, testKey } from '../helpers/keys';
import { liveV1, requestFor } from './deploy-fixture';
import { scheduledSignedDrill } from './drill-fixture';

/**
 * Issue 12: a drill that a Temporal Schedule starts is requested by the person who signed the schedule
 * (`runbook drill schedule --key`), verified; the standing signature counts only for runs that Temporal says the
 * schedule started, before its expiry, for drills, and while the key is enrolled.
 */
describe('signed schedules (real dev server)', function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('signed-sched');
  const alice = testKey('alice');
  const schedules: ScheduleHandle[] = [];
  let plan: SingleHostService;
  const config = () => runbookConfigFor(taskQueue);

  before(async () => {
    const live = await liveV1(taskQueue);
    // Production-like from here on: unsigned requests and decisions are refused.
    plan = { ...live.plan, signing: { unsigned: 'refuse', distinctApprovers: false } };
  });
  beforeEach(() => putSigners(config(), [alice.line()]));
  after(async () => {
    for (const s of schedules) await s.delete().catch(() => undefined);
  });

  /** The refusal a run ended with. */
  async function refusal(h: WorkflowHandle): Promise<string> {
    const err = await h.result().then(
      () => assert.fail(`${h.workflowId} ran`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return String(err.cause?.message);
  }

  it("a run the schedule started is requested by the schedule's signer, verified; a copy started by hand is refused", async () => {
    const { handle, request, schedule } = await scheduledSignedDrill(taskQueue, plan, alice);
    schedules.push(schedule);
    const result = (await handle.result()) as DrillResult;
    assert.equal(result.outcome, 'passed', result.reason);
    assert.equal(result.state.requester?.identity, 'alice');
    assert.equal(result.state.requester?.verified, true);
    assert.equal(result.state.requester?.schedule, schedule.scheduleId);
    assert.match(String(result.state.requester?.fingerprint), /^SHA256:/);
    assert.ok(
      result.state.timeline.some((t) =>
        t.message.startsWith(`requested by alice through schedule ${schedule.scheduleId} (signed, SHA256:`),
      ),
    );

    // Someone with access to the namespace copies the signed input and starts it under a schedule-like id, even with
    // the schedule's search attribute (the server lets a client set it): Temporal's record of the schedule says no.
    const forged = await testStack().client.workflow.start('restoreDrill', {
      taskQueue,
      workflowId: `${schedule.scheduleId}-2026-01-01T00:00:00Z`,
      args: [request],
      searchAttributes: { TemporalScheduledById: [schedule.scheduleId] },
    });
    assert.match(
      await refusal(forged),
      new RegExp(`schedule ${schedule.scheduleId} did not start ${forged.workflowId}: its signature counts only`),
    );
    // ... and under any other id, the signature is not for that run at all.
    const elsewhere = await testStack().client.workflow.start('restoreDrill', {
      taskQueue,
      workflowId: uniqueName('drill-copy'),
      args: [request],
    });
    assert.match(await refusal(elsewhere), /signed for the runs of schedule .*, not drill-copy/);
  });

  it('an expired schedule signature, a key removed from the signers, another key and a deploy request are refused', async () => {
    const expired = await scheduledSignedDrill(taskQueue, plan, alice, { validityMs: 1 });
    schedules.push(expired.schedule);
    assert.match(
      await refusal(expired.handle),
      /the schedule's signature expired at .*; sign it again: runbook drill schedule .* --key <your key>/,
    );

    const mallory = testKey('mallory');
    const foreign = await scheduledSignedDrill(taskQueue, plan, mallory);
    schedules.push(foreign.schedule);
    assert.match(
      await refusal(foreign.handle),
      /the schedule's signature is refused: key SHA256:\S+ is not in the worker's allowed signers/,
    );

    // alice signed the schedule while enrolled; her key then leaves the team: the next run does not count.
    const carol = testKey('carol');
    putSigners(config(), [carol.line()]);
    const removed = await scheduledSignedDrill(taskQueue, plan, alice);
    schedules.push(removed.schedule);
    assert.match(
      await refusal(removed.handle),
      /the schedule's signature is refused: key SHA256:\S+ is not in the worker's allowed/,
    );
    putSigners(config(), [alice.line()]);

    // A standing signature is for drills only: a deploy request signed the same way never runs.
    const scheduleId = uniqueName('deploy-sched');
    const deploy = await signRequest(
      { ...requestFor(taskQueue, plan), version: 'v1', requestedBy: 'alice' },
      { schedule: scheduleId, kind: 'deploy', key: alice.file, env: process.env },
    );
    const h = await testStack().client.workflow.start<typeof deployService>('deployService', {
      taskQueue,
      workflowId: `${scheduleId}-2026-01-01T00:00:00Z`,
      args: [deploy],
    });
    assert.match(await refusal(h), /a schedule's signature counts only for drills, not for a deploy request/);
  });

  it('runbook drill --key and drill schedule --key sign (a standing signature for the schedule); without a key the schedule says its runs are unverified', async () => {
    const stack = testStack();
    const env = {
      RUNBOOK_CONFIG: config(),
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
      DATABASE_URL: process.env.DATABASE_URL ?? '',
    };
    requestFor(taskQueue, plan); // the refusing plan in the config the CLI reads
    const args = ['drill', 'schedule', plan.service, '--env', plan.environment, '--every', '7d'];
    const signed = await runbookCli([...args, '--key', alice.file, '--valid-for', '30d'], env);
    assert.equal(signed.code, 0, `${signed.stdout}\n${signed.stderr}`);
    const scheduleId = /(created|updated) the schedule (\S+):/.exec(signed.stdout)?.[2];
    assert.ok(scheduleId, signed.stdout);
    const handle = stack.client.schedule.getHandle(scheduleId);
    schedules.push(handle);
    assert.match(signed.stdout, /signed: +with .*, for this schedule's runs until 20\d\d-/);
    const input = (await handle.describe()).action.args?.[0] as {
      signed?: { schedule?: string; expiresAtMs?: number };
    };
    assert.equal(input.signed?.schedule, scheduleId);
    const days = ((input.signed?.expiresAtMs ?? 0) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `valid for ${days} days`);

    // A drill run now, signed the same way a deploy is (`drill --key` used to be refused as an unknown option);
    // without --wait the CLI says that the worker took it, and as whom, then `watch` follows it.
    const now = await runbookCli(
      ['drill', plan.service, '--env', plan.environment, '--key', alice.file, '--as', 'alice'],
      env,
    );
    assert.equal(now.code, 0, `${now.stdout}\n${now.stderr}`);
    assert.match(now.stdout, /taken by the worker, requested by alice; it runs without you now/);
    const drillId = /started (drill-\S+):/.exec(now.stdout)?.[1];
    assert.ok(drillId, now.stdout);
    const watched = await runbookCli(['watch', drillId], env);
    assert.equal(watched.code, 0, `${watched.stdout}\n${watched.stderr}`);
    const status = await runbookCli(['status', drillId], env);
    assert.match(status.stdout, /requester: alice \(verified, key SHA256:/);

    // doctor reads the schedule: current and signed; then about to expire; then behind a changed plan.
    const drillsCheck = async () => {
      const doctor = await runbookCli(['doctor', '--json', '--config', config()], env);
      const report = JSON.parse(doctor.stdout) as {
        checks: Array<{ component: string; check: string; ok: boolean; detail: string; fix?: string }>;
      };
      const found = report.checks.find(
        (c) => c.component === 'drills' && c.check === `${plan.service}/${plan.environment}`,
      );
      assert.ok(found, JSON.stringify(report.checks.filter((c) => !c.ok || c.component === 'drills')));
      return found;
    };
    let check = await drillsCheck();
    assert.ok(check.ok, check.detail);
    assert.match(check.detail, new RegExp(`schedule ${scheduleId} is current, signed until 20`));
    const soon = await runbookCli([...args, '--key', alice.file, '--valid-for', '10d'], env);
    assert.equal(soon.code, 0, soon.stderr);
    check = await drillsCheck();
    assert.equal(check.ok, false);
    assert.match(check.detail, /signature expires at .*: sign it again before then/);
    assert.match(check.fix ?? '', /runbook drill schedule .* --key <your key>/);
    requestFor(taskQueue, { ...plan, drill: { ...plan.drill, rtoTargetMs: 123_000 } });
    check = await drillsCheck();
    assert.equal(check.ok, false);
    assert.match(check.detail, /sends the digest of an older plan: the worker refuses its runs \(PlanDigestMismatch\)/);
    requestFor(taskQueue, plan);

    const tooLong = await runbookCli([...args, '--key', alice.file, '--valid-for', '500d'], env);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /--valid-for must be at most 400d/);
    const unsigned = await runbookCli(args, env);
    assert.equal(unsigned.code, 0, unsigned.stderr);
    assert.match(
      unsigned.stdout,
      /signed: +no \(no --key or RUNBOOK_SIGNING_KEY\): its runs are requested by unverified:schedule:/,
    );
  });
});
