import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { examplesDir, shopPlan } from './deploy-fixture';

/**
 * Releases that bring their own steps, on the real stack: each test writes release folders whose `scripts/` hold a
 * migrate tool (any CLI: it exits non-zero on failure), a status command and a smoke script, all node programs that
 * append one line per run to a run log, so that a test can tell how often each ran.
 */

const PG = require.resolve('pg');
const SERVER = path.join(examplesDir, 'shop/server.js');

const MIGRATE = `'use strict';
const fs = require('node:fs');
const { Client } = require(${JSON.stringify(PG)});
const mode = process.argv[2] || 'ok';
fs.appendFileSync(process.env.RUN_LOG, 'migrate ' + mode + ' ' + process.pid + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  if (mode === 'hang') await sleep(600000);
  if (mode === 'slow') await sleep(6000);
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  await c.query('CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL, price_cents integer, created_at timestamptz DEFAULT now())');
  if (mode === 'breaking') await c.query('ALTER TABLE items ADD COLUMN IF NOT EXISTS sku text');
  await c.end();
  console.log(mode === 'ok' ? 'migrated with ' + process.env.DATABASE_URL : 'migrated');
  if (mode === 'fail') {
    console.error('boom: migration 002_orders failed');
    process.exit(3);
  }
})().catch((e) => {
  console.error(e.message);
  process.exit(2);
});
`;

const STATUS = `'use strict';
require('node:fs').appendFileSync(process.env.RUN_LOG, 'status ' + (process.argv[2] || 'ok') + '\\n');
if (process.argv[2] === 'pending') {
  console.log('pending: 002_orders');
  process.exit(1);
}
console.log('schema up to date');
`;

const INTEGRITY = `'use strict';
const { Client } = require(${JSON.stringify(PG)});
require('node:fs').appendFileSync(process.env.RUN_LOG, 'integrity ' + new URL(process.env.DATABASE_URL).pathname + '\\n');
(async () => {
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  const { rows } = await c.query('SELECT count(*)::int AS n, count(*) FILTER (WHERE price_cents < 0)::int AS bad FROM items');
  await c.end();
  console.log('items: ' + rows[0].n + ' rows, ' + rows[0].bad + ' with a negative price');
  process.exit(rows[0].bad > 0 ? 1 : 0);
})().catch((e) => {
  console.error(e.message);
  process.exit(2);
});
`;

const SMOKE = `'use strict';
require('node:fs').appendFileSync(process.env.RUN_LOG, 'smoke ' + process.argv[2] + '\\n');
fetch(process.argv[2] + '/api/items').then(
  (res) => {
    console.log('GET /api/items: ' + res.status);
    process.exit(res.status === 200 && process.argv[3] !== 'fail' ? 0 : 1);
  },
  (err) => {
    console.error(err.message);
    process.exit(1);
  },
);
`;

/** A folder of releases (`versions`) with their own scripts, readable by the release user, and its run log. */
export function ownReleases(versions: string[]): { root: string; runLog: string; runs: () => string[] } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'runbook-test-own-'));
  chmodSync(root, 0o755);
  mkdirSync(path.join(root, 'log'), { mode: 0o777 });
  chmodSync(path.join(root, 'log'), 0o777); // the release user writes the run log
  const runLog = path.join(root, 'log', 'runs.log');
  for (const v of versions) {
    const dir = path.join(root, 'releases', v, 'scripts');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeFileSync(path.join(root, 'releases', v, 'server.js'), `require(${JSON.stringify(SERVER)});\n`, {
      mode: 0o644,
    });
    writeFileSync(path.join(dir, 'migrate.js'), MIGRATE, { mode: 0o644 });
    writeFileSync(path.join(dir, 'status.js'), STATUS, { mode: 0o644 });
    writeFileSync(path.join(dir, 'smoke.js'), SMOKE, { mode: 0o644 });
    writeFileSync(path.join(dir, 'integrity.js'), INTEGRITY, { mode: 0o644 });
  }
  for (const d of [path.join(root, 'releases'), ...versions.map((v) => path.join(root, 'releases', v))])
    chmodSync(d, 0o755);
  return {
    root,
    runLog,
    runs: () => (existsSync(runLog) ? readFileSync(runLog, 'utf8').trim().split('\n').filter(Boolean) : []),
  };
}

/** The sample's plan on releases of `own`, migrated by its migrate tool (`mode`), with the status command. */
export async function commandPlan(
  own: ReturnType<typeof ownReleases>,
  opts: { mode?: string; status?: string; timeoutMs?: number; smoke?: ResolvedService['smoke'] } = {},
): Promise<ResolvedService> {
  const base = await shopPlan();
  return {
    ...base,
    release: {
      ...base.release,
      cwd: path.join(own.root, 'releases/{version}'),
      env: { ...base.release.env, RUN_LOG: own.runLog },
    },
    smoke: opts.smoke ?? [],
    database: {
      name: base.database!.name,
      migrate: {
        command: ['node', 'scripts/migrate.js', opts.mode ?? 'ok'],
        timeoutMs: opts.timeoutMs ?? 60_000,
        status: { command: ['node', 'scripts/status.js', opts.status ?? 'ok'], timeoutMs: 30_000 },
      },
    },
  };
}
