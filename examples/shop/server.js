'use strict';
/*
 * The sample service the runbooks deploy: a small HTTP API over one PostgreSQL table.
 *
 * Environment:
 *   PORT          the port to listen on (127.0.0.1); required
 *   APP_VERSION   the release's version, reported by /health and the x-app-version header
 *   DATABASE_URL  PostgreSQL; optional: without it, items live in memory and /health/ready skips the db checks
 *
 * Behaviour comes from release.json in the working folder (each release folder has its own), so that a faulty
 * release is a real process with real failures:
 *   { "errorRate": 0.0, "latencyMs": 0, "failReadiness": false, "crashOnStart": false }
 *   errorRate      fraction of /api requests answered 500
 *   faultAfter     the errors start only after this many /api requests (a fault that shows under load, not in
 *                  a single smoke check); default 0
 *   latencyMs      delay added to every /api request
 *   latencyPerRps  more delay per request a second this process received over the last second (a release that is
 *                  slower under more load, as one process is when it carries most of the traffic); default 0
 *   failReadiness  /health/ready always answers 503
 *   crashOnStart   exit 1 right after starting, before listening
 */
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const SHUTDOWN_TIMEOUT_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 30000);
const CHECK_TIMEOUT_MS = 2000;
const MAX_BODY_BYTES = 64 * 1024;

const version = process.env.APP_VERSION ?? 'unknown';

function log(level, msg, fields = {}) {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, version, pid: process.pid, ...fields });
  (level === 'error' ? process.stderr : process.stdout).write(`${line}\n`);
}

/** Logs the reason and exits 1 at once (written synchronously, so the line is not lost). */
function fail(msg, fields = {}) {
  const line = JSON.stringify({
    time: new Date().toISOString(),
    level: 'error',
    msg,
    version,
    pid: process.pid,
    ...fields,
  });
  fs.writeSync(2, `${line}\n`);
  process.exit(1);
}

/** release.json from the working folder; a missing file means a healthy release. */
function readBehaviour() {
  const defaults = {
    errorRate: 0,
    faultAfter: 0,
    latencyMs: 0,
    latencyPerRps: 0,
    failReadiness: false,
    crashOnStart: false,
  };
  const file = path.join(process.cwd(), 'release.json');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return { ...defaults, file: null };
    fail('cannot read release.json', { file, error: err.message });
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    fail('release.json is not valid JSON', { file, error: err.message });
  }
  const behaviour = { ...defaults, ...parsed, file };
  const problems = [];
  if (typeof behaviour.errorRate !== 'number' || behaviour.errorRate < 0 || behaviour.errorRate > 1) {
    problems.push('errorRate must be a number 0..1');
  }
  if (typeof behaviour.latencyMs !== 'number' || behaviour.latencyMs < 0) problems.push('latencyMs must be >= 0');
  if (typeof behaviour.latencyPerRps !== 'number' || behaviour.latencyPerRps < 0)
    problems.push('latencyPerRps must be >= 0');
  if (!Number.isInteger(behaviour.faultAfter) || behaviour.faultAfter < 0)
    problems.push('faultAfter must be an integer >= 0');
  if (typeof behaviour.failReadiness !== 'boolean') problems.push('failReadiness must be true or false');
  if (typeof behaviour.crashOnStart !== 'boolean') problems.push('crashOnStart must be true or false');
  const unknown = Object.keys(parsed).filter((k) => !(k in defaults));
  if (unknown.length > 0) problems.push(`unknown keys: ${unknown.join(', ')}`);
  if (problems.length > 0) fail('invalid release.json', { file, problems });
  return behaviour;
}

/** Items in PostgreSQL, or in memory when there is no DATABASE_URL. */
function createStore() {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const items = [];
    let nextId = 1;
    return {
      kind: 'memory',
      async checks() {
        return [{ name: 'database', status: 'skipped', detail: 'DATABASE_URL is not set' }];
      },
      async list() {
        return items;
      },
      async add(name, priceCents) {
        const item = { id: nextId++, name, createdAt: new Date().toISOString() };
        if (priceCents !== undefined) item.priceCents = priceCents;
        items.push(item);
        return item;
      },
      async close() {},
    };
  }
  const pg = require('pg');
  const pool = new pg.Pool({
    connectionString: url,
    max: 5,
    connectionTimeoutMillis: CHECK_TIMEOUT_MS,
    query_timeout: CHECK_TIMEOUT_MS,
  });
  // An idle client's broken connection is replaced on the next query; readiness reports the outage meanwhile.
  pool.on('error', (err) => log('warn', 'idle database connection failed', { error: err.message }));
  const toItem = (row) => ({
    id: row.id,
    name: row.name,
    createdAt: row.created_at instanceof Date ? row.created_at.toISOString() : row.created_at,
    ...(row.price_cents !== undefined ? { priceCents: row.price_cents } : {}),
  });
  async function check(name, sql) {
    try {
      await pool.query(sql);
      return { name, status: 'ok' };
    } catch (err) {
      return { name, status: 'failed', detail: err.message };
    }
  }
  return {
    kind: 'postgres',
    async checks() {
      const database = await check('database', 'SELECT 1');
      if (database.status !== 'ok') return [database, { name: 'schema', status: 'skipped', detail: 'no database' }];
      return [database, await check('schema', 'SELECT 1 FROM items LIMIT 1')];
    },
    async list() {
      // the newest 100: a page, as a real API serves it, whatever the size of the table
      const { rows } = await pool.query(
        'SELECT * FROM (SELECT * FROM items ORDER BY id DESC LIMIT 100) newest ORDER BY id',
      );
      return rows.map(toItem);
    },
    async add(name, priceCents) {
      const { rows } =
        priceCents === undefined
          ? await pool.query('INSERT INTO items (name) VALUES ($1) RETURNING *', [name])
          : await pool.query('INSERT INTO items (name, price_cents) VALUES ($1, $2) RETURNING *', [name, priceCents]);
      return toItem(rows[0]);
    },
    close: () => pool.end(),
  };
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error(`body larger than ${MAX_BODY_BYTES} bytes`), { status: 413 }));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      try {
        resolve(chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('body is not valid JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function createHandler(behaviour, store) {
  const routes = {
    'GET /health': async () => [200, { status: 'ok', version }],
    'GET /health/ready': async () => {
      const checks = await store.checks();
      if (behaviour.failReadiness) {
        checks.push({ name: 'release', status: 'failed', detail: 'release.json sets failReadiness' });
      }
      const failed = checks.filter((c) => c.status === 'failed');
      return failed.length === 0
        ? [200, { ready: true, status: 'ok', version, checks }]
        : [503, { ready: false, status: 'failed', version, checks, failed: failed.map((c) => c.name) }];
    },
    'GET /api/items': async () => [200, { items: await store.list() }],
    'POST /api/items': async (req) => {
      const body = await readJson(req);
      const name = typeof body.name === 'string' ? body.name.trim() : '';
      if (name === '') return [400, { error: 'name must be a non-empty string' }];
      if (body.priceCents !== undefined && !Number.isInteger(body.priceCents)) {
        return [400, { error: 'priceCents must be a whole number' }];
      }
      return [201, { item: await store.add(name, body.priceCents) }];
    },
  };
  let apiRequests = 0;
  /** When the /api requests of the last second arrived (for latencyPerRps). */
  const recent = [];
  const delayOf = () => {
    if (behaviour.latencyPerRps <= 0) return behaviour.latencyMs;
    const now = Date.now();
    recent.push(now);
    while (recent.length > 0 && recent[0] <= now - 1000) recent.shift();
    return behaviour.latencyMs + behaviour.latencyPerRps * recent.length;
  };
  return async (req, res) => {
    res.setHeader('x-app-version', version);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[`${req.method} ${url.pathname}`];
    try {
      if (!route) {
        const known = Object.keys(routes).some((r) => r.endsWith(` ${url.pathname}`));
        return send(res, known ? 405 : 404, { error: known ? 'method not allowed' : 'not found' });
      }
      if (url.pathname.startsWith('/api/')) {
        const delayMs = delayOf();
        if (delayMs > 0) await sleep(delayMs);
        apiRequests++;
        if (apiRequests > behaviour.faultAfter && Math.random() < behaviour.errorRate) {
          return send(res, 500, { error: 'injected failure (release.json errorRate)', version });
        }
      }
      const [status, body] = await route(req);
      send(res, status, body);
    } catch (err) {
      if (!err.status) log('error', 'request failed', { method: req.method, path: url.pathname, error: err.message });
      if (!res.headersSent) send(res, err.status ?? 500, { error: err.message });
    }
  };
}

function main() {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    fail('PORT must be set to a TCP port', { PORT: process.env.PORT });
  const behaviour = readBehaviour();
  if (behaviour.crashOnStart) fail('crashing on start (release.json sets crashOnStart)', { port });

  const store = createStore();
  const handle = createHandler(behaviour, store);
  let stopping = false;
  const server = http.createServer((req, res) => {
    // While draining, answer what was already sent on a kept-alive connection, then close it.
    if (stopping) res.setHeader('connection', 'close');
    handle(req, res).finally(() => {
      if (stopping) server.closeIdleConnections();
    });
  });
  server.keepAliveTimeout = 5000;

  server.on('error', (err) => fail('cannot listen', { port, error: err.message }));
  server.listen(port, '127.0.0.1', () => {
    log('info', 'started', {
      port,
      storage: store.kind,
      cwd: process.cwd(),
      behaviour: {
        errorRate: behaviour.errorRate,
        latencyMs: behaviour.latencyMs,
        failReadiness: behaviour.failReadiness,
      },
    });
  });

  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    const timer = setTimeout(
      () => fail('in-flight requests did not finish in time', { signal, timeoutMs: SHUTDOWN_TIMEOUT_MS }),
      SHUTDOWN_TIMEOUT_MS,
    );
    timer.unref();
    // close() stops accepting and resolves once every open request has been answered and its connection closed.
    server.close(async () => {
      try {
        await store.close();
      } catch (err) {
        log('warn', 'closing the database pool failed', { error: err.message });
      }
      log('info', 'stopped', { signal, port, drainedMs: Date.now() - started });
      // Exit once the log line is flushed (the empty write's callback runs after the line's).
      process.stdout.write('', () => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
