/**
 * Re-records the committed replay histories (test/replay/histories/*.json) by running each scenario of
 * test/replay/scenarios.ts on a real dev server started for the purpose.
 *
 *   npm run record-histories               # all scenarios
 *   npm run record-histories -- deploy-happy   # only the named ones
 *
 * Re-record only on a deliberate change guarded by patched(): old histories must keep replaying.
 */
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { exportHistory, startTestStack, startWorker, stopTestStack, uniqueName } from '../test/harness';
import { scenarios } from '../test/replay/scenarios';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const wanted = process.argv.slice(2);
  const chosen = wanted.length > 0 ? scenarios.filter((s) => wanted.includes(s.name)) : scenarios;
  const unknown = wanted.filter((w) => !scenarios.some((s) => s.name === w));
  if (unknown.length > 0)
    throw new Error(`unknown scenario(s): ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  const stack = await startTestStack();
  try {
    for (const scenario of chosen) {
      const taskQueue = uniqueName(`record-${scenario.name}`);
      const worker = await startWorker(taskQueue);
      try {
        const handle = await scenario.run(stack.client, taskQueue, uniqueName(scenario.name));
        const file = path.join(__dirname, '..', 'test', 'replay', 'histories', `${scenario.name}.json`);
        await exportHistory(stack, handle.workflowId, file);
        console.log(`recorded ${path.relative(process.cwd(), file)}`);
      } finally {
        await worker.stop();
      }
    }
  } finally {
    await stopTestStack();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
