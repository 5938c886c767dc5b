import { Runtime, DefaultLogger } from '@temporalio/worker';
import { startTestStack, stopTestStack } from './harness';

// The SDK's own logs would drown the test report: activity failures that tests provoke are logged as WARN.
Runtime.install({ logger: new DefaultLogger(process.env.RUNBOOK_TEST_VERBOSE ? 'INFO' : 'ERROR') });

/** Mocha root hooks: the real servers start once for the whole run and stop after it. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(600_000); // a fresh machine installs the Temporal CLI, PostgreSQL and HAProxy first
    await startTestStack();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopTestStack();
  },
};
