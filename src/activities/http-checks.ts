import http from 'node:http';
import https from 'node:https';
import { scrubSecrets } from '../shared/redact';

/** The base URL of a release's checks. */
export const releaseUrl = (r: { host: string; port: number; scheme?: string }) =>
  `${r.scheme ?? 'http'}://${r.host}:${r.port}`;

/**
 * Where a check goes: a base URL, and the Host header and TLS server name (SNI) to send instead of the URL's host,
 * for a load balancer whose rule matches a host name (aws-ecs's checkHost).
 */
export interface CheckTarget {
  url: string;
  hostHeader?: string;
}

/** A release's check target: its base URL and its check host, if it has one. */
export const releaseTarget = (r: { host: string; port: number; scheme?: string; checkHost?: string }): CheckTarget => ({
  url: releaseUrl(r),
  ...(r.checkHost ? { hostHeader: r.checkHost } : {}),
});

/** One HTTP request against a release, with a timeout; never throws for HTTP-level problems. */
export interface HttpOutcome {
  ok: boolean;
  status?: number;
  /** What went wrong, for messages: "GET /health/ready -> 503 {"ready":false,...}". */
  detail: string;
  ms: number;
}

/** The status and body of one request. */
interface Answer {
  status: number;
  body: string;
}

/**
 * One check request. With a host header the request goes through node:http(s) (fetch cannot set the TLS server
 * name): the Host header and the server name are the given host, and the certificate is verified against it.
 */
async function request(
  target: CheckTarget,
  path: string,
  init: { method: string; body?: string; headers: Record<string, string>; signal: AbortSignal },
): Promise<Answer> {
  const url = new URL(path, target.url);
  if (!target.hostHeader) {
    const res = await fetch(url, {
      method: init.method,
      ...(init.body !== undefined ? { body: init.body } : {}),
      headers: init.headers,
      signal: init.signal,
    });
    return { status: res.status, body: await res.text() };
  }
  const host = target.hostHeader;
  const secure = url.protocol === 'https:';
  return new Promise<Answer>((resolve, reject) => {
    const options: https.RequestOptions = {
      method: init.method,
      headers: {
        ...init.headers,
        host: url.port ? `${host}:${url.port}` : host,
        ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
      },
      signal: init.signal,
      ...(secure ? { servername: host } : {}),
    };
    const req = (secure ? https : http).request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // an abort names the signal's reason (TimeoutError), as fetch does
    req.on('error', (err) => reject(err.name === 'AbortError' ? (init.signal.reason as Error) : err));
    req.end(init.body);
  });
}

export async function httpCheck(
  base: string | CheckTarget,
  req: { method?: string; path: string; expectStatus: number; bodyMatches?: string; body?: unknown },
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HttpOutcome> {
  const target = typeof base === 'string' ? { url: base } : base;
  const started = Date.now();
  const method = req.method ?? 'GET';
  const what = `${method} ${req.path}`;
  try {
    const res = await request(target, req.path, {
      method,
      ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
      headers: req.body !== undefined ? { 'content-type': 'application/json' } : {},
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
    const body = res.body;
    const ms = Date.now() - started;
    if (res.status !== req.expectStatus) {
      return {
        ok: false,
        status: res.status,
        detail: `${what} -> ${res.status}, expected ${req.expectStatus}: ${excerpt(body)}`,
        ms,
      };
    }
    if (req.bodyMatches && !new RegExp(req.bodyMatches).test(body)) {
      return {
        ok: false,
        status: res.status,
        detail: `${what} -> body does not match /${req.bodyMatches}/: ${excerpt(body)}`,
        ms,
      };
    }
    return { ok: true, status: res.status, detail: `${what} -> ${res.status}`, ms };
  } catch (err) {
    // fetch puts the system error's code in its cause; node:http(s) on the error itself
    const e = err as Error & { code?: string; cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.code ?? e.message);
    return { ok: false, detail: `${what} -> ${why}`, ms: Date.now() - started };
  }
}

/**
 * The start of a response body for a message: the app's words, so scrubbed of credentials (before it is cut, so that
 * a cut never leaves half a secret unrecognised).
 */
function excerpt(body: string): string {
  const scrubbed = scrubSecrets(body.slice(0, 4_096));
  return (scrubbed.length > 200 ? `${scrubbed.slice(0, 200)}...` : scrubbed).replace(/\s+/g, ' ');
}
