import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { temporal } from '@temporalio/proto';
import { RunbookKind, RunbookOutcome } from '../../src/shared/search-attributes';
import { stackCheckStatusQuery } from '../../src/shared/stack-check';
import type { stackCheck } from '../../src/workflows';
import { spawnChildWorker, startWorker, testStack, uniqueName } from '../harness';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Event type names of a history (e.g. 'ActivityTaskCompleted'), in order. */
function eventTypes(events: HistoryEvent[]): string[] {
  return events.map((e) => eventTypeName(e));
}

function eventTypeName(e: HistoryEvent): string {
  const key = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k]);
  return key ? key[0]!.toUpperCase() + key.slice(1, -'EventAttributes'.length) : '?';
}

/** The identities of the workers that ran the workflow tasks, in order. */
function workflowTaskIdentities(events: HistoryEvent[]): string[] {
  return events.flatMap((e) =>
    e.workflowTaskStartedEventAttributes?.identity ? [e.workflowTaskStartedEventAttributes.identity] : [],
  );
}

describe('stackCheck workflow on the real dev server', () => {
  it('runs its activities against PostgreSQL and HAProxy, and the server history records each step', async () => {
    const { client } = testStack();
    const taskQueue = uniqueName('stack-check');
    const worker = await startWorker(taskQueue, 'worker-one');
    try {
      const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
        taskQueue,
        workflowId: uniqueName('stack-check'),
        args: [{ hold: '100ms' }],
      });
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded');
      assert.match(result.database.serverVersion, /^PostgreSQL 1[5-9]/);
      assert.equal(result.database.database, 'runbook');
      assert.match(result.trafficRouter.version, /^2\.\d+/);

      const history = await handle.fetchHistory();
      const types = eventTypes(history.events ?? []);
      assert.equal(types[0], 'WorkflowExecutionStarted');
      assert.equal(types.at(-1), 'WorkflowExecutionCompleted');
      assert.equal(types.filter((t) => t === 'ActivityTaskCompleted').length, 3, types.join(','));
      assert.equal(types.filter((t) => t === 'TimerFired').length, 1);
      assert.ok(types.includes('UpsertWorkflowSearchAttributes'));
      assert.deepEqual([...new Set(workflowTaskIdentities(history.events ?? []))], ['worker-one']);

      const description = await handle.describe();
      assert.equal(description.typedSearchAttributes.get(RunbookKind), 'stack-check');
      assert.equal(description.typedSearchAttributes.get(RunbookOutcome), 'succeeded');
    } finally {
      await worker.stop();
    }
  });

  it('survives a SIGKILLed worker: a new worker finishes the workflow from its durable state', async () => {
    const { client } = testStack();
    const taskQueue = uniqueName('stack-check-crash');
    const doomed = spawnChildWorker(taskQueue);
    let survivor: { stop(): Promise<void> } | undefined;
    try {
      const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
        taskQueue,
        workflowId: uniqueName('stack-check-crash'),
        args: [{ hold: '3s' }],
      });
      // The child worker takes the first tasks; wait until the workflow sits on its durable timer.
      for (let i = 0; ; i++) {
        const state = await handle.query(stackCheckStatusQuery).catch(() => undefined);
        if (state?.phase === 'holding') break;
        assert.ok(i < 300, 'the child worker never reached the hold');
        await sleep(100);
      }
      const before = workflowTaskIdentities((await handle.fetchHistory()).events ?? []);
      await doomed.kill();

      survivor = await startWorker(taskQueue, 'survivor');
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded');

      const events = (await handle.fetchHistory()).events ?? [];
      const identities = workflowTaskIdentities(events);
      assert.ok(
        before.length > 0 && before.every((id) => id !== 'survivor'),
        `first tasks ran on the child: ${before.join(',')}`,
      );
      assert.equal(identities.at(-1), 'survivor', 'the last workflow task ran on the new worker');
      assert.equal(eventTypes(events).filter((t) => t === 'ActivityTaskCompleted').length, 3, 'no activity ran twice');
    } finally {
      await doomed.kill();
      await survivor?.stop();
    }
  });
});
