import path from 'node:path';
import { freePort } from '../src/system/processes';
import { ensureReleaseUser, resolveReleaseUser, unreachableFor } from '../src/system/release-user';
import { setMetricsUrl, startTestStack, stopTestStack } from './harness';
import { installTestRuntime } from './helpers/runtime';

/**
 * Mocha root hooks of the full run (.mocharc.json): the real servers start once for the whole run and stop after
 * it. The unit profile (.mocharc.unit.json) uses test/unit-hooks.ts instead.
 */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(600_000); // a fresh machine installs the Temporal CLI, PostgreSQL and HAProxy first
    // In-process workers export Prometheus metrics as `runbook up`'s worker does (test/e2e/metrics.test.ts).
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    installTestRuntime({ telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } } });
    setMetricsUrl(`http://${metricsAddress}/metrics`);
    releasesAsTheReleaseUser();
    await startTestStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTestStack();
  },
};

/**
 * As root, releases run as the release user (runbook-release, made here as `runbook up` does), which must read the
 * sample's releases in examples/. A checkout under a private home (/root is 0700) cannot be read by it: then the
 * run's releases run as root (RUNBOOK_RELEASE_USER=root), said once, and test/platforms/single-host/release-user.test.ts
 * still runs releases as the release user from a readable copy.
 */
function releasesAsTheReleaseUser(): void {
  ensureReleaseUser(process.env);
  const user = resolveReleaseUser(process.env);
  const examples = path.join(__dirname, '..', 'examples');
  const blocked = user ? unreachableFor(user, examples) : undefined;
  if (user && blocked) {
    console.log(
      `    releases run as root in this run: the release user ${user.name} cannot pass ${blocked} to ${examples}`,
    );
    process.env.RUNBOOK_RELEASE_USER = 'root';
  }
}
