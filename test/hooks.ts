import { freePort } from '../src/system/processes';
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
    await startTestStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTestStack();
  },
};
