import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startLoad } from '../src/load-generator';

/**
 * The load generator of the demo and the deploy tests, against an in-process server that drops connections the way
 * a reloading HAProxy does (a kept-alive connection closed as a request goes out on it) or the way a broken server
 * does (a new connection dropped before any response).
 */
describe('startLoad', () => {
  async function serve(handler: http.RequestListener) {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    return {
      url,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  it('sends a GET again when its reused idle connection is reset before any response, and counts it', async () => {
    // every connection answers one request, then is dropped when the next one arrives on it
    const served = new WeakSet<object>();
    const server = await serve((req, res) => {
      if (served.has(req.socket)) return void req.socket.destroy();
      served.add(req.socket);
      res.end('ok');
    });
    try {
      const load = startLoad(server.url, { rps: 50, maxSeconds: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const report = await load.stop();
      assert.ok(report.sent >= 20, JSON.stringify(report));
      assert.equal(report.failed, 0, JSON.stringify(report));
      assert.equal(report.ok, report.sent);
      assert.ok(report.retriedOnIdleReset > 0, 'the reused connections were reset and retried');
    } finally {
      await server.close();
    }
  });

  it('counts a reset of a new connection as a failure, and every 5xx', async () => {
    let n = 0;
    const server = await serve((req, res) => {
      n++;
      if (n % 2 === 0) return void req.socket.destroy();
      res.statusCode = n % 3 === 0 ? 503 : 200;
      res.setHeader('connection', 'close');
      res.end('x');
    });
    try {
      const load = startLoad(server.url, { rps: 40, maxSeconds: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const report = await load.stop();
      assert.equal(report.retriedOnIdleReset, 0, 'no connection was reused: nothing to retry');
      assert.ok((report.errors.ECONNRESET ?? 0) > 0, JSON.stringify(report));
      assert.ok((report.byStatus['503'] ?? 0) > 0, JSON.stringify(report));
      assert.equal(report.failed, (report.errors.ECONNRESET ?? 0) + (report.byStatus['503'] ?? 0));
      assert.equal(report.ok + report.failed, report.sent);
    } finally {
      await server.close();
    }
  });
});
