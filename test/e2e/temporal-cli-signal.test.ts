import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DeployState } from '../../src/shared/deploy';
import { findTemporalCli, type Tool } from '../../src/stack/tools';
import { testStack, useWorker } from '../harness';
import { serviceWithV1, startDeploy, waitForState, waitingAt, withGates } from '../workflows/deploy-fixture';

const run = promisify(execFile);

/**
 * The equivalent of the Web UI's Send a Signal for people who live in a terminal: the real
 * `temporal workflow signal` and `temporal workflow query` of the Temporal CLI, as docs/approvals-web-ui.md shows them.
 */
describe('temporal workflow signal / query (the Temporal CLI against a deploy at go-live)', function () {
  this.timeout(180_000);
  let cli: Tool;

  /** Runs the Temporal CLI against the test stack; returns its stdout. */
  const temporal = async (args: string[]): Promise<string> => {
    const target = ['--address', testStack().temporalAddress, '--namespace', testStack().namespace];
    const { stdout } = await run(cli.path, [...args, ...target], { timeout: 30_000 });
    return stdout;
  };

  /** `temporal workflow query --name status`: the deploy's state as JSON. */
  const statusViaCli = async (workflowId: string): Promise<DeployState> => {
    const out = JSON.parse(
      await temporal(['workflow', 'query', '--workflow-id', workflowId, '--name', 'status', '--output', 'json']),
    ) as { queryResult: [DeployState] };
    return out.queryResult[0];
  };

  before(async function () {
    const found = await findTemporalCli();
    // The embedded stack itself runs on this CLI; only an external TEMPORAL_ADDRESS may leave a machine without it.
    if (!found && process.env.TEMPORAL_ADDRESS) this.skip();
    assert.ok(found, 'no Temporal CLI: `npx runbook setup` installs it (or set TEMPORAL_CLI)');
    cli = found;
  });
  const { taskQueue } = useWorker('temporal-cli-signal');

  it('signoff by bob with --input: the deploy goes live, decided by bob via signal; a refused one never counts', async () => {
    const plan = await serviceWithV1(taskQueue);
    // Requested by alice, an approver herself: four-eyes leaves bob.
    const handle = await startDeploy(taskQueue, withGates(plan, ['go-live']), 'v2', 'alice');
    await waitingAt(handle, 'go-live');

    const waiting = await statusViaCli(handle.workflowId);
    assert.equal(waiting.service, plan.service);
    assert.equal(waiting.version, 'v2');
    assert.equal(waiting.phase, 'sign-off');
    assert.equal(waiting.waitingFor?.gate, 'go-live');
    assert.deepEqual(waiting.waitingFor?.approvers, ['bob']);
    assert.deepEqual(waiting.weights, { v1: 0, v2: 100 });

    // Her own sign-off is refused (four-eyes) and recorded as refused.
    const signoff = ['workflow', 'signal', '--workflow-id', handle.workflowId, '--name', 'signoff', '--input'];
    await temporal([...signoff, '{"by":"alice","gate":"go-live"}']);
    const refused = await waitForState(
      handle,
      (s) => (s.gates.find((g) => g.gate === 'go-live')?.refused.length ?? 0) > 0,
      'the refused signoff by alice',
    );
    const refusedGate = refused.gates.find((g) => g.gate === 'go-live');
    assert.equal(refusedGate?.status, 'waiting');
    assert.match(refusedGate?.refused[0]?.reason ?? '', /four-eyes: unverified:alice requested .* may not approve it/);

    await temporal([...signoff, '{"by":"bob","gate":"go-live"}']);
    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const goLive = result.state.gates.find((g) => g.gate === 'go-live');
    assert.equal(goLive?.status, 'approved');
    assert.equal(goLive?.decidedBy, 'unverified:bob');
    assert.equal(goLive?.via, 'signal');
    assert.deepEqual(
      goLive?.refused.map((r) => [r.by, r.via]),
      [['unverified:alice', 'signal']],
    );

    // A closed workflow still answers the query (a worker replays it): the final state, as the CLI prints it.
    const done = await statusViaCli(handle.workflowId);
    assert.equal(done.outcome, 'succeeded');
    assert.equal(done.phase, 'done');
    assert.equal(done.gates.find((g) => g.gate === 'go-live')?.decidedBy, 'unverified:bob');

    // Unlike the Web UI, the CLI signs its signals with an identity (default temporal-cli:$USER@$HOST, any string
    // with --identity): it is the sender's own claim, in the history; the decision is the payload's `by`.
    const identities = ((await handle.fetchHistory()).events ?? []).flatMap((e) =>
      e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.identity ?? ''] : [],
    );
    assert.equal(identities.length, 2);
    for (const identity of identities) assert.match(identity, /^temporal-cli:/);
  });
});
