import assert from 'node:assert/strict';
import {
  CUTOFF_RISE,
  cutoffNeedsReload,
  emptyState,
  haproxyRouteNames,
  renderConfig,
  routeStateSchema,
  type RoutePaths,
  type RouteState,
  type Slot,
} from '../../../src/platforms/single-host/haproxy-route-config';

const route = { service: 'shop', environment: 'prod', listenPort: 8080 };
const paths: RoutePaths = {
  names: haproxyRouteNames(route),
  config: '/srv/services.d/shop-prod.cfg',
  map: '/srv/services.d/shop-prod.map',
  state: '/srv/router/shop-prod.json',
};
const slot = (releaseId: string, port: number, percent: number, extra: Partial<Slot> = {}): Slot => ({
  releaseId,
  host: '127.0.0.1',
  port,
  percent,
  draining: false,
  addedAtMs: 0,
  baseline: null,
  ...extra,
});

/** A stable release at 90% in s1 and a canary with a cut-off of 5 at 10% in s2. */
function withCanary(): RouteState {
  const state = emptyState(route);
  state.slots[0] = slot('v1', 4001, 90, { cutoff: null });
  state.slots[1] = slot('v2', 4002, 10, { cutoff: { errorLimit: 5 } });
  return state;
}

describe('HAProxy route file: the canary cut-off', () => {
  it("renders observe layer7, error-limit and on-error mark-down on the canary's server only", () => {
    const text = renderConfig(withCanary(), paths);
    assert.match(text, /^ {2}server s1 127\.0\.0\.1:4001 weight 90$/m);
    assert.match(
      text,
      new RegExp(
        `^ {2}server s2 127\\.0\\.0\\.1:4002 weight 10 observe layer7 error-limit 5 on-error mark-down rise ${CUTOFF_RISE}$`,
        'm',
      ),
    );
    // health checks on every server: on-error acts on the check's state
    assert.match(text, /^ {2}default-server check inter 1s fall 2 rise 1$/m);
  });

  it('renders no cut-off for a draining release or a free slot', () => {
    const state = withCanary();
    state.slots[1]!.draining = true;
    const text = renderConfig(state, paths);
    assert.doesNotMatch(text, /observe/);
    assert.match(text, /^ {2}server s3 127\.0\.0\.1:1 weight 0 disabled$/m);
  });

  it('needs a reload only when a serving slot wants another cut-off than HAProxy loaded', () => {
    const state = withCanary();
    assert.equal(cutoffNeedsReload(state), true, 'nothing loaded yet');
    state.loadedCutoff = [null, 5, null, null, null, null];
    assert.equal(cutoffNeedsReload(state), false);
    state.slots[1]!.cutoff = null; // promoted to 100%: its cut-off ends
    assert.equal(cutoffNeedsReload(state), true);
    state.slots[1] = null; // a free slot keeps what it loaded until a release takes it
    assert.equal(cutoffNeedsReload(state), false);
  });

  it('reads route state files written before the cut-off (no cutoff, no loadedCutoff)', () => {
    const old = JSON.parse(JSON.stringify(withCanary())) as Record<string, unknown> & { slots: unknown[] };
    old.slots = old.slots.map((s) => (s ? { ...(s as object), cutoff: undefined } : null));
    const parsed = routeStateSchema.parse(JSON.parse(JSON.stringify(old)));
    assert.equal(parsed.loadedCutoff, undefined);
    assert.equal(parsed.slots[1]?.cutoff, undefined);
    assert.doesNotMatch(renderConfig(parsed, paths), /observe/);
  });
});
