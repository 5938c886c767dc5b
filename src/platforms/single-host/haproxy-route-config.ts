/**
 * A route of the HAProxy router as files: its HAProxy names, its state of record (the JSON in the router's state
 * folder: which release is in which slot, weights, maintenance) and the route file and maintenance map rendered
 * from that state.
 */
import { z } from 'zod';
import type { RouteSpec } from '../types';

/** Server slots per route: a release takes a free slot at runtime, so adding one never needs a reload. */
export const ROUTE_SLOTS = 6;

/**
 * Bytes of per-request log that HAProxy keeps per route for `latency()`: about 90 000 requests (~45 bytes a line,
 * measured on 2.6.12; longer route names mean fewer). Older lines are overwritten, and every reload starts empty.
 */
export const LOG_RING_BYTES = 4 * 1024 * 1024;

/** Marks the router's own lines in the ring (and versions their layout). */
export const LOG_TAG = 'rbl1';
const DEFAULT_RETRY_AFTER_SECONDS = 30;

/** The names a route has in HAProxy, for tools that read its stats or logs. */
export interface HaproxyRouteNames {
  /** `<service>-<environment>`: the route files are `<name>.cfg` (and `<name>.map`, the maintenance map). */
  name: string;
  frontend: string;
  backend: string;
  /** The ring holding the route's per-request log lines (`show events <ring>`). */
  ring: string;
}

/** The HAProxy names of a route's frontend, backend and log ring. */
export function haproxyRouteNames(route: Pick<RouteSpec, 'service' | 'environment'>): HaproxyRouteNames {
  const name = `${route.service}-${route.environment}`;
  return { name, frontend: `fe_${name}`, backend: `be_${name}`, ring: `log_${name}` };
}

const baselineSchema = z.object({
  responses: z.number(),
  errors5xx: z.number(),
  connectionErrors: z.number(),
  workerPid: z.number().int(),
  workerStartSec: z.number(),
  /** `show stat`'s hanafail (on-error triggers) of the slot then; absent in older files. */
  analyzeFailures: z.number().optional(),
});

const slotSchema = z.object({
  releaseId: z.string(),
  host: z.string(),
  port: z.number().int(),
  percent: z.number().int().min(0).max(100),
  /** Set by removeMember: weight 0, state drain, no longer listed by getWeights. */
  draining: z.boolean(),
  addedAtMs: z.number(),
  /** The slot's HAProxy counters when the release took it, so a reused slot does not inherit its predecessor's. */
  baseline: baselineSchema.nullable(),
  /**
   * The canary's cut-off: HAProxy marks the server down after `errorLimit` consecutive errors. Set only for a release
   * that joined beside a serving one, cleared when it takes all the traffic (never on the only serving server).
   */
  cutoff: z
    .object({ errorLimit: z.number().int().min(1) })
    .nullable()
    .optional(),
  /**
   * The rate cut-off took the release out (takeOut): weight 0 whatever its percent, until it is removed, added again or
   * given all the traffic. Absent in older files.
   */
  takenOut: z.object({ atMs: z.number(), detail: z.string() }).nullable().optional(),
});

export const routeStateSchema = z.object({
  version: z.literal(1),
  route: z.object({ service: z.string(), environment: z.string(), listenPort: z.number().int() }),
  maintenance: z.object({ on: z.boolean(), retryAfterSeconds: z.number().int().min(0) }),
  slots: z.array(slotSchema.nullable()).length(ROUTE_SLOTS),
  /**
   * The cut-off (error limit, or null) of each slot as the running HAProxy loaded it: `observe` cannot change at
   * runtime, so a slot whose wanted cut-off differs needs a reload. Absent in older files: none loaded.
   */
  loadedCutoff: z.array(z.number().int().nullable()).length(ROUTE_SLOTS).optional(),
});

export type RouteState = z.infer<typeof routeStateSchema>;
export type Slot = z.infer<typeof slotSchema>;
export interface RoutePaths {
  names: HaproxyRouteNames;
  config: string;
  map: string;
  state: string;
}

export const slotName = (i: number) => `s${i + 1}`;

/** The weight HAProxy gives a slot's release: 0 while it drains or after the rate cut-off took it out. */
export const servingWeight = (slot: Slot): number => (slot.draining || slot.takenOut ? 0 : slot.percent);

/**
 * A canary that HAProxy marked down stays out for this many successful health checks (1 s apart) unless the router
 * resets it: long enough for the deploy to roll back, so that it does not come back between the two.
 */
export const CUTOFF_RISE = 30;

/** The cut-off each slot should run with: the error limit of a serving (not draining) release that has one. */
export function wantedCutoff(state: RouteState): Array<number | null> {
  return state.slots.map((s) => (s && !s.draining && s.cutoff ? s.cutoff.errorLimit : null));
}

/** True when HAProxy must reload for a serving slot's cut-off to be what the state says. */
export function cutoffNeedsReload(state: RouteState): boolean {
  const wanted = wantedCutoff(state);
  return state.slots.some((s, i) => s !== null && !s.draining && wanted[i] !== (state.loadedCutoff?.[i] ?? null));
}

export function emptyState(route: RouteSpec): RouteState {
  return {
    version: 1,
    route: { service: route.service, environment: route.environment, listenPort: route.listenPort },
    maintenance: { on: false, retryAfterSeconds: DEFAULT_RETRY_AFTER_SECONDS },
    slots: Array.from({ length: ROUTE_SLOTS }, () => null),
  };
}

export function renderMap(state: RouteState): string {
  const header = '# Maintenance of this route, written by durable-runbooks: "on <Retry-After seconds>" while on.\n';
  return state.maintenance.on ? `${header}on ${state.maintenance.retryAfterSeconds}\n` : header;
}

/**
 * The route file. Free slots are `disabled` (maintenance) at a placeholder address; used ones carry the release's
 * address and weight, so that a reload starts with the split of record.
 */
export function renderConfig(state: RouteState, p: RoutePaths): string {
  const { service, environment, listenPort } = state.route;
  const { names } = p;
  const cutoff = wantedCutoff(state);
  const servers = state.slots.map((slot, i) => {
    if (!slot) return `  server ${slotName(i)} 127.0.0.1:1 weight 0 disabled`;
    const limit = cutoff[i];
    const observe = limit ? ` observe layer7 error-limit ${limit} on-error mark-down rise ${CUTOFF_RISE}` : '';
    return `  server ${slotName(i)} ${slot.host}:${slot.port} weight ${servingWeight(slot)}${observe}`;
  });
  const inMaintenance = `str(on),map(${p.map})`;
  return `# Route ${service}/${environment}, written by durable-runbooks. Do not edit: releases and weights change at
# runtime and are rewritten here from ${p.state}.

ring ${names.ring}
  format raw
  maxlen 1024
  size ${LOG_RING_BYTES}

frontend ${names.frontend}
  mode http
  bind 127.0.0.1:${listenPort}
  log ring@${names.ring} format raw local0 info
  log-format "${LOG_TAG} %[date(0,ms)] %b %s %sp %ST %Tr %Ta"
  # maintenance is a runtime-settable map entry, so switching it needs no reload
  http-request return status 503 content-type text/plain string "${service} is in maintenance, retry later\\n" hdr Retry-After "%[${inMaintenance}]" if { ${inMaintenance} -m found }
  default_backend ${names.backend}

backend ${names.backend}
  mode http
  balance roundrobin
  option redispatch
  retries 3
  retry-on conn-failure empty-response response-timeout
  # a request that may have reached the release is replayed only when replaying it is harmless
  http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }
  option httpchk GET /health
  http-reuse safe
  default-server check inter 1s fall 2 rise 1
${servers.join('\n')}
`;
}
