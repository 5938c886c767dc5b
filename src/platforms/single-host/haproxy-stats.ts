/** Reading HAProxy's runtime answers: `show servers state`, `show stat` CSV and the route's per-request log lines. */
import { MAX_LATENCY_VALUES, type LatencySample, type TrafficCounters } from '../types';
import { LOG_TAG } from './haproxy-route-config';

export interface RuntimeServer {
  addr: string;
  port: number;
  uweight: number;
  admin: number;
}

/** `show servers state <backend>`, by server name; undefined when HAProxy has no such backend. */
export function parseServersState(text: string): Map<string, RuntimeServer> | undefined {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return undefined;
  const columns = header.slice(2).trim().split(/\s+/);
  const col = (fields: string[], name: string) => fields[columns.indexOf(name)] ?? '';
  const servers = new Map<string, RuntimeServer>();
  for (const line of lines) {
    if (line.startsWith('#') || !line.includes(' ')) continue;
    const f = line.trim().split(/\s+/);
    servers.set(col(f, 'srv_name'), {
      addr: col(f, 'srv_addr'),
      port: num(col(f, 'srv_port')),
      uweight: num(col(f, 'srv_uweight')),
      admin: num(col(f, 'srv_admin_state')),
    });
  }
  return servers;
}

/** `show stat` CSV as one record per row, keyed by the header's column names. */
export function parseStatCsv(text: string): Array<Record<string, string>> {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '));
  if (!header) return [];
  const columns = splitCsv(header.slice(2));
  return lines
    .filter((l) => !l.startsWith('#'))
    .map((line) => {
      const fields = splitCsv(line);
      const row: Record<string, string> = {};
      columns.forEach((name, i) => {
        if (name) row[name] = fields[i] ?? '';
      });
      return row;
    });
}

function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

/**
 * A server's counters from its `show stat` row. A failed attempt that HAProxy retried on the same server (wretr) or
 * on another one (wredis) is counted on the server that failed, while econ/eresp only count requests whose last
 * attempt failed, so connection errors are the sum of the four: each failed attempt counts once.
 */
export function countersFromStat(row: Record<string, string>): Omit<TrafficCounters, 'atMs'> {
  const hrsp = ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other'];
  return {
    responses: hrsp.reduce((sum, k) => sum + num(row[k]), 0),
    errors5xx: num(row.hrsp_5xx),
    connectionErrors: num(row.econ) + num(row.eresp) + num(row.wretr) + num(row.wredis),
  };
}

/**
 * The p95 of one server's response times in [fromMs, toMs), from the route's ring lines
 * `rbl1 <log time ms> <backend> <server> <server port> <status> <Tr> <Ta>`.
 *
 * %Tr (connection established to the server -> its complete response headers) is used rather than %Ta (the whole
 * request): %Ta also counts the client's upload and download, queueing and connect retries, which say more about the
 * client and the network than about the release, so two releases of the same service would not compare fairly.
 * The cost: time a release spends streaming its body after the headers is not seen. Requests with no response
 * (%Tr = -1) have no latency; they are counted as errors by readCounters. A line's time is when HAProxy logged it,
 * i.e. when the response ended.
 *
 * The ring is bounded ({@link LOG_RING_BYTES}) and starts empty at every reload: when it wrapped or HAProxy reloaded
 * after `fromMs`, the p95 is computed from the lines that remain, and `samples` says how many that was.
 */
export function latencyFromLog(
  text: string,
  filter: { backend: string; server: string; port: number; fromMs: number; toMs: number; values?: boolean },
): LatencySample {
  const times: number[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f[0] !== LOG_TAG || f.length < 8) continue;
    const [, at, backend, server, port, , tr] = f;
    const atMs = Number(at);
    const trMs = Number(tr);
    if (backend !== filter.backend || server !== filter.server || Number(port) !== filter.port) continue;
    if (!(atMs >= filter.fromMs && atMs < filter.toMs) || !Number.isFinite(trMs) || trMs < 0) continue;
    times.push(trMs);
  }
  if (times.length === 0) return { p95Ms: null, samples: 0 };
  times.sort((a, b) => a - b);
  // nearest rank: the smallest value with at least 95% of the samples at or below it
  const p95Ms = times[Math.ceil(0.95 * times.length) - 1] ?? null;
  if (!filter.values) return { p95Ms, samples: times.length };
  const stride = Math.ceil(times.length / MAX_LATENCY_VALUES);
  return { p95Ms, samples: times.length, values: stride > 1 ? times.filter((_, i) => i % stride === 0) : times };
}

export function num(value: string | undefined): number {
  const n = Number(value);
  return value === undefined || value === '' || !Number.isFinite(n) ? 0 : n;
}
