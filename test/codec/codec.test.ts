import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { withClient } from '../../src/cli/temporal';
import { AesGcmCodec, KEY_ID_METADATA, PayloadDecryptionError, parseCodecKeys } from '../../src/codec/aes-gcm-codec';
import { createCodecServer, listen } from '../../src/codec/codec-server';
import { UserError } from '../../src/errors';
import type { StackCheckInput } from '../../src/shared/stack-check';
import { freePort } from '../../src/system/processes';
import { findTemporalCli } from '../../src/stack/tools';
import { connectClient, type TemporalConnection } from '../../src/temporal-connection';
import type { stackCheck } from '../../src/workflows';
import { createRunbookWorker } from '../../src/worker';
import { testStack, uniqueName, workflowBundle } from '../harness';

type History = temporal.api.history.v1.IHistory;

const MARKER = `release-command-marker-${randomBytes(6).toString('hex')}`;
/** The stackCheck input with a plan-like field that the workflow ignores but the history would hold in clear. */
const input = { hold: '10ms', plan: { release: { command: `node server.js ${MARKER}` } } } as StackCheckInput;

const rawBytes = (history: History) => Buffer.from(temporal.api.history.v1.History.encode(history).finish());
const keyIdsIn = (history: History) =>
  new Set(
    JSON.stringify(
      temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.create(history), { bytes: String }),
    )
      .match(new RegExp(`"${KEY_ID_METADATA}":"([^"]+)"`, 'g'))
      ?.map((m) => Buffer.from(m.split(':')[1]!.replace(/"/g, ''), 'base64').toString()),
  );

describe('payload encryption on the real dev server (RUNBOOK_CODEC_KEYS)', function () {
  this.timeout(120_000);
  const k1 = `k1:${randomBytes(32).toString('base64')}`;
  const k2 = `k2:${randomBytes(32).toString('base64')}`;
  const withCodec = (keys: string): TemporalConnection => ({
    ...testStack().connection,
    codec: new AesGcmCodec(parseCodecKeys(keys)!),
  });
  const cliEnv = (keys?: string) => ({
    RUNBOOK_HOME: testStack().settings.home,
    TEMPORAL_ADDRESS: testStack().temporalAddress,
    TEMPORAL_NAMESPACE: testStack().namespace,
    TEMPORAL_CONFIG_FILE: '/dev/null',
    ...(keys ? { RUNBOOK_CODEC_KEYS: keys } : {}),
  });

  /** A worker with this connection's codec on its own task queue, for the duration of `fn`. */
  async function withWorker<T>(connection: TemporalConnection, fn: (taskQueue: string) => Promise<T>): Promise<T> {
    const taskQueue = uniqueName('codec');
    const { worker, close } = await createRunbookWorker(
      { ...testStack().workerConfig(taskQueue), temporal: connection },
      { workflowBundle: await workflowBundle(), shutdownGraceTime: '1s' },
    );
    const running = worker.run();
    try {
      return await fn(taskQueue);
    } finally {
      worker.shutdown();
      await running;
      await close();
    }
  }

  async function run(client: Client, taskQueue: string) {
    const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
      taskQueue,
      workflowId: uniqueName('codec-stack-check'),
      args: [input],
      memo: { plan: MARKER },
    });
    return { handle, result: await handle.result() };
  }

  let encryptedId: string;
  let encryptedHistory: History;

  it('with it on, the history on the server holds no plaintext input or result, and the CLI still reads the result', async () => {
    const client = await connectClient(withCodec(k1));
    try {
      await withWorker(withCodec(k1), async (taskQueue) => {
        const { handle, result } = await run(client, taskQueue);
        assert.equal(result.outcome, 'succeeded');
        assert.match(result.database.serverVersion, /^PostgreSQL/);
        encryptedId = handle.workflowId;
        // the test stack's own client has no codec: it sees what the server stores
        encryptedHistory = await testStack().client.workflow.getHandle(handle.workflowId).fetchHistory();
        const raw = rawBytes(encryptedHistory);
        assert.equal(raw.includes(MARKER), false, 'the input or memo in clear');
        assert.equal(raw.includes('PostgreSQL'), false, 'an activity result in clear');
        assert.deepEqual([...keyIdsIn(encryptedHistory)], ['k1']);

        // A control run started without the codec: the same grep finds its input, so it would have found it above.
        const plainStart = await testStack().client.workflow.start<typeof stackCheck>('stackCheck', {
          taskQueue,
          workflowId: uniqueName('codec-control'),
          args: [input],
        });
        await assert.rejects(plainStart.result(), /Unknown encoding: binary\/encrypted/, 'its result is encrypted');
        assert.equal(rawBytes(await plainStart.fetchHistory()).includes(MARKER), true, 'the control input is in clear');
      });
    } finally {
      await client.connection.close();
    }
    const viaCli = await withClient(cliEnv(k1), (c) => c.workflow.getHandle(encryptedId).result());
    assert.equal((viaCli as { outcome: string }).outcome, 'succeeded');
    await assert.rejects(
      withClient(cliEnv(), (c) => c.workflow.getHandle(encryptedId).result()),
      (err: unknown) =>
        err instanceof UserError && /payloads are encrypted and RUNBOOK_CODEC_KEYS is not set here/.test(err.message),
    );
  });

  it('the codec server decodes what the worker encoded, for the temporal CLI (--codec-endpoint) too', async () => {
    const server: http.Server = createCodecServer({
      codec: new AesGcmCodec(parseCodecKeys(k1)!),
      origins: ['http://localhost:8233'],
    });
    const port = await listen(server, await freePort(), '127.0.0.1');
    try {
      const started = encryptedHistory.events?.[0]?.workflowExecutionStartedEventAttributes;
      const payload = started?.input?.payloads?.[0];
      assert.ok(payload);
      const res = await fetch(`http://127.0.0.1:${port}/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Namespace': testStack().namespace },
        body: JSON.stringify({
          payloads: [
            {
              metadata: Object.fromEntries(
                Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
              ),
              data: Buffer.from(payload.data ?? []).toString('base64'),
            },
          ],
        }),
      });
      const body = (await res.json()) as { payloads: Array<{ data: string }> };
      assert.equal(res.status, 200);
      assert.match(Buffer.from(body.payloads[0]!.data, 'base64').toString(), new RegExp(MARKER));

      const cli = await findTemporalCli();
      if (!cli) throw new Error('the Temporal CLI is missing');
      const show = (extra: string[]) =>
        promisify(execFile)(
          cli.path,
          [
            'workflow',
            'show',
            '--workflow-id',
            encryptedId,
            '--address',
            testStack().temporalAddress,
            '--namespace',
            testStack().namespace,
            '--output',
            'json',
            ...extra,
          ],
          { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, TEMPORAL_CONFIG_FILE: '/dev/null' } },
        );
      // `-o json` prints payload data in base64: read every data field
      const payloadText = (json: string) =>
        [...json.matchAll(/"data": "([A-Za-z0-9+/=]*)"/g)]
          .map((m) => Buffer.from(m[1]!, 'base64').toString())
          .join('\n');
      assert.equal(payloadText((await show([])).stdout).includes(MARKER), false);
      const decoded = payloadText((await show(['--codec-endpoint', `http://127.0.0.1:${port}`])).stdout);
      assert.equal(decoded.includes(MARKER), true, 'the temporal CLI shows the decoded input');
      assert.match(decoded, /PostgreSQL/, 'and the decoded activity results');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('rotation: new payloads use the new key, the old key still decrypts, an unknown key id is refused', async () => {
    const rotated = `${k2},${k1}`;
    const client = await connectClient(withCodec(rotated));
    try {
      await withWorker(withCodec(rotated), async (taskQueue) => {
        const { handle, result } = await run(client, taskQueue);
        assert.equal(result.outcome, 'succeeded');
        const history = await testStack().client.workflow.getHandle(handle.workflowId).fetchHistory();
        assert.deepEqual([...keyIdsIn(history)], ['k2']);
        assert.equal(rawBytes(history).includes(MARKER), false);
      });
      const old = (await client.workflow.getHandle(encryptedId).result()) as { outcome: string };
      assert.equal(old.outcome, 'succeeded', 'the k1 history reads with k1 kept second');
    } finally {
      await client.connection.close();
    }
    const onlyNew = await connectClient(withCodec(k2));
    try {
      await assert.rejects(
        onlyNew.workflow.getHandle(encryptedId).result(),
        (err: unknown) =>
          err instanceof PayloadDecryptionError &&
          /key id "k1", which RUNBOOK_CODEC_KEYS does not hold \(it holds: k2\)/.test(err.message),
      );
    } finally {
      await onlyNew.connection.close();
    }
    await assert.rejects(
      withClient(cliEnv(k2), (c) => c.workflow.getHandle(encryptedId).result()),
      (err: unknown) =>
        err instanceof UserError && /key id "k1"/.test(err.message) && !err.message.includes(k2.slice(3)),
    );
  });
});
