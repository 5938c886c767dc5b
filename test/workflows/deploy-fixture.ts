import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { createReleaseRunner } from '../../src/platforms/single-host/release-runner';
import { loadRunbookConfig, resolveService } from '../../src/runbook-config';
import type { DeployInput, DeployState, GateName } from '../../src/shared/deploy';
import type { SingleHostService as ServicePlan } from '../../src/shared/service-plan';
import type { ApprovalGate } from '../../src/shared/service-plan';
import { statusQuery } from '../../src/shared/messages';
import { databaseUrl, ensureDatabase } from '../../src/stack/postgres';
import { freePort } from '../../src/stack/processes';
import type { deployService } from '../../src/workflows';
import { testStack, uniqueName } from '../harness';

/** The single-host release runner on the test stack's folder, to look at release processes. */
export const runner = () =>
  createReleaseRunner({
    dir: path.join(testStack().settings.home, 'releases'),
    urlFor: (db) => databaseUrl(testStack().settings, db),
  });

/** The folder of a service's snapshots on the test stack, or one snapshot's dump file in it. */
export const snapshotPath = (plan: ServicePlan, snapshotId?: string) =>
  path.join(
    testStack().settings.home,
    'snapshots',
    `${plan.service}-${plan.environment}`,
    ...(snapshotId ? [`${snapshotId}.dump`] : []),
  );

export const examplesDir = path.join(__dirname, '../../examples');
let nextPortBlock = 21000 + (process.pid % 50) * 100;

/**
 * The sample service's plan (examples/runbook.yaml, staging) made unique for one test: its own service
 * name, frontend port, release ports and database, with short timings.
 */
export async function shopPlan(overrides: Partial<ServicePlan> = {}): Promise<ServicePlan> {
  const resolved = resolveService(loadRunbookConfig(path.join(examplesDir, 'runbook.yaml')), 'shop', 'staging');
  if (resolved.platform !== 'single-host') throw new Error('the example is single-host');
  const service = uniqueName('shop').replace(/[^a-z0-9-]/g, '');
  const database = service.replace(/-/g, '_');
  await ensureDatabase(testStack().settings, database);
  const low = nextPortBlock;
  nextPortBlock += 20;
  return {
    ...resolved,
    service,
    listen: { port: await freePort() },
    release: { ...resolved.release, portRange: { min: low, max: low + 19 }, drainMs: 500 },
    health: { ...resolved.health, deadlineMs: 20_000 },
    database: { name: database, migrationsDir: path.join(examplesDir, 'shop/migrations') },
    traffic: {
      steps: [
        { weight: 50, bakeMs: 2_000 },
        { weight: 100, bakeMs: 0 },
      ],
    },
    analysis: { max5xxRate: 0.02, maxP95LatencyMs: 500, minRequests: 5, intervalMs: 1_000, failuresTolerated: 0 },
    approvals: { gates: [], approvers: ['alice', 'bob'], fourEyes: true, timeoutMs: 60_000, onTimeout: 'abort' },
    ...overrides,
  };
}

export const withGates = (
  plan: ServicePlan,
  gates: ApprovalGate[],
  extra: Partial<ServicePlan['approvals']> = {},
): ServicePlan => ({
  ...plan,
  approvals: { ...plan.approvals, gates, ...extra },
});

export async function startDeploy(taskQueue: string, plan: ServicePlan, version: string, requestedBy = 'dave') {
  const input: DeployInput = { plan, version, requestedBy };
  return testStack().client.workflow.start<typeof deployService>('deployService', {
    taskQueue,
    workflowId: uniqueName(`deploy-${version}`),
    args: [input],
  });
}

/** Polls the status query until `predicate` holds (or fails the test after `timeoutMs`). */
export async function waitForState(
  handle: WorkflowHandle,
  predicate: (s: DeployState) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<DeployState> {
  const until = Date.now() + timeoutMs;
  let last: DeployState | undefined;
  while (Date.now() < until) {
    last = await handle.query(statusQuery).catch(() => last);
    if (last && predicate(last)) return last;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}; last phase ${last?.phase}: ${last?.step}`);
}

export const waitingAt = (handle: WorkflowHandle, gate: GateName) =>
  waitForState(handle, (s) => s.waitingFor?.gate === gate, `the ${gate} gate`);

/** Rows of the orchestrator's release history for a service. */
export async function releaseHistory(
  service: string,
): Promise<Array<{ version: string; outcome: string; workflow_id: string }>> {
  const client = new pg.Client({ connectionString: databaseUrl(testStack().settings) });
  await client.connect();
  try {
    return (
      await client.query('SELECT version, outcome, workflow_id FROM releases WHERE service = $1 ORDER BY id', [service])
    ).rows;
  } finally {
    await client.end();
  }
}

export async function queryDb<T extends pg.QueryResultRow>(database: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl(testStack().settings, database) });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}
