import http from 'node:http';

export interface LoadReport {
  sent: number;
  ok: number;
  /** Responses with status >= 500, plus requests that got no response at all. */
  failed: number;
  byStatus: Record<string, number>;
  /** Errors without a response (connection refused/reset), by code. */
  errors: Record<string, number>;
  /**
   * Requests sent again on a new connection because the kept-alive one they went out on was reset before any byte
   * of a response (the server closed it as it sat idle: HAProxy does at a reload). Not failures: browsers, curl and
   * Go's client retry such a GET the same way (RFC 9112, 9.3.1). Counted so that they are seen.
   */
  retriedOnIdleReset: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  seconds: number;
  /** Responses by the x-app-version header (which release answered). */
  byVersion: Record<string, number>;
}

export interface Load {
  /** Figures so far. */
  snapshot(): LoadReport;
  stop(): Promise<LoadReport>;
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

/**
 * A steady, fixed-rate HTTP load on one URL (loopback only): `rps` requests a second, each on a keep-alive
 * agent, for the demo and the tests ("zero failed requests during a good deploy"). A GET whose reused idle connection
 * is reset before any response is sent again, as browsers do (at most twice; see `retriedOnIdleReset`); any other
 * error, and every 5xx, is a failure. Bounded: it stops itself after `maxSeconds`. The benchmarks use autocannon,
 * which retries nothing.
 */
export function startLoad(url: string, opts: { rps: number; maxSeconds?: number; timeoutMs?: number }): Load {
  const target = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname))
    throw new Error(`load only targets loopback, not ${target.hostname}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  const report = {
    sent: 0,
    ok: 0,
    failed: 0,
    byStatus: {} as Record<string, number>,
    errors: {} as Record<string, number>,
    byVersion: {} as Record<string, number>,
    retriedOnIdleReset: 0,
  };
  const started = Date.now();
  const inflight = new Set<Promise<void>>();
  /**
   * One GET; `retries` left for a reset of a reused idle connection before any response. A retry goes out on a new
   * connection of its own (`agent: false`), never on another idle one of the pool, which the server may be closing
   * too.
   */
  const attempt = (t0: number, retries: number, done: () => void, fresh = false) => {
    const req = http.get(target, { agent: fresh ? false : agent, timeout: opts.timeoutMs ?? 5_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        latencies.push(performance.now() - t0);
        const status = res.statusCode ?? 0;
        report.byStatus[status] = (report.byStatus[status] ?? 0) + 1;
        const version = String(res.headers['x-app-version'] ?? '?');
        report.byVersion[version] = (report.byVersion[version] ?? 0) + 1;
        if (status >= 500) report.failed++;
        else report.ok++;
        done();
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (req.reusedSocket && err.code === 'ECONNRESET' && retries > 0) {
        report.retriedOnIdleReset++;
        attempt(t0, retries - 1, done, true);
        return;
      }
      report.failed++;
      const code = err.code ?? err.message;
      report.errors[code] = (report.errors[code] ?? 0) + 1;
      done();
    });
  };
  const fire = () => {
    report.sent++;
    const p = new Promise<void>((resolve) => attempt(performance.now(), 2, resolve));
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  };
  const intervalMs = 1000 / opts.rps;
  let due = performance.now();
  const timer = setInterval(
    () => {
      const now = performance.now();
      while (due <= now) {
        fire();
        due += intervalMs;
      }
    },
    Math.max(1, Math.floor(intervalMs)),
  );
  const limit = setTimeout(() => clearInterval(timer), (opts.maxSeconds ?? 600) * 1000);
  const snapshot = (): LoadReport => {
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      ...report,
      byStatus: { ...report.byStatus },
      errors: { ...report.errors },
      byVersion: { ...report.byVersion },
      p50Ms: percentile(sorted, 50),
      p95Ms: percentile(sorted, 95),
      p99Ms: percentile(sorted, 99),
      seconds: (Date.now() - started) / 1000,
    };
  };
  return {
    snapshot,
    async stop() {
      clearInterval(timer);
      clearTimeout(limit);
      await Promise.all(inflight);
      agent.destroy();
      return snapshot();
    },
  };
}
