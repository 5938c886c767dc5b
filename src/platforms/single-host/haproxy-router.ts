/** The single-host TrafficRouter on HAProxy 2.6: routes, weights, drains and maintenance via the runtime API. */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomically } from '../../system/atomic-write';
import { ensurePrivateDir } from '../../system/private-files';
import {
  PlatformError,
  type CutoffCounters,
  type CutoffReport,
  type RouteMember,
  type RouteSpec,
  type TrafficCounters,
  type TrafficRouter,
} from '../types';
import {
  cutoffNeedsReload,
  emptyState,
  haproxyRouteNames,
  renderConfig,
  renderMap,
  routeStateSchema,
  servingWeight,
  slotName,
  ROUTE_SLOTS,
  type RoutePaths,
  type RouteState,
  type Slot,
  wantedCutoff,
} from './haproxy-route-config';
import { checkMember, checkRoute, label } from './haproxy-route-input';
import { parseShowInfo, type HaproxyRuntime } from './haproxy-runtime';
import {
  countersFromStat,
  latencyFromLog,
  num,
  parseServersState,
  parseStatCsv,
  type RuntimeServer,
} from './haproxy-stats';

const RELOAD_TIMEOUT_MS = 10_000;
const DRAIN_POLL_MS = 200;
/** `hard-stop-after` of the base configuration (src/stack/haproxy.ts): an old worker lives at most this long. */
const OLD_WORKER_GRACE_MS = 30_000;
/** srv_admin_state bits (HAProxy's SRV_ADMF_MAINT and SRV_ADMF_DRAIN masks); 0x04 only records `disabled`. */
const ADMIN_MAINT = 0x23;
const ADMIN_DRAIN = 0x18;

/** What the router needs of the running HAProxy (see haproxy-control.ts). */
export interface HaproxyRouterOptions {
  /** The folder HAProxy loads after haproxy.cfg (`haproxyPaths(home).servicesDir`); the route files go here. */
  servicesDir: string;
  /** The admin-level runtime API of the running HAProxy. */
  runtime: HaproxyRuntime;
  /** Validates and reloads HAProxy (`() => reloadHaproxy(home)`); called only for a new or changed route file. */
  reload: () => Promise<void>;
  /** Where each route's state of record is kept as JSON (which release is in which slot, weights, maintenance). */
  stateDir: string;
}

type Counts = Omit<TrafficCounters, 'atMs'>;

interface Worker {
  pid: number;
  startSec: number;
}

/** Characters that HAProxy's configuration and sample expressions take unquoted in a file path. */
const SAFE_PATH = /^[A-Za-z0-9_./+@=:-]+$/;

/**
 * A TrafficRouter on HAProxy 2.6 (the single-host platform). Each route is one file in `servicesDir` with a
 * frontend on 127.0.0.1:<listenPort>, a log ring and a backend of {@link ROUTE_SLOTS} server slots. Releases,
 * weights, drains and maintenance change through the runtime API without a reload; every change is first persisted
 * to `stateDir` and rendered into the route file (and its maintenance map), so a reload or a restart of HAProxy comes
 * back with the same split. Calls for one route are serialized within this process.
 *
 * Every method throws an Error saying "HAProxy runtime API at <socket> is not answering: run `runbook up`" when
 * HAProxy is not running (retryable), and an Error with the reason for invalid input or a route that does not
 * exist (permanent); setWeights's refusals of a split (a stranger, a percent outside 0..100, a sum other than 100)
 * are InvalidTrafficSplit PlatformErrors (permanent). Throws at once when a folder's path cannot be written into HAProxy's configuration.
 */
export function createHaproxyRouter(opts: HaproxyRouterOptions): TrafficRouter {
  const servicesDir = path.resolve(opts.servicesDir);
  const stateDir = path.resolve(opts.stateDir);
  if (!SAFE_PATH.test(servicesDir)) {
    throw new Error(`servicesDir ${servicesDir} has characters HAProxy's configuration cannot hold (spaces, quotes…)`);
  }
  const locks = new Map<string, Promise<void>>();

  const routePaths = (route: RouteSpec): RoutePaths => {
    const names = haproxyRouteNames(route);
    return {
      names,
      config: path.join(servicesDir, `${names.name}.cfg`),
      map: path.join(servicesDir, `${names.name}.map`),
      state: path.join(stateDir, `${names.name}.json`),
    };
  };

  async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    let release = () => {};
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    locks.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (locks.get(key) === tail) locks.delete(key);
    }
  }

  async function send(cmd: string, signal?: AbortSignal): Promise<string> {
    try {
      return await opts.runtime.command(cmd, signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw notAnswering(err);
    }
  }

  async function worker(signal?: AbortSignal): Promise<Worker> {
    const answer = await send('show info', signal);
    const info = parseShowInfo(answer);
    const pid = Number(info.Pid);
    const uptime = Number(info.Uptime_sec);
    if (!Number.isInteger(pid) || !Number.isFinite(uptime)) {
      throw new Error(`HAProxy answered "show info" without Pid and Uptime_sec: ${answer.trim().slice(0, 200)}`);
    }
    return { pid, startSec: Math.round(Date.now() / 1000 - uptime) };
  }

  async function setServer(p: RoutePaths, slot: number, what: string): Promise<void> {
    const cmd = `set server ${p.names.backend}/${slotName(slot)} ${what}`;
    const answer = (await send(cmd)).trim();
    // `set server ... addr` reports what it changed; every other success is an empty answer.
    if (answer !== '' && !/changed from|no need to change/i.test(answer)) throw refused(p, cmd, answer);
  }

  async function readServers(p: RoutePaths): Promise<Map<string, RuntimeServer>> {
    const cmd = `show servers state ${p.names.backend}`;
    const answer = await send(cmd);
    const servers = parseServersState(answer);
    if (!servers) throw refused(p, cmd, answer);
    return servers;
  }

  async function readServerStats(p: RoutePaths, slot: number, signal?: AbortSignal): Promise<Record<string, string>> {
    const cmd = `show stat ${p.names.backend} 4 -1`;
    const answer = await send(cmd, signal);
    const row = parseStatCsv(answer).find((r) => r.svname === slotName(slot));
    if (!row) throw refused(p, cmd, answer);
    return row;
  }

  async function loadState(p: RoutePaths, route: RouteSpec): Promise<RouteState | undefined> {
    const text = await readText(p.state);
    if (text === undefined) return undefined;
    let parsed: ReturnType<typeof routeStateSchema.safeParse>;
    try {
      parsed = routeStateSchema.safeParse(JSON.parse(text));
    } catch {
      throw new Error(`${p.state} is not valid JSON: restore it or remove it and call ensureRoute`);
    }
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      throw new Error(`${p.state} is not a valid route state (${problems})`);
    }
    const state = parsed.data;
    if (state.route.service !== route.service || state.route.environment !== route.environment) {
      throw new Error(
        `route ${label(route)} would share the files of route ${label(state.route)} (${p.names.name}): ` +
          'rename the service or the environment',
      );
    }
    return state;
  }

  async function requireState(p: RoutePaths, route: RouteSpec): Promise<RouteState> {
    checkRoute(route);
    const state = await loadState(p, route);
    if (!state) throw new Error(`route ${label(route)} does not exist: call ensureRoute first`);
    return state;
  }

  /** Persists the state of record, then renders it for HAProxy's next reload (without reloading). */
  async function persist(p: RoutePaths, state: RouteState): Promise<void> {
    await ensurePrivateDir(stateDir);
    await writeFileAtomically(p.state, `${JSON.stringify(state, null, 2)}\n`);
    await render(p, state);
  }

  async function render(p: RoutePaths, state: RouteState): Promise<void> {
    await writeIfChanged(p.map, renderMap(state));
    await writeIfChanged(p.config, renderConfig(state, p));
  }

  /** Reloads and waits until a new worker answers with the route's backend (reloads are serialized). */
  async function reloadAndWait(p: RoutePaths, route: RouteSpec): Promise<void> {
    await withLock('\0reload', async () => {
      const before = await worker();
      await opts.reload();
      const deadline = Date.now() + RELOAD_TIMEOUT_MS;
      for (;;) {
        try {
          const now = await worker();
          if (!sameWorker(now, before) && parseServersState(await send(`show servers state ${p.names.backend}`))) {
            return;
          }
        } catch {
          // the runtime socket changes hands during a reload
        }
        if (Date.now() > deadline) {
          throw new Error(
            `HAProxy did not load route ${label(route)} within ${RELOAD_TIMEOUT_MS / 1000} s and kept its previous ` +
              `configuration (worker ${before.pid}); a common cause is port ${route.listenPort} being in use`,
          );
        }
        await sleep(100);
      }
    });
  }

  /**
   * Brings the runtime in line with the state of record (HAProxy restarted with an older file, a hand-made change,
   * a call that failed half-way). Capacity is added before it is taken away, so the route never has zero weight.
   */
  async function reconcile(p: RoutePaths, state: RouteState): Promise<void> {
    const servers = await readServers(p);
    const first: Array<() => Promise<void>> = [];
    const last: Array<() => Promise<void>> = [];
    for (const [i, slot] of state.slots.entries()) {
      const rt = servers.get(slotName(i));
      if (!rt) {
        throw new Error(
          `HAProxy's backend ${p.names.backend} has no server ${slotName(i)}: ${p.config} was changed by hand; ` +
            'call ensureRoute to rewrite it',
        );
      }
      if (!slot) {
        if (!(rt.admin & ADMIN_MAINT)) last.push(() => setServer(p, i, 'state maint'));
        continue;
      }
      const weight = servingWeight(slot);
      const moves: Array<() => Promise<void>> = [];
      if (rt.addr !== slot.host || rt.port !== slot.port) {
        moves.push(() => setServer(p, i, `addr ${slot.host} port ${slot.port}`));
      }
      if (rt.uweight !== weight) moves.push(() => setServer(p, i, `weight ${weight}`));
      const maint = (rt.admin & ADMIN_MAINT) !== 0;
      const drain = (rt.admin & ADMIN_DRAIN) !== 0;
      if (maint || drain !== slot.draining) {
        moves.push(() => setServer(p, i, `state ${slot.draining ? 'drain' : 'ready'}`));
      }
      const step = async () => {
        for (const move of moves) await move();
      };
      (weight >= rt.uweight && !slot.draining ? first : last).push(step);
    }
    for (const step of [...first, ...last]) await step();
    await applyMaintenance(p, state);
  }

  async function applyMaintenance(p: RoutePaths, state: RouteState): Promise<void> {
    const show = `show map ${p.map}`;
    const answer = await send(show);
    if (/unknown map/i.test(answer)) throw refused(p, show, answer);
    const values = answer
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1] === 'on')
      .map((f) => f[2]);
    const want = String(state.maintenance.retryAfterSeconds);
    let cmd: string | undefined;
    if (!state.maintenance.on) cmd = values.length > 0 ? `del map ${p.map} on` : undefined;
    else if (values.length === 0) cmd = `add map ${p.map} on ${want}`;
    // `set map` changes the value in place, so the route never leaves maintenance while Retry-After changes.
    else if (values.some((v) => v !== want)) cmd = `set map ${p.map} on ${want}`;
    if (!cmd) return;
    const result = (await send(cmd)).trim();
    if (result !== '' && !/key not found/i.test(result)) throw refused(p, cmd, result);
  }

  /** Applies new weights, raising before lowering so that the route never has zero total weight in between. */
  async function applyWeights(p: RoutePaths, changes: Array<{ slot: number; from: number; to: number }>) {
    const ordered = [...changes.filter((c) => c.to >= c.from), ...changes.filter((c) => c.to < c.from)];
    for (const c of ordered) await setServer(p, c.slot, `weight ${c.to}`);
  }

  function findSlot(state: RouteState, releaseId: string): { i: number; member: Slot } {
    const i = state.slots.findIndex((s) => s?.releaseId === releaseId);
    const member = state.slots[i];
    if (!member) throw new Error(`release "${releaseId}" is not a member of route ${label(state.route)}`);
    return { i, member };
  }

  /** A slot's counters and the worker they come from (read again when a reload happened in between). */
  async function countsOf(
    p: RoutePaths,
    slot: number,
  ): Promise<{ counts: Counts; worker: Worker; row: Record<string, string> }> {
    for (let attempt = 1; ; attempt++) {
      const before = await worker();
      const row = await readServerStats(p, slot);
      const counts = countersFromStat(row);
      const after = await worker();
      if (sameWorker(before, after) || attempt === 3) return { counts, worker: after, row };
    }
  }

  /** Reloads when a serving slot's cut-off (HAProxy's `observe`, fixed at load) differs from the loaded one. */
  async function reloadForCutoff(p: RoutePaths, route: RouteSpec, state: RouteState): Promise<void> {
    if (!cutoffNeedsReload(state)) return;
    await reloadAndWait(p, route);
    state.loadedCutoff = wantedCutoff(state);
    await persist(p, state);
  }

  /**
   * `set server health up` for a slot that HAProxy's on-error marked down (down, with failed health analyses):
   * with {@link CUTOFF_RISE} it would stay down for half a minute of passing checks.
   */
  async function resetMarkedDown(p: RoutePaths, slot: number): Promise<void> {
    const row = await readServerStats(p, slot);
    if (row.status?.startsWith('DOWN') && num(row.hanafail) > 0) await setServer(p, slot, 'health up');
  }

  /** HAProxy's own cut-off: the slot DOWN with an on-error trigger since the release took it (see cutoffLook). */
  async function markedDown(
    p: RoutePaths,
    route: RouteSpec,
    releaseId: string,
    i: number,
    member: Slot,
    errorLimit: number,
    seen: Record<string, string>,
  ): Promise<CutoffReport | undefined> {
    if (!seen.status?.startsWith('DOWN') || num(seen.hanafail) === 0) return undefined;
    const { row, worker: w } = await countsOf(p, i);
    const base = member.baseline;
    // hanafail (HAProxy's count of on-error triggers) is per server slot and starts at 0 in a new worker
    const before =
      base && sameWorker(w, { pid: base.workerPid, startSec: base.workerStartSec }) ? (base.analyzeFailures ?? 0) : 0;
    if (!row.status?.startsWith('DOWN') || num(row.hanafail) <= before) return undefined;
    const counters = await router.readCounters(route, releaseId);
    return {
      atMs: counters.atMs,
      errorLimit,
      detail: `HAProxy took the canary out after ${errorLimit} consecutive errors`,
      counters,
    };
  }

  const router: TrafficRouter = {
    async ensureRoute(route) {
      checkRoute(route);
      const p = routePaths(route);
      await withLock(p.names.name, async () => {
        await worker(); // fails before any file changes when HAProxy is not running
        const state = (await loadState(p, route)) ?? emptyState(route);
        state.route.listenPort = route.listenPort;
        await ensurePrivateDir(servicesDir);
        await writeIfChanged(p.map, renderMap(state));
        const text = renderConfig(state, p);
        const previous = await readText(p.config);
        // An unchanged file that HAProxy does not run (an earlier reload failed) is loaded again.
        const loaded = parseServersState(await send(`show servers state ${p.names.backend}`)) !== undefined;
        if (previous !== text || !loaded) {
          await writeFileAtomically(p.config, text);
          try {
            await reloadAndWait(p, route);
            state.loadedCutoff = wantedCutoff(state);
          } catch (err) {
            // A file HAProxy cannot load would fail every later reload, whichever route asks for it.
            if (previous === undefined || !loaded) {
              await rm(p.config, { force: true });
              await rm(p.map, { force: true });
            } else await writeFileAtomically(p.config, previous);
            throw err;
          }
        }
        await persist(p, state);
        await reconcile(p, state);
      });
    },

    async addMember(route, member, options) {
      const p = routePaths(route);
      checkMember(member);
      const limit = options?.cutoff?.errorLimit;
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1_000)) {
        throw new Error(
          `release "${member.releaseId}": cutoff.errorLimit must be an integer from 1 to 1000, got ${limit}`,
        );
      }
      await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        const taken = state.slots.find(
          (s) => s && s.releaseId !== member.releaseId && s.host === member.host && s.port === member.port,
        );
        if (taken) {
          throw new Error(
            `${member.host}:${member.port} already serves release "${taken.releaseId}" of route ${label(route)}`,
          );
        }
        let i = state.slots.findIndex((s) => s?.releaseId === member.releaseId);
        const existing = i >= 0 ? state.slots[i] : undefined;
        // The cut-off only while another release serves: never mark down the only serving server.
        const besideServing = state.slots.some(
          (s) => s && s.releaseId !== member.releaseId && !s.draining && s.percent > 0,
        );
        const cutoff = limit !== undefined && besideServing ? { errorLimit: limit } : null;
        let newcomer = false;
        if (existing) {
          // Same release at a new address (its process was restarted): move it, keeping its weight and counters.
          existing.host = member.host;
          existing.port = member.port;
          existing.draining = false;
          existing.takenOut = null;
          if (existing.percent === 0) existing.cutoff = cutoff;
        } else {
          newcomer = true;
          // a free slot HAProxy already runs with the wanted cut-off (or none) needs no reload
          const free = state.slots.flatMap((s, j) => (s === null ? [j] : []));
          const loaded = (j: number) => state.loadedCutoff?.[j] ?? null;
          i = free.find((j) => loaded(j) === (cutoff?.errorLimit ?? null)) ?? free[0] ?? -1;
          if (i < 0) {
            throw new Error(
              `route ${label(route)} has no free slot (${ROUTE_SLOTS} releases at most): remove a release first`,
            );
          }
          const { counts, worker: w, row } = await countsOf(p, i);
          state.slots[i] = {
            releaseId: member.releaseId,
            host: member.host,
            port: member.port,
            percent: 0,
            draining: false,
            addedAtMs: Date.now(),
            baseline: {
              ...counts,
              workerPid: w.pid,
              workerStartSec: w.startSec,
              analyzeFailures: num(row.hanafail),
            },
            cutoff,
          };
        }
        await persist(p, state);
        await reloadForCutoff(p, route, state);
        await reconcile(p, state);
        // A slot its previous release left marked down (a cut-off) comes back up for the new one.
        if (newcomer) await resetMarkedDown(p, i);
      });
    },

    async setWeights(route, percent) {
      const p = routePaths(route);
      await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        const active = state.slots.flatMap((s, i) => (s && !s.draining ? [{ slot: s, i }] : []));
        const where = `setWeights on route ${label(route)}`;
        for (const [releaseId, value] of Object.entries(percent)) {
          const found = state.slots.find((s) => s?.releaseId === releaseId);
          if (!found) {
            const members = active.map((a) => a.slot.releaseId).join(', ') || 'none';
            throw invalidSplit(`${where}: "${releaseId}" is not a member (members: ${members})`);
          }
          if (found.draining) throw new Error(`${where}: "${releaseId}" is being removed`);
          if (!Number.isInteger(value) || value < 0 || value > 100) {
            throw invalidSplit(`${where}: "${releaseId}" must be an integer percent from 0 to 100, got ${value}`);
          }
        }
        const sum = Object.values(percent).reduce((a, b) => a + b, 0);
        if (active.length > 0 && sum !== 100) {
          const split = Object.entries(percent)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ');
          throw invalidSplit(`${where}: the percentages must sum to 100, got ${sum} (${split || 'nothing given'})`);
        }
        const from = active.map(({ slot }) => servingWeight(slot));
        for (const { slot } of active) {
          slot.percent = percent[slot.releaseId] ?? 0;
          // the only serving release is never marked down: its cut-off ends when it takes all the traffic
          if (slot.percent === 100) {
            slot.cutoff = null;
            slot.takenOut = null;
          }
        }
        // a release the rate cut-off took out stays at weight 0 whatever the split says (a step that raced the watch)
        const changes = active.map(({ slot, i }, k) => ({ slot: i, from: from[k]!, to: servingWeight(slot) }));
        await persist(p, state);
        // the reloaded HAProxy starts with the new weights (the file has them), so the reload comes first
        await reloadForCutoff(p, route, state);
        await applyWeights(p, changes);
      });
    },

    async getWeights(route) {
      const p = routePaths(route);
      return withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        await render(p, state);
        await reconcile(p, state);
        const percent: Record<string, number> = {};
        const members: RouteMember[] = [];
        for (const slot of state.slots) {
          if (!slot || slot.draining) continue;
          percent[slot.releaseId] = slot.percent;
          members.push({ releaseId: slot.releaseId, host: slot.host, port: slot.port });
        }
        return { percent, members };
      });
    },

    async removeMember(route, releaseId, drainMs, signal) {
      const p = routePaths(route);
      signal?.throwIfAborted();
      const slot = await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        const i = state.slots.findIndex((s) => s?.releaseId === releaseId);
        const member = state.slots[i];
        if (i < 0 || !member) return undefined;
        if (!member.draining) {
          const others = state.slots.filter((s) => s && !s.draining && s.releaseId !== releaseId);
          if (member.percent > 0 && others.length > 0) {
            throw new Error(
              `release "${releaseId}" still receives ${member.percent}% of route ${label(route)}: ` +
                'move its traffic with setWeights before removing it',
            );
          }
          member.percent = 0;
          member.draining = true;
          await persist(p, state);
        }
        await setServer(p, i, 'weight 0');
        await setServer(p, i, 'state drain');
        return i;
      });
      if (slot === undefined) return;

      const deadline = Date.now() + drainMs;
      let current = await worker(signal);
      // A worker replaced by a reload keeps serving its requests out of our sight: give it its time.
      let blindUntil = 0;
      for (;;) {
        const stats = await readServerStats(p, slot, signal);
        const busy = num(stats.scur) + num(stats.qcur);
        const now = await worker(signal);
        if (!sameWorker(now, current)) {
          current = now;
          blindUntil = Math.min(deadline, Date.now() + OLD_WORKER_GRACE_MS);
        }
        if ((busy === 0 && Date.now() >= blindUntil) || Date.now() >= deadline) break;
        await pause(DRAIN_POLL_MS, signal);
      }

      await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        const member = state.slots[slot];
        // addMember took the release back while it drained: the later call wins.
        if (!member || member.releaseId !== releaseId || !member.draining) return;
        await setServer(p, slot, 'state maint');
        state.slots[slot] = null;
        await persist(p, state);
      });
    },

    async readCounters(route, releaseId) {
      const p = routePaths(route);
      const state = await requireState(p, route);
      const { i, member } = findSlot(state, releaseId);
      const { counts: raw, worker: w } = await countsOf(p, i);
      const atMs = Date.now();
      const base = member.baseline;
      // Counters start from zero in a new worker (reload or restart), so the baseline only applies in its own.
      if (!base || !sameWorker(w, { pid: base.workerPid, startSec: base.workerStartSec })) return { ...raw, atMs };
      return {
        responses: Math.max(0, raw.responses - base.responses),
        errors5xx: Math.max(0, raw.errors5xx - base.errors5xx),
        connectionErrors: Math.max(0, raw.connectionErrors - base.connectionErrors),
        atMs,
      };
    },

    async latency(route, releaseId, fromMs, toMs, opts) {
      const p = routePaths(route);
      const state = await requireState(p, route);
      const { i, member } = findSlot(state, releaseId);
      const cmd = `show events ${p.names.ring}`;
      const answer = await send(cmd);
      if (/no such event sink/i.test(answer)) throw refused(p, cmd, answer);
      return latencyFromLog(answer, {
        backend: p.names.backend,
        server: slotName(i),
        port: member.port,
        fromMs: Math.max(fromMs, member.addedAtMs),
        toMs,
        values: opts?.values ?? false,
      });
    },

    async cutoffState(route, releaseId): Promise<CutoffReport | undefined> {
      return (await router.cutoffLook!(route, releaseId)).report;
    },

    async cutoffLook(route, releaseId): Promise<{ report?: CutoffReport; counters?: CutoffCounters }> {
      const p = routePaths(route);
      const state = await requireState(p, route);
      const { i, member } = findSlot(state, releaseId);
      if (!member.cutoff) return {};
      // one runtime command per look while nothing happened (this is polled); the worker is asked only when it did
      const seen = await readServerStats(p, i);
      const raw = countersFromStat(seen);
      const counters = { attempts: raw.responses + raw.connectionErrors, errors: raw.errors5xx + raw.connectionErrors };
      const report = await markedDown(p, route, releaseId, i, member, member.cutoff.errorLimit, seen);
      return report ? { report, counters } : { counters };
    },

    async takeOut(route, releaseId, detail): Promise<TrafficCounters> {
      const p = routePaths(route);
      // at once, before the route's lock (a reload under it can take seconds); then recorded under it
      const now = findSlot(await requireState(p, route), releaseId);
      if (!now.member.draining) await setServer(p, now.i, 'weight 0');
      await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        const { i, member } = findSlot(state, releaseId);
        if (member.draining) return;
        member.takenOut ??= { atMs: Date.now(), detail };
        await persist(p, state);
        await setServer(p, i, 'weight 0');
      });
      return router.readCounters(route, releaseId);
    },

    async setMaintenance(route, on, retryAfterSeconds) {
      const p = routePaths(route);
      if (
        retryAfterSeconds !== undefined &&
        (!Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 0 || retryAfterSeconds > 86_400)
      ) {
        throw new Error(`retryAfterSeconds must be an integer from 0 to 86400, got ${retryAfterSeconds}`);
      }
      await withLock(p.names.name, async () => {
        const state = await requireState(p, route);
        state.maintenance = { on, retryAfterSeconds: retryAfterSeconds ?? state.maintenance.retryAfterSeconds };
        await persist(p, state);
        await applyMaintenance(p, state);
      });
    },
  };
  return router;
}

/** A split or member the router refuses: the same request can never succeed. */
const invalidSplit = (message: string) => new PlatformError(message, { type: 'InvalidTrafficSplit', permanent: true });

function sameWorker(a: Worker, b: Worker): boolean {
  return a.pid === b.pid && Math.abs(a.startSec - b.startSec) <= 2;
}

function notAnswering(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  // HaproxyRuntimeError messages start with "HAProxy runtime API at <socket>: ".
  const socket = /^HAProxy runtime API at (.+?): /.exec(message)?.[1] ?? '(its socket)';
  return new Error(`HAProxy runtime API at ${socket} is not answering: run \`runbook up\` (${message})`, {
    cause: err,
  });
}

function refused(p: RoutePaths, cmd: string, answer: string): Error {
  const text = answer.trim() || '(empty answer)';
  if (/no such (backend|server|proxy)|can't find backend|unknown map|no such event sink/i.test(text)) {
    return new Error(
      `HAProxy has no ${p.names.backend} as written in ${p.config}: call ensureRoute (HAProxy answered "${text}" to "${cmd}")`,
    );
  }
  return new Error(`HAProxy refused "${cmd}": ${text}`);
}

async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeIfChanged(file: string, text: string): Promise<void> {
  if ((await readText(file)) !== text) await writeFileAtomically(file, text);
}
