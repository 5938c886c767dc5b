import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../harness';
import { scenarios } from './scenarios';

const dir = path.join(__dirname, 'histories');

/**
 * Every committed history must replay on the current workflow code without a non-determinism error: this is
 * what keeps workflows that are already running in production safe when the code changes.
 */
describe('replay of committed histories', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('has a committed history for every scenario', () => {
    const names = files.map((f) => f.replace(/\.json$/, ''));
    for (const scenario of scenarios)
      assert.ok(names.includes(scenario.name), `record ${scenario.name}: npm run record-histories`);
  });

  it('keeps the histories recorded with the plan in the input (before worker-resolves-plan): they must still replay', () => {
    const legacy = [
      'deploy-happy',
      'deploy-auto-rollback',
      'deploy-rejected',
      'deploy-approval-timeout',
      'rollback-app-only',
      'rollback-db-restore',
      'drill-passed',
      'drill-failed-corrupt-snapshot',
      'drill-cancelled',
      'aws-ecs-deploy-canary',
      'aws-ecs-rollback-db-restore',
      'aws-ecs-drill-passed',
    ];
    for (const name of legacy) {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')));
      const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
      assert.ok(input, `${name} has an input`);
      const decoded = JSON.parse(Buffer.from(input).toString('utf8')) as { plan?: { service?: string } };
      assert.ok(decoded.plan?.service, `${name}'s input carries its plan`);
    }
  });

  it('holds no secret: workflows name targets, workers hold the credentials', () => {
    for (const file of files) {
      const payloads = [...readFileSync(path.join(dir, file), 'utf8').matchAll(/"data": "([A-Za-z0-9+/=]+)"/g)].map(
        (m) => Buffer.from(m[1] ?? '', 'base64').toString('utf8'),
      );
      assert.ok(payloads.length > 0, `${file} has payloads`);
      for (const text of payloads) {
        assert.doesNotMatch(text, /postgres(ql)?:\/\/[^"\s]*:[^"\s]*@/, `${file} holds a database URL with a password`);
        assert.doesNotMatch(text, /PGPASSWORD|"password"/i, `${file} holds a password`);
      }
    }
  });

  for (const file of files) {
    it(`replays ${file}`, async () => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
      assert.ok((history.events ?? []).length > 0, 'the history has events');
      const results = Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, [
        { workflowId: file.replace(/\.json$/, ''), history },
      ]);
      let replayed = 0;
      for await (const result of results) {
        replayed++;
        if (result.error) throw result.error;
      }
      assert.equal(replayed, 1);
    });
  }
});
