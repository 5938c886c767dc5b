import assert from 'node:assert/strict';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { DeployState, GateName } from '../../src/shared/deploy';
import { approveSignal, approveUpdate, rejectUpdate, statusQuery } from '../../src/shared/messages';
import type { DeployRequest } from '../../src/shared/request';
import type { ApprovalGate, SingleHostService } from '../../src/shared/service-plan';
import type { SignedDecision } from '../../src/shared/signed';
import { signDecision, signRequest } from '../../src/signing/decisions';
import type { deployService } from '../../src/workflows';
import { runbookConfigFor, testStack, uniqueName, useWorker } from '../harness';
import { runbookCli } from '../helpers/cli';
import { putSigners, testKey } from '../helpers/keys';
import { requestFor, shopPlan, waitForState, waitingAt, withGates } from './deploy-fixture';

/**
 * Issue 12: an approval counts only when a key of the worker's allowed signers signed it for this run, this gate and
 * this decision, before its expiry, once; four-eyes compares the proven identities and keys. Someone who can send
 * signals and updates to the namespace but holds no approver's private key cannot make a gate pass.
 */
describe('signed approvals (real dev server)', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('signed');
  const alice = testKey('alice');
  const bob = testKey('bob', 'ecdsa-256');
  const dave = testKey('dave');
  const mallory = testKey('mallory');
  const signers = [alice.line(), bob.line(), dave.line('dave,release-bot')];
  const config = () => runbookConfigFor(taskQueue);

  /** A production-like plan: unsigned refused, alice, bob and release-bot approve, four-eyes. */
  async function productionPlan(gates: ApprovalGate[], extra: Partial<SingleHostService> = {}) {
    const plan = withGates(await shopPlan(), gates, { approvers: ['alice', 'bob', 'release-bot'] });
    return { ...plan, signing: { unsigned: 'refuse' as const, distinctApprovers: false }, ...extra };
  }

  /** A deploy whose request dave signed (`signed: false`: unsigned). */
  async function start(plan: SingleHostService, { signed = true } = {}) {
    const workflowId = uniqueName('deploy-signed');
    const request: DeployRequest = { ...requestFor(taskQueue, plan), version: 'v1', requestedBy: 'dave' };
    putSigners(config(), signers);
    const input = signed
      ? await signRequest(request, { workflowId, kind: 'deploy', key: dave.file, env: process.env })
      : request;
    return testStack().client.workflow.start<typeof deployService>('deployService', {
      taskQueue,
      workflowId,
      args: [input],
    });
  }

  const runIdOf = async (h: WorkflowHandle) => (await h.describe()).runId;
  const sign = async (
    h: WorkflowHandle,
    key: { file: string },
    d: Partial<Parameters<typeof signDecision>[0]> & { gate: GateName; by: string },
  ): Promise<SignedDecision> =>
    signDecision({
      workflowId: h.workflowId,
      runId: await runIdOf(h),
      kind: 'approve',
      key: key.file,
      env: process.env,
      ...d,
    });

  async function refused(h: WorkflowHandle, payload: unknown, reason: RegExp, update = approveUpdate) {
    const err = await h.executeUpdate(update, { args: [payload] }).then(
      () => assert.fail(`accepted: ${JSON.stringify(payload).slice(0, 200)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
    assert.match(String(err.cause?.message), reason);
  }

  it('a signed approve counts as its verified signer; unsigned, wrong key, tampered, other run, expired, replayed and self-approval are refused; a removed key stops working', async () => {
    const plan = await productionPlan(['before-start', 'before-traffic', 'go-live']);
    const h = await start(plan);
    let s = await waitingAt(h, 'before-start');
    assert.deepEqual(
      { identity: s.requester?.identity, verified: s.requester?.verified },
      { identity: 'dave', verified: true },
    );
    assert.deepEqual(s.waitingFor?.approvers, ['alice', 'bob', 'release-bot'], 'release-bot is a name, not a key');

    await refused(h, { by: 'alice', gate: 'before-start' }, /unsigned approve: .* takes only signed decisions/);
    await refused(
      h,
      await sign(h, mallory, { gate: 'before-start', by: 'alice' }),
      /not in the worker's allowed signers/,
    );
    const forTraffic = await sign(h, alice, { gate: 'before-traffic', by: 'alice' });
    await refused(h, { ...forTraffic, gate: 'before-start' }, /signature refused: the signature of key .* is wrong/);
    const noted = await sign(h, alice, { gate: 'before-start', by: 'alice', note: 'looks fine' });
    await refused(h, { ...noted, note: 'looks fine, ship it' }, /is wrong/);
    await refused(h, { ...noted, by: 'bob' }, /is wrong|not as bob/);
    await refused(
      h,
      await sign(h, alice, { gate: 'before-start', by: 'alice', runId: 'another-run' }),
      /signed for run another-run/,
    );
    const otherWorkflow = await signDecision({
      workflowId: 'deploy-other',
      runId: await runIdOf(h),
      kind: 'approve',
      gate: 'before-start',
      by: 'alice',
      key: alice.file,
      env: process.env,
    });
    await refused(h, otherWorkflow, /is wrong/);
    const asReject = await sign(h, alice, { gate: 'before-start', by: 'alice', kind: 'reject' });
    await refused(h, asReject, /is wrong/);
    await refused(
      h,
      await sign(h, alice, { gate: 'before-start', by: 'alice', expiresAtMs: Date.now() - 1_000 }),
      /expired at/,
    );
    await refused(
      h,
      await sign(h, dave, { gate: 'before-start', by: 'release-bot' }),
      /four-eyes: release-bot .*requester's key/,
    );
    await refused(h, await sign(h, alice, { gate: 'before-start', by: 'ALICE@evil' }), /not as alice@evil/);

    const approved = await sign(h, alice, { gate: 'before-start', by: 'alice', note: 'checked' });
    const gate = await h.executeUpdate(approveUpdate, { args: [approved] });
    assert.equal(gate.decidedBy, 'alice');
    assert.equal(gate.verified, true);
    assert.match(String(gate.fingerprint), /^SHA256:/);
    await refused(h, approved, /not waiting|was used already/);

    await waitingAt(h, 'before-traffic');
    const replayedNonce = await sign(h, bob, { gate: 'before-traffic', by: 'bob', nonce: approved.nonce });
    await refused(h, replayedNonce, /nonce .* was used already/);
    await h.signal(approveSignal, { by: 'bob', gate: 'before-traffic' });
    s = await waitForState(
      h,
      (x) => (x.gates.find((g) => g.gate === 'before-traffic')?.refused.length ?? 0) > 0,
      'the refused signal',
    );
    assert.equal(
      s.gates.find((g) => g.gate === 'before-traffic')?.status,
      'waiting',
      'an unsigned signal does not count',
    );

    putSigners(config(), [alice.line(), dave.line('dave,release-bot')]); // bob's key is removed
    await refused(h, await sign(h, bob, { gate: 'before-traffic', by: 'bob' }), /not in the worker's allowed signers/);
    putSigners(config(), signers);
    // The Web UI path: the payload that `runbook approve --print-signal` prints, pasted into the Signal dialog.
    await h.signal(approveSignal, await sign(h, bob, { gate: 'before-traffic', by: 'bob' }));
    await waitingAt(h, 'go-live');
    await h.executeUpdate(approveUpdate, {
      args: [await sign(h, bob, { gate: 'go-live', by: 'bob', kind: 'approve' })],
    });
    const result = await h.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const byGate = Object.fromEntries(result.state.gates.map((g) => [g.gate, g]));
    assert.deepEqual(
      ['before-start', 'before-traffic', 'go-live'].map((g) => [
        byGate[g]?.decidedBy,
        byGate[g]?.verified,
        byGate[g]?.via,
      ]),
      [
        ['alice', true, 'update'],
        ['bob', true, 'signal'],
        ['bob', true, 'update'],
      ],
    );
    // Refused by the validator (unsigned, another run, expired) never reach the history; the ones refused after
    // their signature was checked are kept with their reasons.
    const reasons = byGate['before-start']?.refused.map((r) => r.reason).join('\n') ?? '';
    for (const why of [/not in the worker's allowed signers/, /is wrong/, /four-eyes/, /not as alice@evil/])
      assert.match(reasons, why);
  });

  it('distinct approvers: with the policy, nobody approves two gates', async () => {
    const plan = await productionPlan(['before-start', 'before-traffic'], {});
    const h = await start({ ...plan, signing: { unsigned: 'refuse', distinctApprovers: true } });
    await waitingAt(h, 'before-start');
    await h.executeUpdate(approveUpdate, { args: [await sign(h, alice, { gate: 'before-start', by: 'alice' })] });
    await waitingAt(h, 'before-traffic');
    await refused(
      h,
      await sign(h, alice, { gate: 'before-traffic', by: 'alice' }),
      /distinct approvers: alice decided before-start/,
    );
    await h.executeUpdate(rejectUpdate, {
      args: [await sign(h, bob, { gate: 'before-traffic', by: 'bob', kind: 'reject' })],
    });
    assert.equal((await h.result()).outcome, 'rejected');
  });

  it('an unsigned request is refused where signatures are required, before anything runs', async () => {
    const h = await start(await productionPlan(['before-start']), { signed: false });
    const err = await h.result().then(
      () => assert.fail('the unsigned request ran'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String(err.cause?.message), /unsigned deploy request: .* takes only signed requests/);
  });

  it('where the team accepts unsigned decisions (staging, demo), an unsigned Web UI signal counts as unverified:<name>', async () => {
    // examples/runbook.yaml staging: accept-unverified
    const plan = withGates(await shopPlan(), ['before-start'], { approvers: ['alice', 'bob', 'dave'] });
    assert.equal(plan.signing?.unsigned, 'accept-unverified');
    const h = await start(plan, { signed: false });
    const s: DeployState = await waitingAt(h, 'before-start');
    assert.equal(s.requester?.identity, 'unverified:dave');
    await h.signal(approveSignal, { by: 'Dave', gate: 'before-start' }); // four-eyes: case does not fool it
    await waitForState(h, (x) => (x.gates[0]?.refused.length ?? 0) > 0, 'the refused self-approval');
    await h.signal(approveSignal, { by: 'alice', gate: 'before-start' });
    const result = await h.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const g = result.state.gates.find((x) => x.gate === 'before-start');
    assert.deepEqual([g?.decidedBy, g?.verified], ['unverified:alice', false]);
    assert.match(String(g?.refused[0]?.reason), /four-eyes/);
    assert.ok(
      (await h.query(statusQuery)).timeline.some((t) => /approved by unverified:alice \(unsigned\)/.test(t.message)),
    );
  });

  it('the CLI: runbook approve signs with --key, --print-signal prints a payload the Web UI signal accepts', async () => {
    const plan = await productionPlan(['before-start', 'before-traffic']);
    const h = await start(plan);
    await waitingAt(h, 'before-start');
    const stack = testStack();
    const env = {
      RUNBOOK_HOME: stack.settings.home,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: stack.namespace,
      RUNBOOK_TASK_QUEUE: taskQueue,
    };
    const printed = await runbookCli(
      ['approve', h.workflowId, '--as', 'alice', '--key', alice.file, '--print-signal', '--json'],
      env,
    );
    assert.equal(printed.code, 0, printed.stderr);
    const payload = JSON.parse(printed.stdout.trim()) as SignedDecision;
    assert.equal(payload.gate, 'before-start');
    assert.match(payload.signature, /^-----BEGIN SSH SIGNATURE-----/);
    await h.signal(approveSignal, payload);
    await waitingAt(h, 'before-traffic');
    const unsigned = await runbookCli(['approve', h.workflowId, '--as', 'bob'], env);
    assert.notEqual(unsigned.code, 0);
    assert.match(unsigned.stderr, /approve refused: unsigned approve/);
    const approved = await runbookCli(['approve', h.workflowId, '--as', 'bob', '--note', 'ok'], {
      ...env,
      RUNBOOK_SIGNING_KEY: bob.file,
    });
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /before-traffic approved by bob \(verified, key SHA256:/);
    const result = await h.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const status = await runbookCli(['status', h.workflowId], env);
    assert.match(status.stdout, /requester: dave \(verified, key SHA256:/);
    assert.match(status.stdout, /decision: before-start approved by alice \(verified, key SHA256:\S+\) via Web UI/);
    assert.match(
      status.stdout,
      /decision: before-traffic approved by bob \(verified, key SHA256:\S+\) via CLI at .* "ok"/,
    );
  });
});
