'use strict';
/*
 * This release's smoke check, what runbook.yaml's command smoke check runs: node scripts/smoke.js <url>
 * GETs <url>/api/items; exit 0 on a 200 whose body lists items, 1 otherwise (saying why), 2 without a URL.
 */
const url = process.argv[2];
if (!url) {
  process.stderr.write('usage: node scripts/smoke.js <url>\n');
  process.exit(2);
}

async function main() {
  const target = new URL('/api/items', url);
  const res = await fetch(target, { signal: AbortSignal.timeout(10000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${target.pathname} answered ${res.status}: ${body.slice(0, 200)}`);
  const items = JSON.parse(body).items;
  if (!Array.isArray(items)) throw new Error(`GET ${target.pathname} answered 200 without an items list`);
  process.stdout.write(`smoke: GET ${target.pathname} 200, ${items.length} items\n`);
}

main().catch((err) => {
  process.stderr.write(`smoke: ${err.message}\n`);
  process.exit(1);
});
