import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { MAX_REFUSALS_KEPT } from '../../src/shared/approvals';
import { MAX_NAME_LENGTH, type DeployState } from '../../src/shared/deploy';
import {
  approveSignal,
  approveUpdate,
  rejectSignal,
  signoffSignal,
  signoffUpdate,
  statusQuery,
} from '../../src/shared/messages';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { testStack, useWorker } from '../harness';
import { queryDb, shopPlan, startDeploy, waitForState, waitingAt, withGates } from './deploy-fixture';

const UNHANDLED_COMMAND = temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND;
/**
 * The finding of issue 11 ("a message can kill a runbook"): two refused signals with a 1 MB `by` made the state
 * 4 MB each (the name was kept in the refused attempt, its reason and the timeline), so that the status query
 * failed, an approving update's answer (the gate with its refused attempts) made the server terminate the workflow,
 * and an approving signal let it run to its end, where the result (the whole state) was too large to send: the
 * workflow task failed again and again. Here every kind of message, valid or not, in masses, leaves the workflow
 * running, queryable, approvable and cancellable, with a small state and a history that grows by what was sent.
 */

const MB = 1_000_000;
const verbose = (line: string) => process.env.RUNBOOK_TEST_VERBOSE && console.log(`      ${line}`);

async function historyFigures(handle: WorkflowHandle) {
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  return {
    events: events.length,
    bytes: temporal.api.history.v1.History.encode(history).finish().length,
    types: events.map((e) =>
      typeof e.eventType === 'number' ? temporal.api.enums.v1.EventType[e.eventType] : String(e.eventType),
    ),
    /**
     * Why workflow tasks failed (cause: message), for the assertion messages. A completion the server turned down
     * because new signals arrived meanwhile (UNHANDLED_COMMAND: the SDK then runs the task again with them) is
     * Temporal's ordinary answer to a signal racing a task with commands, not a failure of the workflow.
     */
    taskFailures: events.flatMap((e) => {
      const failed = e.workflowTaskFailedEventAttributes;
      if (!failed || failed.cause === UNHANDLED_COMMAND) return [];
      return [`${String(failed.cause)}: ${failed.failure?.message ?? ''}`.slice(0, 300)];
    }),
  };
}

/** The history once the workflow has nothing left to record (the status query can run ahead of the history). */
async function settledHistory(handle: WorkflowHandle) {
  for (let last = await historyFigures(handle); ;) {
    await sleep(300);
    const now = await historyFigures(handle);
    if (now.events === last.events) return now;
    last = now;
  }
}

/** The size of the status as the query answers it: small, whatever was sent. */
const stateBytes = (s: DeployState) => JSON.stringify(s).length;

/** Runs `send` over `items`, `parallel` at a time (a flood, not a loop of round trips). */
async function flood<T>(items: T[], parallel: number, send: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += parallel) await Promise.all(items.slice(i, i + parallel).map(send));
}

describe('bounded messages: floods of refused and oversized signals and updates', function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('message-flood');

  it('two refused signals with a 1 MB `by`: the task never fails, the status stays small, the deploy goes live', async () => {
    const plan = withGates(await shopPlan(), ['before-start', 'go-live']);
    const handle = await startDeploy(taskQueue, plan, 'v1');
    await waitingAt(handle, 'before-start');
    const huge = 'm'.repeat(MB);
    await handle.signal(approveSignal, { by: huge });
    await handle.signal(approveSignal, { by: huge, note: 'again' });
    const refused = await waitForState(
      handle,
      (s) => s.gates[0]?.refusedCount === 2,
      'the two refused signals',
      30_000,
    );
    assert.ok(stateBytes(refused) < 20_000, `the status is ${stateBytes(refused)} characters`);
    assert.equal(refused.gates[0]?.status, 'waiting');
    for (const r of refused.gates[0]?.refused ?? []) {
      assert.equal(r.by.length, MAX_NAME_LENGTH, 'the name is shown cut');
      assert.match(r.reason, /approve payload larger than 4096 characters/);
    }

    // Approving by update: the answer is the decision, without the refused attempts (it used to be terminated here).
    const decision = await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'ok' }] });
    assert.deepEqual(
      { gate: decision.gate, status: decision.status, by: decision.decidedBy, via: decision.via },
      { gate: 'before-start', status: 'approved', by: 'unverified:bob', via: 'update' },
    );
    assert.ok(!('refused' in decision), 'no refused attempts in the answer');

    // Signing off by signal: the deploy ends, and its result (the state) is small (it used to fail here, forever).
    await waitingAt(handle, 'go-live');
    await handle.signal(signoffSignal, { by: 'alice' });
    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.ok(stateBytes(result.state) < 30_000, `the result's state is ${stateBytes(result.state)} characters`);
    const history = await historyFigures(handle);
    assert.deepEqual(history.taskFailures, [], 'no workflow task failed');
    verbose(`1 MB names: history ${history.events} events, ${history.bytes} bytes (2 MB of it the two signals)`);
  });

  it('hundreds of refused, malformed and oversized signals and updates: running, queryable, approvable, cancellable; the history grows by what was sent and nothing more', async () => {
    const plan = withGates(await shopPlan(), ['before-start', 'before-traffic']);
    const handle = await startDeploy(taskQueue, plan, 'v1');
    await waitingAt(handle, 'before-start');
    const before = await settledHistory(handle);

    // 300 refused signals of every kind (names, gates, payload shapes, field sizes), 50 at a time.
    const refusedKinds: Array<[typeof approveSignal, unknown]> = [
      [approveSignal, { by: 'mallory' }],
      [approveSignal, { by: 'dave' }], // the requester: four-eyes
      [approveSignal, { by: 'bob', gate: 'go-live' }],
      [signoffSignal, { by: 'bob' }],
      [approveSignal, { who: 'bob' }],
      [approveSignal, 'bob'],
      [approveSignal, { by: 'b'.repeat(MAX_NAME_LENGTH + 1) }],
      [approveSignal, { by: 'bob', note: 'n'.repeat(2_001) }],
      [approveSignal, { by: 'bob', note: 'clear the screen \u001b[2J' }],
      [approveSignal, { by: 'bob', ['k'.repeat(3_000)]: 1 }],
      [approveSignal, { by: 'Bob Smith' }],
      [approveSignal, { by: 'bob', gate: 'before-start', extra: true }],
    ];
    const signals = Array.from({ length: 300 }, (_, i) => refusedKinds[i % refusedKinds.length]!);
    const sentBytes = signals.reduce((n, [, p]) => n + JSON.stringify(p).length, 0);
    await flood(signals, 50, ([signal, payload]) => handle.signal(signal, payload));

    // Signals over the server's blob size limit (2 MB) are refused by the server: not in history.
    const oversized = Array.from({ length: 10 }, () => ({ by: 'o'.repeat(3 * MB) }));
    await flood(oversized, 5, (payload) =>
      assert.rejects(handle.signal(approveSignal, payload), (err: unknown) => {
        assert.match(String((err as Error).cause), /Blob data size exceeds limit/);
        return true;
      }),
    );

    const flooded = await waitForState(
      handle,
      (s) => s.gates[0]?.refusedCount === signals.length,
      'every refused signal counted',
      60_000,
    );
    const afterSignals = await settledHistory(handle);

    // Oversized and refused updates, one after the other and 10 at a time: rejected by the validator with a short
    // reason (up to 2 MB; beyond, the server refuses them, as the rejection would carry the request back), they leave
    // no trace in history.
    const rejectedUpdate = (payload: unknown) =>
      assert.rejects(handle.executeUpdate(approveUpdate, { args: [payload] }), (err: unknown) => {
        if (err instanceof WorkflowUpdateFailedError) assert.ok(String(err.cause?.message).length <= 500);
        else
          assert.match(
            String((err as Error).cause),
            /FAILED_PRECONDITION: Unable to perform workflow execution update/,
          );
        return true;
      });
    const oversizedUpdates = [0.5, 1, 1, 1.5, 1.9, 2.5, 3].map((mb) => mb * MB);
    for (const size of oversizedUpdates) await rejectedUpdate({ by: 'u'.repeat(size) });
    const refusedUpdates = Array.from({ length: 50 }, (_, i) => ({ by: `mallory-${i}`, note: 'n'.repeat(1_000) }));
    await flood(refusedUpdates, 10, rejectedUpdate);
    const afterUpdates = await settledHistory(handle);
    assert.equal(afterUpdates.events, afterSignals.events, 'rejected updates add no event');

    // The status: small, the first refused attempts kept, the rest counted, the timeline's refused lines capped.
    const state = await handle.query(statusQuery);
    const gate = state.gates[0]!;
    assert.equal(gate.status, 'waiting');
    assert.equal(gate.refused.length, MAX_REFUSALS_KEPT);
    assert.equal(gate.refusedCount, signals.length);
    assert.ok(gate.refused.every((r) => r.by.length <= MAX_NAME_LENGTH && r.reason.length <= 500));
    const refusedLines = state.timeline.filter((t) => /^refused |^more refused attempts/.test(t.message));
    assert.equal(refusedLines.length, MAX_REFUSALS_KEPT + 1);
    assert.ok(stateBytes(state) < 30_000, `the status is ${stateBytes(state)} characters`);
    assert.equal(stateBytes(state), stateBytes(flooded), 'the updates changed nothing');

    // The history: the signals as sent, and nothing the workflow did for them but workflow tasks (and, once, the
    // patch marker with its TemporalChangeVersion search attribute): no failed task, no command per signal.
    assert.deepEqual(afterUpdates.taskFailures, [], 'no workflow task failed');
    const added = afterSignals.types.slice(before.events);
    const allowed = new Set([
      'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
      'EVENT_TYPE_WORKFLOW_TASK_SCHEDULED',
      'EVENT_TYPE_WORKFLOW_TASK_STARTED',
      'EVENT_TYPE_WORKFLOW_TASK_COMPLETED',
      'EVENT_TYPE_WORKFLOW_TASK_FAILED', // only UNHANDLED_COMMAND ones: taskFailures is empty
      'EVENT_TYPE_MARKER_RECORDED',
      'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
    ]);
    assert.deepEqual(
      added.filter((t) => !allowed.has(t)),
      [],
      'only signals and workflow tasks were added',
    );
    assert.equal(added.filter((t) => t === 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED').length, signals.length);
    assert.ok(added.filter((t) => t === 'EVENT_TYPE_MARKER_RECORDED').length <= 1);
    assert.ok(added.filter((t) => t === 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES').length <= 1); // its TemporalChangeVersion
    const grownBy = afterUpdates.bytes - before.bytes;
    assert.ok(grownBy < sentBytes + signals.length * 400, `history grew by ${grownBy} bytes for ${sentBytes} sent`);
    assert.ok(afterUpdates.bytes < 500_000, `history is ${afterUpdates.bytes} bytes`);
    verbose(
      `flood: ${signals.length} refused signals (${sentBytes} characters of payload), ${oversized.length} signals of ` +
        `3 MB and ${oversizedUpdates.length + refusedUpdates.length} updates refused; history ${before.events} events / ${before.bytes} bytes before, ` +
        `${afterUpdates.events} / ${afterUpdates.bytes} after; status ${stateBytes(state)} characters`,
    );

    // Megabytes of updates at once can make workflow tasks fail for a while (the SDK's rejections carry the requests
    // back, over gRPC's 4 MB): the server drops those updates and the workflow carries on by itself.
    const burst = await Promise.allSettled(
      [1, 1, 1, 3, 3, 1.5].map((mb) => handle.executeUpdate(approveUpdate, { args: [{ by: 'b'.repeat(mb * MB) }] })),
    );
    assert.ok(burst.every((r) => r.status === 'rejected'));
    const recovered = await waitForState(handle, (s) => s.gates[0]?.status === 'waiting', 'the recovery', 90_000);
    assert.equal(recovered.gates[0]?.refusedCount, signals.length, 'the burst changed nothing');
    const afterBurst = await settledHistory(handle);
    assert.ok(
      afterBurst.events - afterUpdates.events <= 12,
      `the burst added ${afterBurst.events - afterUpdates.events} events`,
    );
    verbose(
      `a burst of 10.5 MB of updates: ${afterBurst.taskFailures.length} failed workflow tasks recorded, ` +
        `${afterBurst.events - afterUpdates.events} events`,
    );

    // Approvable: a valid approval counts, as ever.
    const decision = await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
    assert.equal(decision.status, 'approved');
    await waitingAt(handle, 'before-traffic', 90_000);

    // Cancellable during another flood at the next gate: it undoes what it did and releases the service lock.
    await flood(
      Array.from({ length: 100 }, (_, i) => ({ by: `mallory-${i}` })),
      50,
      (p) => handle.signal(rejectSignal, p),
    );
    await handle.cancel();
    await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError);
    const end = await handle.query(statusQuery);
    assert.equal(end.outcome, 'cancelled');
    assert.ok(
      end.timeline.some((t) => /^done: stop v1/.test(t.message)),
      'the release was stopped',
    );
    const locks = await queryDb(ORCHESTRATOR_DB, 'SELECT 1 FROM runbook_locks WHERE service = $1', [plan.service]);
    assert.equal(locks.length, 0, 'the service lock is released');
  });

  it('signals whose payload cannot be read (not JSON, an unknown encoding) are refused decisions, not a workflow task that fails for good', async () => {
    const plan = withGates(await shopPlan(), ['before-start']);
    const handle = await startDeploy(taskQueue, plan, 'v1');
    await waitingAt(handle, 'before-start');
    const { client, namespace } = testStack();
    const raw = (encoding: string, data: string) =>
      client.workflowService.signalWorkflowExecution({
        namespace,
        workflowExecution: { workflowId: handle.workflowId },
        signalName: 'approve',
        input: { payloads: [{ metadata: { encoding: Buffer.from(encoding) }, data: Buffer.from(data) }] },
        identity: 'message-flood test',
        requestId: randomUUID(),
      });
    await raw('json/plain', '{"by": "bob"'); // cut short
    await raw('binary/whatever', 'bob');
    await raw('json/protobuf', '{"by": "bob"}');
    const state = await waitForState(handle, (s) => s.gates[0]?.refusedCount === 3, 'the three refusals', 30_000);
    assert.deepEqual(
      state.gates[0]?.refused.map((r) => [r.by, /^approve payload that cannot be read/.test(r.reason)]),
      [
        ['?', true],
        ['?', true],
        ['?', true],
      ],
    );
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
    assert.equal((await handle.result()).outcome, 'succeeded');
    assert.deepEqual((await historyFigures(handle)).taskFailures, [], 'no workflow task failed');
  });

  it('a signoff update by an approver still answers with the decision (the CLI prints who decided)', async () => {
    const plan = withGates(await shopPlan(), ['go-live']);
    const handle = await startDeploy(taskQueue, plan, 'v1');
    await waitingAt(handle, 'go-live');
    await flood(
      Array.from({ length: 30 }, () => ({ by: 'mallory' })),
      30,
      (p) => handle.signal(signoffSignal, p),
    );
    await waitForState(handle, (s) => s.gates.find((g) => g.gate === 'go-live')?.refusedCount === 30, 'the refusals');
    const decision = await handle.executeUpdate(signoffUpdate, { args: [{ by: 'alice', note: 'fine' }] });
    assert.deepEqual(
      { gate: decision.gate, status: decision.status, by: decision.decidedBy, note: decision.note },
      { gate: 'go-live', status: 'approved', by: 'unverified:alice', note: 'fine' },
    );
    assert.equal((await handle.result()).outcome, 'succeeded');
  });
});
