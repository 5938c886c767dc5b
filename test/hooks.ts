import { Runtime, DefaultLogger } from '@temporalio/worker';
import { freePort } from '../src/system/processes';
import { setMetricsUrl, startTestStack, stopTestStack } from './harness';

/** Mocha root hooks: the real servers start once for the whole run and stop after it. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(600_000); // a fresh machine installs the Temporal CLI, PostgreSQL and HAProxy first
    // In-process workers export Prometheus metrics as `runbook up`'s worker does (test/e2e/metrics.test.ts).
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    Runtime.install({
      // The SDK's own logs would drown the test report: activity failures that tests provoke are logged as WARN.
      logger: new DefaultLogger(process.env.RUNBOOK_TEST_VERBOSE ? 'INFO' : 'ERROR'),
      telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress } } },
    });
    setMetricsUrl(`http://${metricsAddress}/metrics`);
    await startTestStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTestStack();
  },
};
