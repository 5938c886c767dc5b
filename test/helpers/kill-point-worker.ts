import { Runtime, DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createRunbookWorker } from '../../src/worker';
import { withKillPoint } from './chaos';

/**
 * Tests only: the worker process of src/worker.ts (same config from the environment, same composition root), whose
 * activities stop at the kill point named in the file RUNBOOK_TEST_KILL_CONTROL (test/helpers/chaos.ts, withKillPoint),
 * so that a test can SIGKILL it at one activity boundary.
 */
async function main(): Promise<void> {
  const control = process.env.RUNBOOK_TEST_KILL_CONTROL;
  if (!control) throw new Error('RUNBOOK_TEST_KILL_CONTROL is not set');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  // The workflow bundle the test built once (RUNBOOK_TEST_WORKFLOW_BUNDLE), else the workflow code bundled here.
  const bundle = process.env.RUNBOOK_TEST_WORKFLOW_BUNDLE;
  const { worker, close } = await createRunbookWorker(loadConfig(), {
    wrapActivities: (activities) => withKillPoint(activities, control),
    ...(bundle ? { workflowBundle: { codePath: bundle } } : {}),
  });
  console.log(`kill-point worker ${process.pid} started`);
  try {
    await worker.run();
  } finally {
    await close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
