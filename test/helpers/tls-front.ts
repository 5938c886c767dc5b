import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, portOpen, waitFor } from '../../src/system/processes';
import { haproxyTool } from '../../src/stack/tools';

const run = promisify(execFile);

/** Certificates made with openssl for one test run; every path is a PEM file in `dir`. */
export interface TestPki {
  dir: string;
  ca: string;
  /** A second CA that signed nothing the server knows (wrong-CA cases). */
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate of the right CA whose validity ended yesterday. */
  expiredClientCert: string;
  expiredClientKey: string;
  /** A client certificate signed by the other CA. */
  strangerCert: string;
  strangerKey: string;
  /** A server certificate (SAN 127.0.0.1, localhost) whose validity ended yesterday. */
  expiredServerCert: string;
  expiredServerKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeout: 60_000 });
}

/** A CA, a server certificate for 127.0.0.1/localhost, client certificates, expired ones and a second CA. */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const file = (name: string) => path.join(dir, name);
  const makeCa = async (name: string) =>
    openssl(dir, [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=runbook test ${name}`,
    ]);
  const sign = async (name: string, ca: string, cn: string, days: number, extensions: string) => {
    writeFileSync(file(`${name}.ext`), extensions);
    await openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${cn}`,
    ]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      String(days),
      '-extfile',
      `${name}.ext`,
    ]);
  };
  const server = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  const client = 'extendedKeyUsage=clientAuth\n';
  await makeCa('ca');
  await makeCa('other-ca');
  await sign('server', 'ca', 'localhost', 2, server);
  await sign('expired-server', 'ca', 'localhost', -1, server);
  await sign('client', 'ca', 'runbook-worker', 2, client);
  await sign('expired-client', 'ca', 'runbook-worker', -1, client);
  await sign('stranger', 'other-ca', 'runbook-worker', 2, client);
  return {
    dir,
    ca: file('ca.pem'),
    otherCa: file('other-ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
    expiredClientCert: file('expired-client.pem'),
    expiredClientKey: file('expired-client.key'),
    strangerCert: file('stranger.pem'),
    strangerKey: file('stranger.key'),
    expiredServerCert: file('expired-server.pem'),
    expiredServerKey: file('expired-server.key'),
  };
}

/** HAProxy terminating TLS in front of a plain Temporal frontend, on three ports. */
export interface TlsFront {
  /** TLS with `verify required`: a client certificate of the test CA is needed. */
  mtls: string;
  /** TLS only (the server is authenticated, the client is not). */
  tls: string;
  /** TLS with an expired server certificate. */
  expired: string;
  stop(): Promise<void>;
}

/**
 * Starts HAProxy (in the foreground, as a child of the test) in TCP mode: gRPC over TLS is terminated here and
 * passed on to the plain dev server at `backend`.
 */
export async function startTlsFront(pki: TestPki, backend: string): Promise<TlsFront> {
  const tool = await haproxyTool();
  if (!tool) throw new Error('haproxy is not installed (runbook setup installs it)');
  const bundle = (cert: string, key: string, name: string) => {
    const out = path.join(pki.dir, name);
    writeFileSync(out, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
    return out;
  };
  const serverPem = bundle(pki.serverCert, pki.serverKey, 'server-bundle.pem');
  const expiredPem = bundle(pki.expiredServerCert, pki.expiredServerKey, 'expired-server-bundle.pem');
  const [mtls, tls, expired] = [await freePort(), await freePort(), await freePort()];
  const config = path.join(pki.dir, 'haproxy.cfg');
  writeFileSync(
    config,
    `global
  log stderr format short local0 notice
defaults
  mode tcp
  log global
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend mtls
  bind 127.0.0.1:${mtls} ssl crt ${serverPem} ca-file ${pki.ca} verify required alpn h2
  default_backend temporal
frontend tls
  bind 127.0.0.1:${tls} ssl crt ${serverPem} alpn h2
  default_backend temporal
frontend expired
  bind 127.0.0.1:${expired} ssl crt ${expiredPem} alpn h2
  default_backend temporal
backend temporal
  server dev ${backend}
`,
  );
  const child: ChildProcess = spawn(tool.path, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor('the HAProxy TLS front', async () => (await portOpen(mtls)) && (await portOpen(expired)), {
      timeoutMs: 10_000,
      ...(child.pid ? { pid: child.pid } : {}),
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return {
    mtls: `127.0.0.1:${mtls}`,
    tls: `127.0.0.1:${tls}`,
    expired: `127.0.0.1:${expired}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
