import { randomUUID } from 'node:crypto';
import type { stackCheck } from '../workflows';
import { up } from '../stack/stack';
import { resolveStackSettings, temporalAddress, uiUrl } from '../stack/settings';
import { connectClient } from '../temporal-connection';
import type { Command } from './command';

export const demoCommand: Command = {
  name: 'demo',
  summary:
    'Bring the embedded stack up (detached) and run a workflow end to end on it: a worker checks PostgreSQL and\n' +
    'HAProxy, holds on a durable timer, and checks again. The stack keeps running for you to explore.',
  usage: 'demo [--home <dir>]',
  examples: ['npm run demo', 'runbook demo && runbook doctor'],
  options: { home: { type: 'string', description: 'data folder of the embedded stack', env: 'RUNBOOK_HOME' } },
  async run({ values }, io) {
    const settings = resolveStackSettings(io.env, values.home ? { home: String(values.home) } : {});
    io.out('== 1. the stack');
    await up(settings, io.out);
    io.out(`   Temporal Web UI: ${uiUrl(settings)}`);
    const client = await connectClient(temporalAddress(settings), settings.namespace);
    try {
      const workflowId = `stack-check-${randomUUID().slice(0, 8)}`;
      io.out(`\n== 2. a workflow end to end: ${workflowId}`);
      io.out(`   watch it: ${uiUrl(settings)}/namespaces/${settings.namespace}/workflows/${workflowId}`);
      const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
        taskQueue: settings.taskQueue,
        workflowId,
        args: [{ hold: '2s' }],
      });
      const result = await handle.result();
      io.out(`   database:       ${result.database.serverVersion} (${result.database.database})`);
      io.out(`   traffic router: HAProxy ${result.trafficRouter.version}, up ${result.trafficRouter.uptime}`);
      io.out(`   outcome:        ${result.outcome}`);
    } finally {
      await client.connection.close();
    }
    io.out('\nThe stack is still running: `npx runbook doctor` checks it, `npx runbook down` stops it.');
    return 0;
  },
};
