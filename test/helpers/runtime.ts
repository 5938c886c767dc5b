import { DefaultLogger, Runtime, type RuntimeOptions } from '@temporalio/worker';

/**
 * Installs the SDK's runtime for a test run (before any worker, replay worker or native connection exists).
 * The SDK's own logs would drown the test report, activity failures that tests provoke are logged as WARN:
 * only errors are shown unless RUNBOOK_TEST_VERBOSE is set.
 */
export function installTestRuntime(options: Omit<RuntimeOptions, 'logger'> = {}): void {
  Runtime.install({ logger: new DefaultLogger(process.env.RUNBOOK_TEST_VERBOSE ? 'INFO' : 'ERROR'), ...options });
}
