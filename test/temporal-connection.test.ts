import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { withClient } from '../src/cli/temporal';
import { UserError } from '../src/errors';
import type { stackCheck } from '../src/workflows';
import { findTemporalCli } from '../src/stack/tools';
import {
  connectClient,
  connectNative,
  describeConnection,
  loadTemporalConnection,
  type TemporalConnection,
} from '../src/temporal-connection';
import { connectionFailure } from '../src/temporal-diagnosis';
import { createRunbookWorker } from '../src/worker';
import { testStack, uniqueName, workflowBundle } from './harness';
import { runbookCli } from './helpers/cli';
import { startGrpcHeaderProxy, type GrpcHeaderProxy } from './helpers/grpc-header-proxy';
import { makeTestPki, startTlsFront, type TestPki, type TlsFront } from './helpers/tls-front';

/*
 * Secured connections for real: HAProxy terminates TLS (TCP mode, `verify required` on the mTLS port) in front
 * of the test stack's plain dev server, with certificates this suite makes with openssl; a small HTTP/2 proxy
 * that checks an API key stands in for Temporal Cloud (the dev server checks none).
 */

interface DoctorReport {
  checks: Array<{ component: string; check: string; ok: boolean; detail: string; fix?: string }>;
}

/** The connection that `env` (TEMPORAL_* variables, a profile file) describes, as the CLI and worker load it. */
function load(env: NodeJS.ProcessEnv): TemporalConnection {
  return loadTemporalConnection(
    { TEMPORAL_CONFIG_FILE: '/dev/null', ...env },
    { address: 'unused:1', namespace: testStack().namespace, what: 'the test' },
  );
}

/** The UserError a failed connect becomes (client Connection or worker NativeConnection). */
async function failureOf(connect: () => Promise<unknown>, c: TemporalConnection): Promise<UserError> {
  try {
    const connected = (await connect()) as { close?: () => Promise<void>; connection?: { close(): Promise<void> } };
    await (connected.connection ?? connected).close?.();
  } catch (err) {
    return connectionFailure(err, c);
  }
  assert.fail(`connected to ${c.address} although it should have been refused`);
}

/** Runs the stackCheck workflow with this client and an in-process worker on this connection. */
async function runStackCheck(client: Client, connection: TemporalConnection) {
  const taskQueue = uniqueName('secured');
  const { worker, close } = await createRunbookWorker(
    { ...testStack().workerConfig(taskQueue), temporal: connection },
    { workflowBundle: await workflowBundle(), shutdownGraceTime: '1s' },
  );
  const running = worker.run();
  try {
    const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
      taskQueue,
      workflowId: uniqueName('secured-stack-check'),
      args: [{}],
    });
    return { workflowId: handle.workflowId, result: await handle.result() };
  } finally {
    worker.shutdown();
    await running;
    await close();
  }
}

/** `runbook doctor --json` (and the text output too when `text`) with this environment on the test stack. */
async function doctor(
  env: NodeJS.ProcessEnv,
  opts: { text?: boolean } = {},
): Promise<{ report: DoctorReport; text: string; raw: string }> {
  const base = { RUNBOOK_HOME: testStack().settings.home, TEMPORAL_CONFIG_FILE: '/dev/null', ...env };
  const json = await runbookCli(['doctor', '--json'], base, 60_000);
  const text = opts.text ? await runbookCli(['doctor'], base, 60_000) : { stdout: '', stderr: '' };
  let report: DoctorReport;
  try {
    report = JSON.parse(json.stdout) as DoctorReport;
  } catch {
    throw new Error(`runbook doctor --json exited ${json.code}: ${json.stdout}${json.stderr}`);
  }
  return {
    report,
    text: text.stdout + text.stderr,
    raw: json.stdout + json.stderr,
  };
}

/** `env` without TEMPORAL_* variables (the temporal CLI takes an empty one as a value, not as unset). */
const withoutTemporalVars = (env: NodeJS.ProcessEnv) =>
  Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TEMPORAL_')));

const temporalCheck = (report: DoctorReport, name: string) =>
  report.checks.find((c) => c.component === 'temporal' && c.check === name);

describe('secured Temporal connections (TLS, mTLS through HAProxy; API keys)', function () {
  this.timeout(180_000);
  let dir: string;
  let pki: TestPki;
  let front: TlsFront | undefined;
  let profileFile: string;

  before(async function () {
    if (testStack().externalTemporal) this.skip(); // the TLS front needs the plain dev server behind it
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-tls-'));
    pki = await makeTestPki(dir);
    front = await startTlsFront(pki, testStack().temporalAddress);
    profileFile = path.join(dir, 'temporal.toml');
    writeFileSync(
      profileFile,
      `[profile.mtls]
address = "${front.mtls}"
namespace = "${testStack().namespace}"
[profile.mtls.tls]
client_cert_path = "${pki.clientCert}"
client_key_path = "${pki.clientKey}"
server_ca_cert_path = "${pki.ca}"

[profile.tls-only]
address = "${front.tls}"
namespace = "${testStack().namespace}"
[profile.tls-only.tls]
server_ca_cert_path = "${pki.ca}"
`,
    );
  });

  after(async () => {
    await front?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const mtlsEnv = () => ({ TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'mtls' });

  it('a client and a worker with the mTLS profile run a workflow through the TLS front; the temporal CLI reads the same profile', async () => {
    const connection = load(mtlsEnv());
    assert.equal(connection.mode, 'mtls');
    assert.equal(connection.address, front!.mtls);
    assert.match(describeConnection(connection), new RegExp(`^mTLS .* \\(from profile 'mtls' of ${profileFile}\\)`));
    const client = await connectClient(connection);
    try {
      const { workflowId, result } = await runStackCheck(client, connection);
      assert.equal(result.outcome, 'succeeded');
      const cli = await findTemporalCli();
      if (!cli) throw new Error('the Temporal CLI is missing');
      const { stdout } = await promisify(execFile)(cli.path, ['workflow', 'describe', '--workflow-id', workflowId], {
        env: { ...withoutTemporalVars(process.env), ...mtlsEnv() },
      });
      assert.match(stdout, /Status\s+COMPLETED/);
    } finally {
      await client.connection.close();
    }
  });

  it('TLS only (server authentication, from TEMPORAL_* variables): the client and worker connect', async () => {
    const connection = load({ TEMPORAL_ADDRESS: front!.tls, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca });
    assert.equal(connection.mode, 'tls');
    assert.match(describeConnection(connection), /^TLS \(server certificate checked\).*TEMPORAL_ADDRESS/);
    const client = await connectClient(connection);
    try {
      assert.equal((await runStackCheck(client, connection)).result.outcome, 'succeeded');
    } finally {
      await client.connection.close();
    }
  });

  it('without a client certificate, the mTLS port refuses client and worker: "requires a client certificate"', async () => {
    const connection = load({ TEMPORAL_ADDRESS: front!.mtls, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca });
    for (const connect of [() => connectClient(connection, 2_000), () => connectNative(connection)]) {
      const err = await failureOf(connect, connection);
      assert.match(err.message, /requires a client certificate \(mTLS\) and none was sent/);
      assert.match(err.fix ?? '', /TEMPORAL_TLS_CLIENT_CERT_PATH/);
    }
  });

  it('each broken trust is refused with its cause: wrong CA, wrong server name, expired and stranger certificates', async () => {
    const cases: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
      [
        'wrong CA',
        { TEMPORAL_ADDRESS: front!.tls, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCa },
        /issued by an unknown authority: not by the CA in .*other-ca\.pem \(wrong CA\)/,
      ],
      [
        'no CA (public roots only)',
        { TEMPORAL_ADDRESS: front!.tls, TEMPORAL_TLS: 'true' },
        /unknown authority: not by a CA this machine trusts/,
      ],
      [
        'wrong server name',
        {
          TEMPORAL_ADDRESS: front!.tls,
          TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca,
          TEMPORAL_TLS_SERVER_NAME: 'temporal.example',
        },
        /not valid for the name temporal\.example \(wrong server name\)/,
      ],
      [
        'expired server certificate',
        { TEMPORAL_ADDRESS: front!.expired, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca },
        /the server's certificate at .* has expired/,
      ],
      [
        'expired client certificate',
        {
          ...mtlsEnv(),
          TEMPORAL_TLS_CLIENT_CERT_PATH: pki.expiredClientCert,
          TEMPORAL_TLS_CLIENT_KEY_PATH: pki.expiredClientKey,
        },
        /refused the client certificate .*expired-client\.pem: it has expired/,
      ],
      [
        'client certificate of another CA',
        {
          ...mtlsEnv(),
          TEMPORAL_TLS_CLIENT_CERT_PATH: pki.strangerCert,
          TEMPORAL_TLS_CLIENT_KEY_PATH: pki.strangerKey,
        },
        /refused the client certificate .*stranger\.pem: it is not issued by a CA the server trusts/,
      ],
      [
        'plain to a TLS port',
        { TEMPORAL_ADDRESS: front!.tls },
        /closed the connection \(does it need TLS\?\)|speaks TLS/,
      ],
      [
        'TLS to the plain server',
        { TEMPORAL_ADDRESS: testStack().temporalAddress, TEMPORAL_TLS: 'true' },
        /does not speak TLS/,
      ],
    ];
    for (const [name, env, expected] of cases) {
      const connection = load(env);
      for (const [kind, connect] of [
        ['client', () => connectClient(connection, 2_000)],
        ['worker', () => connectNative(connection)],
      ] as const) {
        const err = await failureOf(connect, connection);
        assert.match(err.message, expected, `${name} (${kind}): ${err.message}`);
      }
    }
  });

  it('a namespace that does not exist is named, for the CLI and for a worker', async () => {
    const env = { ...mtlsEnv(), TEMPORAL_NAMESPACE: 'no-such-namespace' };
    await assert.rejects(
      withClient({ ...env, RUNBOOK_HOME: testStack().settings.home }, (client) =>
        client.workflow.start('stackCheck', { taskQueue: 'nowhere', workflowId: uniqueName('ns'), args: [{}] }),
      ),
      (err: unknown) =>
        err instanceof UserError &&
        /namespace no-such-namespace does not exist on .* \(wrong namespace\)/.test(err.message),
    );
    await assert.rejects(
      createRunbookWorker(
        { ...testStack().workerConfig(uniqueName('ns')), temporal: load(env) },
        { workflowBundle: await workflowBundle() },
      ),
      (err: unknown) => err instanceof UserError && /namespace no-such-namespace does not exist/.test(err.message),
    );
  });

  it('runbook doctor names the mode and where it came from, and each failure in words', async () => {
    const good = await doctor(mtlsEnv(), { text: true });
    assert.match(
      temporalCheck(good.report, 'connection')?.detail ?? '',
      /^mTLS \(client certificate\) to .*profile 'mtls' of/,
    );
    for (const name of ['client certificate', 'server CA', 'tls handshake', 'frontend', 'namespace']) {
      assert.equal(
        temporalCheck(good.report, name)?.ok,
        true,
        `${name}: ${JSON.stringify(temporalCheck(good.report, name))}`,
      );
    }
    assert.match(good.text, /ok +temporal +connection +mTLS \(client certificate\)/);

    const tlsOnly = await doctor({ TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'tls-only' });
    assert.match(temporalCheck(tlsOnly.report, 'connection')?.detail ?? '', /^TLS \(server certificate checked\)/);
    assert.equal(temporalCheck(tlsOnly.report, 'namespace')?.ok, true);

    const failures: Array<[NodeJS.ProcessEnv, string, RegExp]> = [
      [
        { TEMPORAL_ADDRESS: front!.mtls, TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca },
        'tls handshake',
        /requires a client certificate/,
      ],
      [
        {
          ...mtlsEnv(),
          TEMPORAL_TLS_CLIENT_CERT_PATH: pki.expiredClientCert,
          TEMPORAL_TLS_CLIENT_KEY_PATH: pki.expiredClientKey,
        },
        'client certificate',
        /expired-client\.pem expired on \d{4}-/,
      ],
      [{ ...mtlsEnv(), TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCa }, 'tls handshake', /unknown authority/],
      [{ ...mtlsEnv(), TEMPORAL_TLS_CLIENT_KEY_PATH: pki.strangerKey }, 'client certificate', /is not the key of/],
      [{ ...mtlsEnv(), TEMPORAL_NAMESPACE: 'no-such-namespace' }, 'namespace', /wrong namespace/],
      [
        { TEMPORAL_PROFILE: 'nope', TEMPORAL_CONFIG_FILE: profileFile },
        'connection',
        /has no such profile \(it has: mtls, tls-only\)/,
      ],
    ];
    for (const [i, [env, check, expected]] of failures.entries()) {
      const { report, text } = await doctor(env, { text: i === 0 });
      const found = temporalCheck(report, check);
      assert.equal(
        found?.ok,
        false,
        `${check} should fail: ${JSON.stringify(report.checks.filter((c) => c.component === 'temporal'))}`,
      );
      assert.match(found?.detail ?? '', expected);
      assert.ok(found?.fix, 'a failure says what to do');
      if (i === 0) assert.match(text, new RegExp(`FAIL temporal +${check} .*requires a client certificate`));
    }
  });

  describe('API keys (a proxy that checks them stands in for Temporal Cloud)', () => {
    const apiKey = `test-key-${Math.random().toString(36).slice(2)}-secret`;
    let proxy: GrpcHeaderProxy | undefined;

    before(async () => {
      proxy = await startGrpcHeaderProxy({
        backend: testStack().temporalAddress,
        apiKey,
        cert: pki.serverCert,
        key: pki.serverKey,
      });
    });
    after(async () => {
      await proxy?.stop();
    });

    const keyEnv = (key = apiKey) => ({
      TEMPORAL_ADDRESS: proxy!.address,
      TEMPORAL_API_KEY: key,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.ca,
    });

    it('client and worker send the key on every call (Authorization: Bearer) and run a workflow', async () => {
      const connection = load(keyEnv());
      assert.equal(connection.mode, 'api-key');
      assert.equal(describeConnection(connection).includes(apiKey), false);
      assert.equal(JSON.stringify(connection).includes(apiKey), false, 'the key is not enumerable');
      proxy!.calls.length = 0;
      const client = await connectClient(connection);
      try {
        assert.equal((await runStackCheck(client, connection)).result.outcome, 'succeeded');
      } finally {
        await client.connection.close();
      }
      const agents = new Set(proxy!.calls.map((c) => c.userAgent?.split(/[ /]/)[0]));
      assert.ok(proxy!.calls.length > 5, `calls seen: ${proxy!.calls.length}`);
      assert.ok(
        proxy!.calls.every((c) => c.authorization === `Bearer ${apiKey}`),
        'every call carried the key',
      );
      assert.ok(
        proxy!.calls.some((c) => c.path.endsWith('/PollWorkflowTaskQueue')),
        'the worker polled through it',
      );
      assert.ok(agents.size >= 2, `both the client (grpc-js) and the worker (core) called: ${[...agents].join(', ')}`);
    });

    it('a wrong key is refused in words, and neither doctor nor the worker ever print a key', async () => {
      const wrongKey = `wrong-${apiKey}`;
      const connection = load(keyEnv(wrongKey));
      await assert.rejects(
        withClient({ ...keyEnv(wrongKey), RUNBOOK_HOME: testStack().settings.home }, (client) =>
          client.workflow.start('stackCheck', { taskQueue: 'nowhere', workflowId: uniqueName('key'), args: [{}] }),
        ),
        (err: unknown) =>
          err instanceof UserError &&
          /refused the credentials \(the API key\): unauthenticated/.test(err.message) &&
          !err.message.includes(wrongKey),
      );
      const nativeErr = await failureOf(() => connectNative(connection), connection);
      assert.match(nativeErr.message, /refused the credentials \(the API key\)/);

      const good = await doctor(keyEnv(), { text: true });
      assert.match(temporalCheck(good.report, 'connection')?.detail ?? '', /^API key over TLS to .*TEMPORAL_API_KEY/);
      assert.equal(temporalCheck(good.report, 'namespace')?.ok, true);
      const bad = await doctor(keyEnv(wrongKey), { text: true });
      assert.match(temporalCheck(bad.report, 'frontend')?.detail ?? '', /refused the credentials \(the API key\)/);
      for (const output of [good.raw, good.text, bad.raw, bad.text]) {
        assert.equal(output.includes(apiKey), false, 'doctor printed the API key');
      }

      // The real worker entry point, with the key in its environment: its log names the mode, never the key.
      const stack = testStack();
      const { temporal: _t, ...config } = stack.workerConfig(uniqueName('key-worker'));
      const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, '../src/worker.ts')], {
        env: {
          ...process.env,
          ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])),
          RUNBOOK_LOG_LEVEL: 'DEBUG',
          TEMPORAL_CONFIG_FILE: '/dev/null',
          ...keyEnv(),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let log = '';
      child.stdout.on('data', (d: Buffer) => (log += d.toString()));
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        for (let i = 0; i < 600 && !log.includes('worker started') && child.exitCode === null; i++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(log, /worker started.*API key over TLS/);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      assert.equal(log.includes(apiKey), false, 'the worker logged the API key');
    });
  });
});
