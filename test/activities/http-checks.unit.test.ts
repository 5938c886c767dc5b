import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { httpCheck, releaseTarget } from '../../src/activities/http-checks';
import { selfSignedCert } from '../helpers/self-signed';

/**
 * The checks through a load balancer whose rule matches a host name (issue 13 item 5): a local HTTPS server that
 * routes like an ALB listener with a host-header rule and certificates per SNI name. The service's name gets its
 * certificate and its answer; anything else gets the listener's default certificate and default action (404).
 */
describe('httpCheck with a check host (Host header and TLS server name)', () => {
  const SHOP = 'shop.example.test';
  let dir: string;
  let tlsServer: https.Server;
  let plainServer: http.Server;
  let tlsPort: number;
  let plainPort: number;
  const seen: Array<{ servername: string | undefined; host: string | undefined }> = [];
  const savedCa = https.globalAgent.options.ca;

  /** The ALB's routing: the rule (Host: shop.example.test) forwards to the service, the default action is a 404. */
  const route = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const servername = (req.socket as tls.TLSSocket).servername;
    seen.push({ servername: typeof servername === 'string' ? servername : undefined, host: req.headers.host });
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    res.writeHead(host === SHOP ? 200 : 404, { 'content-type': 'text/plain' });
    res.end(host === SHOP ? 'shop ok' : 'default action');
  };

  const listen = async (server: http.Server | https.Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };

  before(async function () {
    this.timeout(60_000);
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-sni-'));
    const shop = await selfSignedCert(dir, 'shop', [SHOP]);
    const fallback = await selfSignedCert(dir, 'default', ['default.example.test']);
    const context = (c: { cert: string; key: string }) =>
      tls.createSecureContext({ cert: readFileSync(c.cert), key: readFileSync(c.key) });
    const shopContext = context(shop);
    tlsServer = https.createServer(
      {
        cert: readFileSync(fallback.cert),
        key: readFileSync(fallback.key),
        SNICallback: (name, cb) => cb(null, name === SHOP ? shopContext : undefined),
      },
      route,
    );
    plainServer = http.createServer(route);
    tlsPort = await listen(tlsServer);
    plainPort = await listen(plainServer);
    // The worker trusts the certificates as it would a private CA (NODE_EXTRA_CA_CERTS in production).
    https.globalAgent.options.ca = [readFileSync(shop.cert), readFileSync(fallback.cert)];
  });

  after(async () => {
    https.globalAgent.options.ca = savedCa;
    await Promise.all([tlsServer, plainServer].map((s) => new Promise((resolve) => s.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    seen.length = 0;
  });

  const health = { path: '/health', expectStatus: 200, bodyMatches: 'shop ok' };

  it('sends the check host as TLS server name and Host header through an HTTPS listener', async () => {
    const release = { host: '127.0.0.1', port: tlsPort, scheme: 'https' as const, checkHost: SHOP };
    const outcome = await httpCheck(releaseTarget(release), health, 5_000);
    assert.equal(outcome.ok, true, outcome.detail);
    assert.deepEqual(seen, [{ servername: SHOP, host: `${SHOP}:${tlsPort}` }]);
  });

  it('without a check host the HTTPS check fails at TLS and never reaches the service (before issue 13 item 5)', async () => {
    const release = { host: '127.0.0.1', port: tlsPort, scheme: 'https' as const };
    const outcome = await httpCheck(releaseTarget(release), health, 5_000);
    assert.equal(outcome.ok, false);
    // fetch (this path) does not use the test's trust of the certificates: refused as self-signed, or by name
    assert.match(outcome.detail, /^GET \/health -> (DEPTH_ZERO_SELF_SIGNED_CERT|ERR_TLS_CERT_ALTNAME_INVALID)$/);
    assert.deepEqual(seen, []);
  });

  it('refuses a certificate that is not for the check host', async () => {
    const release = { host: '127.0.0.1', port: tlsPort, scheme: 'https' as const, checkHost: 'other.example.test' };
    const outcome = await httpCheck(releaseTarget(release), health, 5_000);
    assert.equal(outcome.ok, false);
    assert.match(outcome.detail, /ERR_TLS_CERT_ALTNAME_INVALID/);
    assert.deepEqual(seen, [], 'no request was sent over a connection whose certificate was refused');
  });

  it('sends the Host header through an HTTP listener (the rule matches, not the default action)', async () => {
    const withHost = await httpCheck(
      releaseTarget({ host: '127.0.0.1', port: plainPort, scheme: 'http', checkHost: SHOP }),
      health,
      5_000,
    );
    assert.equal(withHost.ok, true, withHost.detail);
    const without = await httpCheck(releaseTarget({ host: '127.0.0.1', port: plainPort }), health, 5_000);
    assert.equal(without.ok, false);
    assert.match(without.detail, /-> 404, expected 200: default action/);
    assert.deepEqual(
      seen.map((s) => s.host),
      [`${SHOP}:${plainPort}`, `127.0.0.1:${plainPort}`],
    );
  });

  it('sends a JSON body and reports a refused connection by its code', async () => {
    const post = await httpCheck(
      releaseTarget({ host: '127.0.0.1', port: plainPort, scheme: 'http', checkHost: SHOP }),
      { method: 'POST', path: '/orders', expectStatus: 200, body: { item: 1 } },
      5_000,
    );
    assert.equal(post.ok, true, post.detail);
    const closed = await new Promise<number>((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const refused = await httpCheck(
      releaseTarget({ host: '127.0.0.1', port: closed, scheme: 'http', checkHost: SHOP }),
      health,
      5_000,
    );
    assert.equal(refused.detail, 'GET /health -> ECONNREFUSED');
  });
});
