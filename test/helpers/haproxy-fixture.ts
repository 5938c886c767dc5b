import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A release stand-in for the HAProxy router tests: answers with its id after `delayMs` (or `?sleep=<ms>`); while
 * `failing`, answers 500 (on `failPath` only, when it is set). Its /health always answers 200.
 */
export interface FixtureRelease {
  id: string;
  port: number;
  delayMs: number;
  failing: boolean;
  close(): Promise<void>;
}

export async function startRelease(
  id: string,
  opts: { delayMs?: number; failing?: boolean; failPath?: string } = {},
): Promise<FixtureRelease> {
  const release = { id, port: 0, delayMs: opts.delayMs ?? 0, failing: opts.failing ?? false };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://release');
    if (url.pathname === '/health') return void res.end('ok');
    const delay = Number(url.searchParams.get('sleep') ?? release.delayMs);
    setTimeout(() => {
      const fails = release.failing && (opts.failPath === undefined || url.pathname === opts.failPath);
      res.statusCode = fails ? 500 : 200;
      res.end(id);
    }, delay);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  release.port = (server.address() as AddressInfo).port;
  return Object.assign(release, {
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

export const member = (r: FixtureRelease) => ({ releaseId: r.id, host: '127.0.0.1', port: r.port });

/** One GET on a new connection (no keep-alive), so that it reaches the HAProxy process that listens now. */
export function getOnce(url: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

/**
 * Sends `n` sequential requests, each on a new connection, and counts the answers by release id (or by status when
 * not 200). A new connection each: after a reload, a kept-alive one gets one more answer from the old process (with
 * the split it had), which is right for a client but not what these tests measure.
 */
export async function spread(url: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await getOnce(url);
    const key = res.status === 200 ? res.body : `status ${res.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
