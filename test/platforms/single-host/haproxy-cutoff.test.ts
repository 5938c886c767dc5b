import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHaproxyRouter } from '../../../src/platforms/single-host/haproxy-router';
import { haproxyRouteNames } from '../../../src/platforms/single-host/haproxy-route-config';
import { parseStatCsv } from '../../../src/platforms/single-host/haproxy-stats';
import { createHaproxyRuntime, type HaproxyRuntime } from '../../../src/platforms/single-host/haproxy-runtime';
import type { RouteSpec, TrafficRouter } from '../../../src/platforms/types';
import { haproxyPaths, reloadHaproxy } from '../../../src/platforms/single-host/haproxy-control';
import { haproxyComponent } from '../../../src/stack/haproxy';
import { freePort } from '../../../src/system/processes';
import { resolveStackSettings, type StackSettings } from '../../../src/stack/settings';
import {
  member,
  spread as spreadAt,
  startRelease,
  type FixtureRelease as Release,
} from '../../helpers/haproxy-fixture';

describe("HAProxy's cut-off of a failing canary (real HAProxy 2.6)", function () {
  this.timeout(60_000);
  const route: RouteSpec = { service: 'shop', environment: 'cutoff', listenPort: 0 };
  const names = haproxyRouteNames(route);
  const releases: Release[] = [];
  let home: string;
  let settings: StackSettings | undefined;
  let runtime: HaproxyRuntime;
  let router: TrafficRouter;
  let stable: Release;
  /** The server slot HAProxy marked down (the next canary takes it again, without a reload). */
  let faultySlot: string | undefined;

  const routeFile = () => readFileSync(path.join(haproxyPaths(home).servicesDir, `${names.name}.cfg`), 'utf8');
  const serverLine = (r: Release) =>
    routeFile().match(new RegExp(`^ {2}server s\\d 127\\.0\\.0\\.1:${r.port} .*$`, 'm'))?.[0];

  const spread = (n: number) => spreadAt(`http://127.0.0.1:${route.listenPort}/`, n);

  async function statOf(r: Release): Promise<Record<string, string>> {
    const rows = parseStatCsv(await runtime.command(`show stat ${names.backend} 4 -1`));
    const row = rows.find((s) => s.addr === `127.0.0.1:${r.port}`);
    assert.ok(row, `no server at 127.0.0.1:${r.port}`);
    return row;
  }

  before(async function () {
    this.timeout(120_000);
    home = mkdtempSync(path.join(os.tmpdir(), 'runbook-cutoff-'));
    settings = resolveStackSettings({}, { home, haproxyStatsPort: await freePort() });
    await haproxyComponent.start({ settings, log: () => {} });
    const paths = haproxyPaths(home);
    runtime = createHaproxyRuntime(paths.adminSocket);
    const stackSettings = settings;
    router = createHaproxyRouter({
      servicesDir: paths.servicesDir,
      runtime,
      reload: () => reloadHaproxy(stackSettings.home),
      stateDir: path.join(home, 'router'),
    });
    route.listenPort = await freePort();
    stable = await startRelease('rel-stable');
    releases.push(stable);
    await router.ensureRoute(route);
    // the first release serves alone: it never gets a cut-off, even when asked for one
    await router.addMember(route, member(stable), { cutoff: { errorLimit: 3 } });
    await router.setWeights(route, { [stable.id]: 100 });
  });

  after(async function () {
    this.timeout(60_000);
    if (settings) await haproxyComponent.stop({ settings, log: () => {} });
    await Promise.all(releases.map((r) => r.close()));
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('gives the cut-off to the canary only, never to the only serving release', async () => {
    assert.doesNotMatch(serverLine(stable) ?? '', /observe/);
    const canary = await startRelease('rel-canary-1');
    releases.push(canary);
    await router.addMember(route, member(canary), { cutoff: { errorLimit: 3 } });
    assert.match(serverLine(canary) ?? '', /observe layer7 error-limit 3 on-error mark-down/);
    assert.doesNotMatch(serverLine(stable) ?? '', /observe/);
    await router.setWeights(route, { [stable.id]: 50, [canary.id]: 50 });
    assert.equal(await router.cutoffState!(route, canary.id), undefined);
    assert.equal(await router.cutoffState!(route, stable.id), undefined);
    await router.setWeights(route, { [stable.id]: 100, [canary.id]: 0 });
    await router.removeMember(route, canary.id, 1_000);
  });

  it('a healthy canary is not taken out', async () => {
    const canary = await startRelease('rel-healthy');
    releases.push(canary);
    await router.addMember(route, member(canary), { cutoff: { errorLimit: 3 } });
    await router.setWeights(route, { [stable.id]: 50, [canary.id]: 50 });
    const counts = await spread(200);
    // both serve (round robin splits about evenly), and nothing failed
    assert.deepEqual(Object.keys(counts).sort(), [canary.id, stable.id].sort());
    assert.ok((counts[canary.id] ?? 0) >= 90, `the canary answered ${counts[canary.id]} of 200`);
    assert.equal(await router.cutoffState!(route, canary.id), undefined);
    assert.match((await statOf(canary)).status ?? '', /^UP/);
    await router.setWeights(route, { [stable.id]: 100, [canary.id]: 0 });
    await router.removeMember(route, canary.id, 1_000);
  });

  it('takeOut (the rate cut-off) puts a canary at weight 0 at once, and it stays out whatever split comes next', async () => {
    const canary = await startRelease('rel-rate');
    releases.push(canary);
    await router.addMember(route, member(canary), { cutoff: { errorLimit: 50 } });
    await router.setWeights(route, { [stable.id]: 50, [canary.id]: 50 });
    const first = await router.cutoffLook!(route, canary.id);
    assert.ok(first.counters, 'a canary with a cut-off has its counters looked at');
    canary.failing = true;
    const counts = await spread(20);
    // fewer than its error limit (50): HAProxy's own cut-off leaves it in
    const failed = counts['status 500'] ?? 0;
    assert.ok(failed >= 5, JSON.stringify(counts));
    const look = await router.cutoffLook!(route, canary.id);
    assert.equal(look.report, undefined);
    assert.deepEqual(
      {
        attempts: look.counters!.attempts - first.counters.attempts,
        errors: look.counters!.errors - first.counters.errors,
      },
      { attempts: failed, errors: failed },
    );
    const counters = await router.takeOut!(route, canary.id, 'the cut-off took the canary out: all failed');
    assert.equal(counters.errors5xx, failed);
    assert.equal((await statOf(canary)).weight, '0');
    assert.deepEqual(await spread(20), { [stable.id]: 20 });
    // a next step that raced the watch: the split says 50%, the canary stays out (in the file for a reload too)
    await router.setWeights(route, { [stable.id]: 50, [canary.id]: 50 });
    assert.deepEqual(await spread(20), { [stable.id]: 20 });
    assert.match(serverLine(canary) ?? '', / weight 0 /);
    const state = JSON.parse(readFileSync(path.join(home, 'router', `${names.name}.json`), 'utf8')) as {
      slots: Array<{ releaseId: string; takenOut?: { detail: string } } | null>;
    };
    assert.match(state.slots.find((x) => x?.releaseId === canary.id)?.takenOut?.detail ?? '', /all failed/);
    canary.failing = false;
    await router.setWeights(route, { [stable.id]: 100, [canary.id]: 0 });
    await router.removeMember(route, canary.id, 1_000);
  });

  it('takes a canary that starts answering 500 out after error-limit consecutive errors, by itself', async () => {
    const canary = await startRelease('rel-faulty');
    releases.push(canary);
    await router.addMember(route, member(canary), { cutoff: { errorLimit: 3 } });
    await router.setWeights(route, { [stable.id]: 50, [canary.id]: 50 });
    canary.failing = true;
    const counts = await spread(200);
    // round robin: the canary gets every other request until its third 500, then none
    assert.equal(counts['status 500'], 3);
    assert.equal(counts[stable.id], 197);
    const report = await router.cutoffState!(route, canary.id);
    assert.ok(report, 'the router does not report the cut-off');
    assert.equal(report.errorLimit, 3);
    assert.match(report.detail, /3 consecutive errors/);
    assert.equal(report.counters.errors5xx, 3);
    const down = await statOf(canary);
    assert.match(down.status ?? '', /^DOWN/);
    faultySlot = down.svname;
    // the stable release is untouched
    assert.match((await statOf(stable)).status ?? '', /^UP/);
    await router.setWeights(route, { [stable.id]: 100, [canary.id]: 0 });
    await router.removeMember(route, canary.id, 1_000);
  });

  it('gives the next canary a working slot after a cut-off, and ends its cut-off when it takes all the traffic', async () => {
    const next = await startRelease('rel-next');
    releases.push(next);
    await router.addMember(route, member(next), { cutoff: { errorLimit: 3 } });
    const row = await statOf(next);
    assert.equal(row.svname, faultySlot, 'the next canary takes the slot that was marked down');
    assert.match(row.status ?? '', /^UP/);
    await router.setWeights(route, { [stable.id]: 50, [next.id]: 50 });
    const counts = await spread(20);
    assert.deepEqual(Object.keys(counts).sort(), [next.id, stable.id].sort());
    assert.equal(await router.cutoffState!(route, next.id), undefined);
    await router.setWeights(route, { [stable.id]: 0, [next.id]: 100 });
    assert.doesNotMatch(serverLine(next) ?? '', /observe/);
    assert.equal(await router.cutoffState!(route, next.id), undefined);
    // the promoted release serves alone: errors no longer take it out
    next.failing = true;
    assert.deepEqual(await spread(10), { 'status 500': 10 });
    assert.match((await statOf(next)).status ?? '', /^UP/);
    next.failing = false;
  });
});
