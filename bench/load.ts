import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export interface LoadOptions {
  /** A loopback URL (anything else is refused). */
  url: string;
  /** Requests per second over all connections (autocannon's overallRate). */
  rate: number;
  /** Spread over the slices (at least one each). */
  connections: number;
  /** autocannon instances started 1/slices s apart (see bench/load-process.ts). */
  slices: number;
  /** Upper bound: autocannon stops by itself after this long even if nobody calls stop(). */
  maxSeconds: number;
  timeoutSeconds: number;
  /** How many failures to keep with their time (all are counted). */
  keepFailures: number;
}

/** One failed request: a non-2xx answer (with the release that gave it), a connection error or a timeout. */
export interface LoadFailure {
  atMs: number;
  kind: 'non-2xx' | 'error' | 'timeout';
  status?: number;
  version?: string;
  /** The Retry-After header of a non-2xx answer, if it had one (HAProxy's maintenance 503 carries one). */
  retryAfter?: string;
  code?: string;
}

export interface LoadFigures {
  url: string;
  rate: number;
  connections: number;
  slices: number;
  startedAtMs: number;
  finishedAtMs: number;
  seconds: number;
  /** Requests that ended: responses + errors + timeouts (requests still in flight at stop() are not counted). */
  requests: number;
  responses: number;
  /** Responses whose status is not 2xx. */
  non2xx: number;
  /** Connection errors (refused, reset, closed) that are not timeouts. */
  errors: number;
  timeouts: number;
  /** non2xx + errors + timeouts. */
  failed: number;
  achievedRate: number;
  /** Of every response (any status), as measured by autocannon per request, without coordinated-omission correction. */
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null };
  byStatus: Record<string, number>;
  /** Responses by the x-app-version header: which release answered. */
  byVersion: Record<string, number>;
  errorsByCode: Record<string, number>;
  /** Non-2xx responses by status and Retry-After header: `503 retry-after=30`, `500 no retry-after`. */
  non2xxByRetryAfter: Record<string, number>;
  /** Requests that ended (response, error or timeout) per time bucket: [floor(epoch ms / bucketMs), count]. */
  endedPerBucket: { bucketMs: number; counts: Array<[number, number]> };
  failures: LoadFailure[];
  failuresKept: number;
  failuresSeen: number;
}

/** Requests that ended within [fromMs, toMs] (to the load's bucket resolution), and the failures among them. */
export function endedBetween(f: LoadFigures, fromMs: number, toMs: number): { requests: number; failed: number } {
  const { bucketMs, counts } = f.endedPerBucket;
  const first = Math.floor(fromMs / bucketMs);
  const last = Math.floor(toMs / bucketMs);
  return {
    requests: counts.filter(([b]) => b >= first && b <= last).reduce((n, [, c]) => n + c, 0),
    failed: f.failures.filter((x) => x.atMs >= fromMs && x.atMs <= toMs).length,
  };
}

export interface RunningLoad {
  startedAtMs: number;
  /** Stops the load and returns its figures. */
  stop(): Promise<LoadFigures>;
  /** Ends the process without waiting for figures (cleanup after an error). */
  kill(): void;
}

/**
 * Starts autocannon in a process of its own (bench/load-process.ts, run through the same tsx loader as this
 * process) and resolves once it is sending.
 */
export function startAutocannon(options: LoadOptions): Promise<RunningLoad> {
  const child: ChildProcess = fork(path.join(__dirname, 'load-process.ts'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let result: ((f: LoadFigures) => void) | undefined;
  let failed: ((err: Error) => void) | undefined;
  const figures = new Promise<LoadFigures>((resolve, reject) => {
    result = resolve;
    failed = reject;
  });
  figures.catch(() => {});
  child.on('exit', (code, signal) =>
    failed?.(new Error(`the load generator exited (${signal ?? code}) before its figures`)),
  );
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (msg: { type: 'started'; atMs: number } | { type: 'result'; figures: LoadFigures }) => {
      if (msg.type === 'result') result?.(msg.figures);
      if (msg.type === 'started') {
        resolve({
          startedAtMs: msg.atMs,
          async stop() {
            child.send({ type: 'stop' });
            return figures;
          },
          kill() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          },
        });
      }
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`the load generator exited (${signal ?? code}) before starting`)),
    );
    child.send({ type: 'start', options });
  });
}
