import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHaproxyRouter } from '../../../src/platforms/single-host/haproxy-router';
import { haproxyRouteNames, ROUTE_SLOTS } from '../../../src/platforms/single-host/haproxy-route-config';
import { latencyFromLog, parseStatCsv } from '../../../src/platforms/single-host/haproxy-stats';
import {
  createHaproxyRuntime,
  parseShowInfo,
  type HaproxyRuntime,
} from '../../../src/platforms/single-host/haproxy-runtime';
import type { RouteSpec, TrafficRouter } from '../../../src/platforms/types';
import { haproxyPaths, reloadHaproxy } from '../../../src/platforms/single-host/haproxy-control';
import { haproxyComponent } from '../../../src/stack/haproxy';
import { freePort } from '../../../src/system/processes';
import { resolveStackSettings, type StackSettings } from '../../../src/stack/settings';
import {
  getOnce,
  member,
  spread as spreadAt,
  startRelease,
  type FixtureRelease as Release,
} from '../../helpers/haproxy-fixture';

describe('HAProxy traffic router (real HAProxy 2.6)', function () {
  this.timeout(60_000);
  const route: RouteSpec = { service: 'shop', environment: 'test', listenPort: 0 };
  const names = haproxyRouteNames(route);
  const releases: Release[] = [];
  let home: string;
  let settings: StackSettings | undefined;
  let runtime: HaproxyRuntime;
  let router: TrafficRouter;
  let reloads = 0;
  let a: Release;
  let b: Release;

  const url = (pathname: string) => `http://127.0.0.1:${route.listenPort}${pathname}`;

  const spread = (n: number, pathname = '/') => spreadAt(url(pathname), n);

  async function stats(): Promise<Record<string, Record<string, string>>> {
    const rows = parseStatCsv(await runtime.command(`show stat ${names.backend} 4 -1`));
    return Object.fromEntries(rows.map((r) => [r.svname ?? '', r]));
  }

  /** The HAProxy server slot a release sits in, from the runtime (its address). */
  async function slotOf(r: Release): Promise<string> {
    const row = Object.values(await stats()).find((s) => s.addr === `127.0.0.1:${r.port}`);
    assert.ok(row?.svname, `no server at 127.0.0.1:${r.port}`);
    return row.svname;
  }

  /** A reload that the router does not know about, as `runbook up` or another route would cause. */
  async function reloadBehindTheRoutersBack(): Promise<void> {
    const pid = async () => parseShowInfo(await runtime.command('show info')).Pid;
    const before = await pid();
    await reloadHaproxy(home);
    for (let i = 0; i < 100 && (await pid().catch(() => before)) === before; i++) await sleep(100);
    assert.notEqual(await pid(), before, 'HAProxy did not reload');
  }

  before(async function () {
    this.timeout(120_000);
    home = mkdtempSync(path.join(os.tmpdir(), 'runbook-router-'));
    settings = resolveStackSettings({}, { home, haproxyStatsPort: await freePort() });
    await haproxyComponent.start({ settings, log: () => {} });
    const paths = haproxyPaths(home);
    runtime = createHaproxyRuntime(paths.adminSocket);
    const stackSettings = settings;
    router = createHaproxyRouter({
      servicesDir: paths.servicesDir,
      runtime,
      reload: async () => {
        reloads++;
        await reloadHaproxy(stackSettings.home);
      },
      stateDir: path.join(home, 'router'),
    });
    route.listenPort = await freePort();
    a = await startRelease('rel-a');
    b = await startRelease('rel-b', { failing: true, failPath: '/fail' });
    releases.push(a, b);
  });

  after(async function () {
    this.timeout(60_000);
    if (settings) await haproxyComponent.stop({ settings, log: () => {} });
    await Promise.all(releases.map((r) => r.close()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('writes the route file on the first ensureRoute and reloads only when it changes', async () => {
    await router.ensureRoute(route);
    assert.equal(reloads, 1);
    const file = path.join(haproxyPaths(home).servicesDir, 'shop-test.cfg');
    const text = readFileSync(file, 'utf8');
    assert.match(text, new RegExp(`bind 127\\.0\\.0\\.1:${route.listenPort}\\n`));
    assert.equal(text.match(/^ {2}server s\d 127\.0\.0\.1:1 weight 0 disabled$/gm)?.length, ROUTE_SLOTS);
    await router.ensureRoute(route);
    assert.equal(reloads, 1, 'an unchanged route must not reload HAProxy');
    assert.equal((await getOnce(url('/'))).status, 503, 'no release yet');
  });

  it('adds releases at weight 0 without a reload, and adopts one added again', async () => {
    await router.addMember(route, member(a));
    await router.addMember(route, member(b));
    await router.addMember(route, member(a));
    assert.equal(reloads, 1);
    const { percent, members } = await router.getWeights(route);
    assert.deepEqual(percent, { 'rel-a': 0, 'rel-b': 0 });
    assert.deepEqual(members, [member(a), member(b)]);
    await assert.rejects(
      router.addMember(route, { ...member(a), releaseId: 'rel-x' }),
      /already serves release "rel-a"/,
    );
    await assert.rejects(router.addMember(route, { ...member(a), host: 'localhost' }), /IPv4/);
  });

  it('rejects a split that names strangers, is not whole percents, or does not sum to 100', async () => {
    await assert.rejects(router.setWeights(route, { 'rel-a': 50, 'rel-z': 50 }), /"rel-z" is not a member/);
    await assert.rejects(router.setWeights(route, { 'rel-a': 50, 'rel-b': 40 }), /must sum to 100, got 90/);
    await assert.rejects(router.setWeights(route, { 'rel-a': 50.5, 'rel-b': 49.5 }), /integer percent/);
    await assert.rejects(router.setWeights(route, { 'rel-a': 101, 'rel-b': -1 }), /integer percent/);
    assert.deepEqual((await router.getWeights(route)).percent, { 'rel-a': 0, 'rel-b': 0 });
  });

  it('splits real traffic by weight: 50/50, 90/10, then 0/100', async () => {
    await router.setWeights(route, { 'rel-a': 50, 'rel-b': 50 });
    const even = await spread(200);
    assert.ok((even['rel-a'] ?? 0) > 40 && (even['rel-b'] ?? 0) > 40, JSON.stringify(even));
    assert.equal((even['rel-a'] ?? 0) + (even['rel-b'] ?? 0), 200, JSON.stringify(even));

    await router.setWeights(route, { 'rel-a': 90, 'rel-b': 10 });
    const canary = await spread(200);
    assert.ok((canary['rel-b'] ?? 0) >= 10 && (canary['rel-b'] ?? 0) <= 30, JSON.stringify(canary));
    assert.equal((canary['rel-a'] ?? 0) + (canary['rel-b'] ?? 0), 200, JSON.stringify(canary));

    await router.setWeights(route, { 'rel-b': 100 });
    assert.deepEqual(await spread(50), { 'rel-b': 50 });
    assert.deepEqual((await router.getWeights(route)).percent, { 'rel-a': 0, 'rel-b': 100 });
    assert.equal(reloads, 1);
  });

  it('counts responses and 5xx per release', async () => {
    const before = await router.readCounters(route, 'rel-b');
    const beforeA = await router.readCounters(route, 'rel-a');
    await spread(10, '/fail');
    await spread(5, '/');
    const after = await router.readCounters(route, 'rel-b');
    assert.equal(after.responses - before.responses, 15);
    assert.equal(after.errors5xx - before.errors5xx, 10);
    assert.equal(after.connectionErrors, 0);
    assert.ok(after.atMs >= before.atMs);
    assert.equal((await router.readCounters(route, 'rel-a')).responses, beforeA.responses);
    await assert.rejects(router.readCounters(route, 'rel-z'), /"rel-z" is not a member of route shop\/test/);
  });

  it("measures a release's p95 from HAProxy's per-request log", async () => {
    await router.setWeights(route, { 'rel-a': 50, 'rel-b': 50 });
    b.delayMs = 50;
    const fromMs = Date.now();
    await spread(40);
    await sleep(100);
    const toMs = Date.now();
    b.delayMs = 0;
    const slow = await router.latency(route, 'rel-b', fromMs, toMs);
    const fast = await router.latency(route, 'rel-a', fromMs, toMs);
    assert.equal(slow.samples, 20);
    assert.ok(slow.p95Ms !== null && slow.p95Ms >= 50, JSON.stringify(slow));
    assert.equal(fast.samples, 20);
    assert.ok(fast.p95Ms !== null && fast.p95Ms < 50, JSON.stringify(fast));
    assert.deepEqual(await router.latency(route, 'rel-b', toMs, toMs + 1000), { p95Ms: null, samples: 0 });
  });

  it('puts the route in maintenance (503 + Retry-After) without a reload, and keeps it across one', async () => {
    await router.setMaintenance(route, true, 7);
    const res = await getOnce(url('/'));
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '7');
    assert.equal(reloads, 1);
    await reloadBehindTheRoutersBack();
    assert.deepEqual(await spread(3), { 'status 503': 3 });
    await router.setMaintenance(route, true, 9);
    assert.equal((await getOnce(url('/'))).headers['retry-after'], '9');
    await router.setMaintenance(route, false);
    assert.deepEqual(await spread(4), { 'rel-a': 2, 'rel-b': 2 });
  });

  it('keeps the split across a reload and re-applies drifted runtime state', async () => {
    await router.setWeights(route, { 'rel-a': 30, 'rel-b': 70 });
    await reloadBehindTheRoutersBack();
    const slotA = await slotOf(a);
    const slotB = await slotOf(b);
    let rows = await stats();
    assert.equal(rows[slotA]?.weight, '30');
    assert.equal(rows[slotB]?.weight, '70');
    const split = await spread(100);
    assert.equal(split['rel-a'], 30, JSON.stringify(split));
    assert.equal(split['rel-b'], 70, JSON.stringify(split));

    await runtime.command(`set server ${names.backend}/${slotA} weight 100`);
    await runtime.command(`set server ${names.backend}/${slotB} state maint`);
    assert.deepEqual((await router.getWeights(route)).percent, { 'rel-a': 30, 'rel-b': 70 });
    rows = await stats();
    assert.equal(rows[slotA]?.weight, '30');
    assert.equal(rows[slotB]?.weight, '70');
    assert.notEqual(rows[slotB]?.status, 'MAINT');
  });

  it('drains a release: its in-flight request completes, then it leaves the route', async () => {
    await assert.rejects(router.removeMember(route, 'rel-a', 1000), /still receives 30% of route shop\/test/);
    await router.setWeights(route, { 'rel-a': 100 });
    const slotA = await slotOf(a);
    const inFlight = getOnce(url('/?sleep=1500')).then(({ status, body }) => ({ status, body }));
    await sleep(200);
    await router.setWeights(route, { 'rel-b': 100 });
    const started = Date.now();
    const removed = router.removeMember(route, 'rel-a', 10_000);
    assert.deepEqual(await spread(10), { 'rel-b': 10 }, 'new requests go to the remaining release');
    await removed;
    assert.ok(Date.now() - started >= 1000, 'removeMember returned before the request finished');
    assert.deepEqual(await inFlight, { status: 200, body: 'rel-a' });
    assert.deepEqual(await router.getWeights(route), { percent: { 'rel-b': 100 }, members: [member(b)] });
    assert.equal((await stats())[slotA]?.status, 'MAINT');
    await router.removeMember(route, 'rel-a', 1000);
    await assert.rejects(router.latency(route, 'rel-a', 0, Date.now()), /not a member/);
  });

  it('stops waiting for a drain when aborted, and a second removeMember finishes it', async () => {
    const c = await startRelease('rel-c');
    releases.push(c);
    await router.addMember(route, member(c));
    await router.setWeights(route, { 'rel-b': 0, 'rel-c': 100 });
    const inFlight = getOnce(url('/?sleep=2000')).then(({ status, body }) => ({ status, body }));
    await sleep(200);
    await router.setWeights(route, { 'rel-b': 100, 'rel-c': 0 });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    await assert.rejects(router.removeMember(route, 'rel-c', 10_000, abort.signal), { name: 'AbortError' });
    assert.deepEqual((await router.getWeights(route)).percent, { 'rel-b': 100 }, 'a draining release is not listed');
    await router.removeMember(route, 'rel-c', 10_000);
    assert.deepEqual(await inFlight, { status: 200, body: 'rel-c' });
  });

  it('gives a release that reuses a slot its own counters', async () => {
    const d = await startRelease('rel-d');
    releases.push(d);
    await router.addMember(route, member(d));
    const slotD = await slotOf(d);
    assert.notEqual((await stats())[slotD]?.hrsp_2xx, '0', 'the slot was used by an earlier release');
    assert.deepEqual(
      { ...(await router.readCounters(route, 'rel-d')), atMs: 0 },
      { responses: 0, errors5xx: 0, connectionErrors: 0, atMs: 0 },
    );
  });

  it('fails no request when a release dies, and counts its connection errors', async () => {
    const d = releases.find((r) => r.id === 'rel-d') as Release;
    await router.setWeights(route, { 'rel-b': 50, 'rel-d': 50 });
    await d.close();
    const split = await spread(20);
    assert.deepEqual(split, { 'rel-b': 20 });
    assert.ok((await router.readCounters(route, 'rel-d')).connectionErrors > 0);
    const slotD = await slotOf(d);
    for (let i = 0; i < 50 && !(await stats())[slotD]?.status?.startsWith('DOWN'); i++) await sleep(100);
    assert.match((await stats())[slotD]?.status ?? '', /^DOWN/, 'health checks take a dead release out');
    await router.setWeights(route, { 'rel-b': 100 });
    await router.removeMember(route, 'rel-d', 1000);
  });

  it('rolls back a route file that HAProxy cannot load, and keeps serving', async function () {
    this.timeout(30_000);
    const other: RouteSpec = { service: 'shop', environment: 'busy', listenPort: b.port };
    await assert.rejects(router.ensureRoute(other), /did not load route shop\/busy .* port \d+ being in use/);
    assert.equal(existsSync(path.join(haproxyPaths(home).servicesDir, 'shop-busy.cfg')), false);
    assert.deepEqual(await spread(3), { 'rel-b': 3 });
    const free = { ...other, listenPort: await freePort() };
    await router.ensureRoute(free);
    assert.equal((await getOnce(`http://127.0.0.1:${free.listenPort}/`)).status, 503, 'loaded, with no release yet');
  });

  it('says how to start HAProxy when its runtime API does not answer', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-router-down-'));
    try {
      const socket = path.join(dir, 'admin.sock');
      const down = createHaproxyRouter({
        servicesDir: path.join(dir, 'services.d'),
        runtime: createHaproxyRuntime(socket),
        reload: async () => assert.fail('no reload without HAProxy'),
        stateDir: path.join(dir, 'state'),
      });
      await assert.rejects(down.ensureRoute(route), (err: Error) =>
        err.message.startsWith(`HAProxy runtime API at ${socket} is not answering: run \`runbook up\``),
      );
      assert.equal(existsSync(path.join(dir, 'services.d')), false, 'nothing is written');
      await assert.rejects(down.getWeights(route), /route shop\/test does not exist: call ensureRoute first/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('latencyFromLog', () => {
  const line = (at: number, server: string, tr: number, port = 5000) =>
    `rbl1 ${at} be_shop-test ${server} ${port} 200 ${tr} ${tr + 1}`;
  const filter = { backend: 'be_shop-test', server: 's1', port: 5000, fromMs: 1000, toMs: 2000 };

  it('takes the nearest-rank p95 of the server lines in [from, to)', () => {
    const lines = Array.from({ length: 100 }, (_, i) => line(1000 + i, 's1', i + 1));
    lines.push(line(999, 's1', 5000), line(2000, 's1', 5000), line(1500, 's2', 5000), line(1500, 's1', 5000, 6000));
    lines.push(line(1500, 's1', -1), 'unrelated line');
    assert.deepEqual(latencyFromLog(lines.join('\n'), filter), { p95Ms: 95, samples: 100 });
  });

  it('has no p95 without samples', () => {
    assert.deepEqual(latencyFromLog('', filter), { p95Ms: null, samples: 0 });
  });
});
