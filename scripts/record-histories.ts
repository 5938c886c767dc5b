/**
 * Re-records the committed replay histories (test/replay/histories/*.json) by running each scenario of
 * test/replay/scenarios.ts on a real dev server started for the purpose.
 *
 *   npm run record-histories               # all scenarios
 *   npm run record-histories -- deploy-happy   # only the named ones
 *
 * Re-record only on a deliberate change guarded by patched(): old histories must keep replaying.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { findTemporalCli } from '../src/stack/tools';
import { startTestStack, startWorker, stopTestStack, uniqueName } from '../test/harness';
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
        // The CLI's JSON export is the format the Web UI downloads and historyFromJSON reads.
        const cli = await findTemporalCli();
        if (!cli) throw new Error('the Temporal CLI is missing');
        const { stdout } = await promisify(execFile)(
          cli.path,
          [
            'workflow',
            'show',
            '--workflow-id',
            handle.workflowId,
            '--address',
            stack.temporalAddress,
            '--namespace',
            stack.namespace,
            '--output',
            'json',
          ],
          { maxBuffer: 64 * 1024 * 1024 },
        );
        writeFileSync(file, stdout.endsWith('\n') ? stdout : `${stdout}\n`);
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
