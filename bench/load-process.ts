/**
 * The load generator's own process (forked by bench/load.ts): autocannon at a fixed overall rate on one loopback URL,
 * recording every response's latency and the time, status and answering release of every failure. It runs apart from
 * the bench's in-process Temporal worker so that the two do not share an event loop.
 *
 * autocannon's rate limit gives each connection a quota per second that it spends at once when the second starts,
 * and all connections of one instance share the same second: 500 req/s would arrive as one burst of 500 each
 * second. The load is therefore split into `slices` instances started 1/slices s apart, so that requests arrive in
 * bursts of rate/slices every 1/slices s.
 *
 * Messages: in `start` (LoadOptions) then `stop`; out `started`, then `result` (LoadFigures). It exits when the
 * parent goes away, and autocannon stops by itself after `maxSeconds` in any case.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import type { LoadFailure, LoadFigures, LoadOptions } from './load';

const BUCKET_MS = 100;

type Message = { type: 'start'; options: LoadOptions } | { type: 'stop' };

const instances: autocannon.Instance[] = [];
let stopped = false;
const stopAll = () => {
  stopped = true;
  for (const i of instances) i.stop();
};

process.on('disconnect', () => {
  stopAll();
  process.exit(0);
});

process.on('message', (msg: Message) => {
  if (msg.type === 'start') void start(msg.options);
  if (msg.type === 'stop') stopAll();
});

/** Splits `total` into `parts` integers that differ by at most one. */
const split = (total: number, parts: number) =>
  Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));

async function start(options: LoadOptions): Promise<void> {
  const target = new URL(options.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    throw new Error(`the load only targets loopback, not ${target.hostname}`);
  }
  const latencies: number[] = [];
  const byStatus: Record<string, number> = {};
  const byVersion: Record<string, number> = {};
  const errorsByCode: Record<string, number> = {};
  const non2xxByRetryAfter: Record<string, number> = {};
  const failures: LoadFailure[] = [];
  let failureCount = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  const versionOf = new WeakMap<object, string>();
  const retryAfterOf = new WeakMap<object, string | undefined>();
  const perBucket = new Map<number, number>();
  const ended = () => {
    const bucket = Math.floor(Date.now() / BUCKET_MS);
    perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
  };
  const fail = (f: LoadFailure) => {
    failureCount++;
    if (failures.length < options.keepFailures) failures.push(f);
  };

  const startedAtMs = Date.now();
  const rates = split(options.rate, options.slices);
  const connections = split(options.connections, options.slices);
  const done: Array<Promise<autocannon.Result>> = [];
  for (const [i, rate] of rates.entries()) {
    if (i > 0) await sleep(1000 / options.slices);
    if (stopped) break;
    let instance: autocannon.Instance | undefined;
    done.push(
      new Promise((resolve, reject) => {
        instance = autocannon(
          {
            url: options.url,
            connections: connections[i] ?? 1,
            overallRate: rate,
            duration: options.maxSeconds,
            timeout: options.timeoutSeconds,
            setupClient(client) {
              client.on('headers', (info: { headers?: string[] }) => {
                const h = info.headers ?? [];
                let version = '?';
                let retryAfter: string | undefined;
                for (let k = 0; k + 1 < h.length; k += 2) {
                  const name = h[k]?.toLowerCase();
                  if (name === 'x-app-version') version = h[k + 1] ?? '?';
                  if (name === 'retry-after') retryAfter = h[k + 1];
                }
                versionOf.set(client, version);
                retryAfterOf.set(client, retryAfter);
              });
            },
          },
          (err, result) => (err ? reject(err) : resolve(result)),
        );
      }),
    );
    if (!instance) throw new Error('autocannon did not start');
    instances.push(instance);
    instance.on('response', (client: object, statusCode: number, _bytes: number, responseTime: number) => {
      latencies.push(responseTime);
      ended();
      byStatus[statusCode] = (byStatus[statusCode] ?? 0) + 1;
      const version = versionOf.get(client) ?? '?';
      byVersion[version] = (byVersion[version] ?? 0) + 1;
      if (statusCode < 200 || statusCode > 299) {
        non2xx++;
        const retryAfter = retryAfterOf.get(client);
        const key = `${statusCode} ${retryAfter === undefined ? 'no retry-after' : `retry-after=${retryAfter}`}`;
        non2xxByRetryAfter[key] = (non2xxByRetryAfter[key] ?? 0) + 1;
        fail({
          atMs: Date.now(),
          kind: 'non-2xx',
          status: statusCode,
          version,
          ...(retryAfter === undefined ? {} : { retryAfter }),
        });
      }
    });
    instance.on('reqError', (err: NodeJS.ErrnoException) => {
      const timeout = err.message === 'request timed out';
      ended();
      if (timeout) timeouts++;
      else errors++;
      const code = timeout ? 'TIMEOUT' : (err.code ?? err.message);
      errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      fail({ atMs: Date.now(), kind: timeout ? 'timeout' : 'error', code });
    });
  }
  process.send?.({ type: 'started', atMs: startedAtMs });

  await Promise.all(done);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies.length === 0
      ? null
      : (latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? null);
  const responses = latencies.length;
  const finishedAtMs = Date.now();
  const requests = responses + errors + timeouts;
  const figures: LoadFigures = {
    url: options.url,
    rate: options.rate,
    connections: options.connections,
    slices: instances.length,
    startedAtMs,
    finishedAtMs,
    seconds: (finishedAtMs - startedAtMs) / 1000,
    requests,
    responses,
    non2xx,
    errors,
    timeouts,
    failed: non2xx + errors + timeouts,
    achievedRate: requests / ((finishedAtMs - startedAtMs) / 1000),
    latencyMs: { p50: pct(50), p95: pct(95), p99: pct(99), max: latencies.at(-1) ?? null },
    byStatus,
    byVersion,
    errorsByCode,
    non2xxByRetryAfter,
    endedPerBucket: { bucketMs: BUCKET_MS, counts: [...perBucket.entries()] },
    failures,
    failuresKept: failures.length,
    failuresSeen: failureCount,
  };
  process.send?.({ type: 'result', figures }, () => process.exit(0));
}
