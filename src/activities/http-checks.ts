import { scrubSecrets } from '../shared/redact';

/** The base URL of a release's checks. */
export const releaseUrl = (r: { host: string; port: number; scheme?: string }) =>
  `${r.scheme ?? 'http'}://${r.host}:${r.port}`;

/** One HTTP request against a release, with a timeout; never throws for HTTP-level problems. */
export interface HttpOutcome {
  ok: boolean;
  status?: number;
  /** What went wrong, for messages: "GET /health/ready -> 503 {"ready":false,...}". */
  detail: string;
  ms: number;
}

export async function httpCheck(
  baseUrl: string,
  req: { method?: string; path: string; expectStatus: number; bodyMatches?: string; body?: unknown },
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HttpOutcome> {
  const started = Date.now();
  const method = req.method ?? 'GET';
  const what = `${method} ${req.path}`;
  try {
    const res = await fetch(new URL(req.path, baseUrl), {
      method,
      ...(req.body !== undefined
        ? { body: JSON.stringify(req.body), headers: { 'content-type': 'application/json' } }
        : {}),
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    });
    const body = await res.text();
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
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
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
