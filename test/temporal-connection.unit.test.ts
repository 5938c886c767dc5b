import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { ServiceError, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, NamespaceNotFoundError, RetryState } from '@temporalio/common';
import { loadClientConfigProfile } from '@temporalio/envconfig';
import { UserError } from '../src/errors';
import {
  clientConnectionOptions,
  defaultConfigFile,
  describeConnection,
  loadTemporalConnection,
  nativeConnectionOptions,
} from '../src/temporal-connection';
import { explainCallError, explainError } from '../src/temporal-diagnosis';

const defaults = { address: '127.0.0.1:7233', namespace: 'default', what: 'the embedded stack (stack.json)' };

describe('Temporal connection settings (envconfig profiles and TEMPORAL_* variables)', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-conn-unit-'));
    file = path.join(dir, 'temporal.toml');
    writeFileSync(path.join(dir, 'cert.pem'), 'CERT');
    writeFileSync(path.join(dir, 'key.pem'), 'KEY');
    writeFileSync(path.join(dir, 'ca.pem'), 'CA');
    writeFileSync(
      file,
      `[profile.default]
address = "temporal.internal:7233"
namespace = "runbooks"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod.acct"
api_key = "profile-key"

[profile.mtls]
address = "temporal.corp:7233"
[profile.mtls.tls]
client_cert_path = "${dir}/cert.pem"
client_key_path = "${dir}/key.pem"
server_ca_cert_path = "${dir}/ca.pem"
server_name = "temporal.corp"
`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('nothing configured: the embedded stack, plain, as before', () => {
    const c = loadTemporalConnection({ HOME: path.join(dir, 'no-home') }, defaults);
    assert.equal(c.address, '127.0.0.1:7233');
    assert.equal(c.namespace, 'default');
    assert.equal(c.mode, 'plain');
    assert.equal(c.tls, false);
    assert.equal(
      describeConnection(c),
      'plain (no TLS) to 127.0.0.1:7233, namespace default (from the embedded stack (stack.json))',
    );
  });

  it('TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE still work; an empty one counts as unset', () => {
    const c = loadTemporalConnection(
      { TEMPORAL_ADDRESS: 'other:7233', TEMPORAL_NAMESPACE: 'ns', TEMPORAL_CONFIG_FILE: '/dev/null' },
      defaults,
    );
    assert.deepEqual([c.address, c.namespace, c.mode], ['other:7233', 'ns', 'plain']);
    assert.equal(
      loadTemporalConnection({ TEMPORAL_ADDRESS: '', TEMPORAL_CONFIG_FILE: '/dev/null' }, defaults).address,
      '127.0.0.1:7233',
    );
  });

  it('the default profile of the default file (XDG_CONFIG_HOME or ~/.config), as envconfig and the temporal CLI find it', () => {
    const xdg = path.join(dir, 'xdg');
    mkdirSync(path.join(xdg, 'temporalio'), { recursive: true });
    writeFileSync(path.join(xdg, 'temporalio', 'temporal.toml'), '[profile.default]\naddress = "from-xdg:7233"\n');
    assert.equal(defaultConfigFile({ XDG_CONFIG_HOME: xdg }), path.join(xdg, 'temporalio', 'temporal.toml'));
    assert.equal(defaultConfigFile({ HOME: '/home/u' }), '/home/u/.config/temporalio/temporal.toml');
    const c = loadTemporalConnection({ XDG_CONFIG_HOME: xdg }, defaults);
    assert.equal(c.address, loadClientConfigProfile({ overrideEnvVars: { XDG_CONFIG_HOME: xdg } }).address);
    assert.equal(c.address, 'from-xdg:7233');
    assert.equal(c.namespace, 'default', 'a setting the profile lacks comes from the defaults');
    assert.match(c.source, /^profile 'default' of .*xdg\/temporalio\/temporal.toml; the embedded stack/);
  });

  it('TEMPORAL_* variables win over the profile they refine', () => {
    const c = loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_NAMESPACE: 'override' }, defaults);
    assert.deepEqual([c.address, c.namespace], ['temporal.internal:7233', 'override']);
    assert.equal(c.source, `profile 'default' of ${file}; TEMPORAL_NAMESPACE`);
  });

  it('mTLS from a profile: certificates, CA and server name reach both connection kinds', () => {
    const c = loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'mtls' }, defaults);
    assert.equal(c.mode, 'mtls');
    assert.deepEqual(c.files, {
      clientCert: `${dir}/cert.pem`,
      clientKey: `${dir}/key.pem`,
      serverCa: `${dir}/ca.pem`,
    });
    for (const options of [clientConnectionOptions(c), nativeConnectionOptions(c)]) {
      const tls = options.tls as {
        clientCertPair: { crt: Uint8Array };
        serverRootCACertificate: Uint8Array;
        serverNameOverride: string;
      };
      assert.equal(Buffer.from(tls.clientCertPair.crt).toString(), 'CERT');
      assert.equal(Buffer.from(tls.serverRootCACertificate).toString(), 'CA');
      assert.equal(tls.serverNameOverride, 'temporal.corp');
    }
  });

  it('an API key turns TLS on and is passed to both connection kinds, but never printed', () => {
    const c = loadTemporalConnection({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' }, defaults);
    assert.equal(c.mode, 'api-key');
    assert.equal(clientConnectionOptions(c).apiKey, 'profile-key');
    assert.equal(nativeConnectionOptions(c).apiKey, 'profile-key');
    assert.deepEqual(clientConnectionOptions(c).tls, {});
    for (const shown of [describeConnection(c), JSON.stringify(c), inspect(c, { depth: 5 })]) {
      assert.equal(shown.includes('profile-key'), false, shown);
    }
    assert.match(describeConnection(c), /^API key over TLS to prod.tmprl.cloud:7233, namespace prod.acct/);
    const envKey = loadTemporalConnection(
      { TEMPORAL_CONFIG_FILE: '/dev/null', TEMPORAL_API_KEY: 'env-key', TEMPORAL_TLS: 'false' },
      defaults,
    );
    assert.equal(describeConnection(envKey).startsWith('API key (no TLS)'), true);
    assert.equal(nativeConnectionOptions(envKey).tls, false);
  });

  it('refuses, in words, what cannot work: a missing profile, file or certificate, half a client pair, bad TOML', () => {
    const cases: Array<[NodeJS.ProcessEnv, RegExp]> = [
      [
        { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' },
        /has no such profile \(it has: default, prod, mtls\)/,
      ],
      [{ TEMPORAL_CONFIG_FILE: path.join(dir, 'nope.toml') }, /TEMPORAL_CONFIG_FILE=.*nope.toml: no such file/],
      [
        { TEMPORAL_CONFIG_FILE: '/dev/null', TEMPORAL_TLS_CLIENT_CERT_PATH: `${dir}/cert.pem` },
        /needs both a client certificate and its key, the key is missing/,
      ],
      [
        { TEMPORAL_CONFIG_FILE: '/dev/null', TEMPORAL_TLS_SERVER_CA_CERT_PATH: `${dir}/missing-ca.pem` },
        /a TLS file of the Temporal connection does not exist: .*missing-ca.pem/,
      ],
    ];
    writeFileSync(path.join(dir, 'bad.toml'), '[profile.default\naddress = 1');
    cases.push([{ TEMPORAL_CONFIG_FILE: path.join(dir, 'bad.toml') }, /bad.toml is not a valid Temporal config file/]);
    for (const [env, expected] of cases) {
      assert.throws(
        () => loadTemporalConnection(env, defaults),
        (err: unknown) => err instanceof UserError && expected.test(err.message),
        JSON.stringify(env),
      );
    }
  });
});

describe('naming connection failures', () => {
  const c = loadTemporalConnection(
    { TEMPORAL_CONFIG_FILE: '/dev/null', TEMPORAL_ADDRESS: 'temporal.corp:7233' },
    defaults,
  );

  it("reads a call's gRPC failure, but never a workflow's failure that mentions a connection error", () => {
    const grpc = Object.assign(new Error('16 UNAUTHENTICATED: Request unauthorized.'), { code: 16 });
    assert.match(
      explainCallError(new ServiceError('Failed to start Workflow', { cause: grpc }), c)?.problem ?? '',
      /refused the credentials/,
    );
    assert.match(explainCallError(new NamespaceNotFoundError('shop'), c)?.problem ?? '', /wrong namespace/);
    const deployFailed = new WorkflowFailedError(
      'Workflow execution failed',
      ApplicationFailure.create({ message: 'health check: connect ECONNREFUSED 127.0.0.1:18300' }),
      RetryState.NON_RETRYABLE_FAILURE,
    );
    assert.equal(explainCallError(deployFailed, c), undefined);
    assert.match(
      explainError(new Error('connect ECONNREFUSED 10.0.0.1:7233'), c)?.problem ?? '',
      /nothing listens at temporal.corp:7233/,
    );
  });
});
