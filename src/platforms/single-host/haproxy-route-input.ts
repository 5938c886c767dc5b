/** What the HAProxy router accepts as a route and as a member, and how it names a route in messages. */
import net from 'node:net';
import type { RouteMember, RouteSpec } from '../types';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const RELEASE_ID = /^[a-z0-9-]{1,40}$/;

/** A route as messages name it: service/environment. */
export const label = (route: Pick<RouteSpec, 'service' | 'environment'>) => `${route.service}/${route.environment}`;

export function checkRoute(route: RouteSpec): void {
  for (const [key, value] of [
    ['service', route.service],
    ['environment', route.environment],
  ] as const) {
    if (!NAME.test(value)) {
      throw new Error(`route ${key} "${value}" is invalid: use letters, digits, '.', '_' and '-' (at most 63)`);
    }
  }
  if (!Number.isInteger(route.listenPort) || route.listenPort < 1 || route.listenPort > 65_535) {
    throw new Error(`route ${label(route)}: listenPort must be a TCP port, got ${route.listenPort}`);
  }
}

export function checkMember(member: RouteMember): void {
  if (!RELEASE_ID.test(member.releaseId)) {
    throw new Error(`releaseId "${member.releaseId}" is invalid: use [a-z0-9-], at most 40 characters`);
  }
  // The runtime API sets addresses, not names (names would need a resolvers section).
  if (!net.isIPv4(member.host)) throw new Error(`release "${member.releaseId}": host must be an IPv4 address`);
  if (!Number.isInteger(member.port) || member.port < 1 || member.port > 65_535) {
    throw new Error(`release "${member.releaseId}": port must be a TCP port, got ${member.port}`);
  }
}
