import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { createReleaseRunner } from '../../src/platforms/single-host/release-runner';
import { loadRunbookConfig, resolveService } from '../../src/runbook-config';
import type { DeployState, GateName } from '../../src/shared/deploy';
import type { DeployRequest, RollbackRequest } from '../../src/shared/request';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import type { ApprovalGate } from '../../src/shared/service-plan';
import { statusQuery } from '../../src/shared/messages';
import { databaseUrl, ensureDatabase, ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { freePort } from '../../src/system/processes';
import type { deployService, rollbackService } from '../../src/workflows';
import { runbookConfigFor, testStack, uniqueName } from '../harness';
import { putPlan } from '../helpers/worker-config';

/** The single-host release runner on the test stack's folder, to look at release processes. */
export const runner = () =>
  createReleaseRunner({
    dir: path.join(testStack().settings.home, 'releases'),
    releaseUrlFor: async ({ database }) => databaseUrl(testStack().settings, database),
  });

/** The folder of a service's snapshots on the test stack, or one snapshot's dump file in it. */
export const snapshotPath = (plan: ResolvedService, snapshotId?: string) =>
  path.join(
    testStack().settings.home,
    'snapshots',
    `${plan.service}-${plan.environment}`,
    ...(snapshotId ? [`${snapshotId}.dump`] : []),
  );

/** The manifest (tables, row counts, checksums) of one snapshot on the test stack, next to its dump. */
export const snapshotManifest = (plan: ResolvedService, snapshotId: string) =>
  path.join(snapshotPath(plan), `${snapshotId}.json`);

export const examplesDir = path.join(__dirname, '../../examples');
/**
 * The release ports of the plans of this process: blocks of 20 from RUNBOOK_TEST_PORT_BASE (set per lane by
 * scripts/test-lanes.sh, so that two mocha processes never hand out the same ports), else from a base picked by pid.
 */
let nextPortBlock = Number(process.env.RUNBOOK_TEST_PORT_BASE || 21000 + (process.pid % 50) * 100);

/**
 * The sample service's plan (examples/runbook.yaml, staging) made unique for one test: its own service
 * name, frontend port, release ports and database, with short timings.
 */
export async function shopPlan(overrides: Partial<ResolvedService> = {}): Promise<ResolvedService> {
  const resolved = resolveService(loadRunbookConfig(path.join(examplesDir, 'runbook.yaml')), 'shop', 'staging');
  if (resolved.platform !== 'single-host') throw new Error('the example is single-host');
  const service = uniqueName('shop').replace(/[^a-z0-9-]/g, '');
  const database = service.replace(/-/g, '_');
  await ensureDatabase(testStack().settings, database);
  const low = nextPortBlock;
  nextPortBlock += 20;
  // a free port outside the plan's own release ports (the config refuses a frontend among them)
  let listen = await freePort();
  while (listen >= low && listen <= low + 19) listen = await freePort();
  return {
    ...resolved,
    service,
    listen: { port: listen },
    release: { ...resolved.release, portRange: { min: low, max: low + 19 }, drainMs: 500 },
    health: { ...resolved.health, deadlineMs: 20_000 },
    database: { name: database, migrationsDir: path.join(examplesDir, 'shop/migrations') },
    traffic: {
      steps: [
        { weight: 50, bakeMs: 2_000 },
        { weight: 100, bakeMs: 0 },
      ],
    },
    // Most tests deploy without load: their steps proceed unjudged and say so (the judged-steps tests set pause, fail).
    analysis: {
      ...resolved.analysis,
      max5xxRate: 0.02,
      maxP95LatencyMs: 500,
      minRequests: 5,
      intervalMs: 1_000,
      failuresTolerated: 0,
      onInconclusive: 'proceed',
    },
    approvals: { gates: [], approvers: ['alice', 'bob'], fourEyes: true, timeoutMs: 60_000, onTimeout: 'abort' },
    ...overrides,
  };
}

export const withGates = (
  plan: ResolvedService,
  gates: ApprovalGate[],
  extra: Partial<ResolvedService['approvals']> = {},
): ResolvedService => ({
  ...plan,
  approvals: { ...plan.approvals, gates, ...extra },
});

/**
 * What a request for `plan` carries, once the plan is in the runbook config of the workers of `taskQueue` (they run
 * the plan of their config, never one from a request): the service, the environment and the plan's digests.
 */
export function requestFor(taskQueue: string, plan: ResolvedService) {
  const { configDigest, fieldDigests } = putPlan(runbookConfigFor(taskQueue), plan);
  return { service: plan.service, environment: plan.environment, configDigest, fieldDigests };
}

/** Starts a deploy of `version` with `plan`: the plan goes into the worker's runbook config, the request names it. */
export async function startDeploy(taskQueue: string, plan: ResolvedService, version: string, requestedBy = 'dave') {
  const input: DeployRequest = { ...requestFor(taskQueue, plan), version, requestedBy };
  return testStack().client.workflow.start<typeof deployService>('deployService', {
    taskQueue,
    workflowId: uniqueName(`deploy-${version}`),
    args: [input],
  });
}

/** The service live at v1 (first deploy, no gates; its pre-migration snapshot is of the empty database). */
export async function liveV1(taskQueue: string, plan?: ResolvedService) {
  const p = plan ?? (await shopPlan());
  const v1 = await (await startDeploy(taskQueue, p, 'v1')).result();
  assert.equal(v1.outcome, 'succeeded', v1.reason);
  return { plan: p, snapshotId: v1.snapshotId! };
}

/** A new service (the sample with `overrides`) with v1 live. */
export const serviceWithV1 = async (
  taskQueue: string,
  overrides: Partial<ResolvedService> = {},
): Promise<ResolvedService> => (await liveV1(taskQueue, await shopPlan(overrides))).plan;

/**
 * v1 live, `beforeV2` run, then v2 live; returns the plan and v2's pre-migration snapshot (taken while v1 was live,
 * after `beforeV2`: the newest snapshot).
 */
export async function liveV2(
  taskQueue: string,
  { plan, beforeV2 }: { plan?: ResolvedService; beforeV2?: (plan: ResolvedService) => Promise<unknown> } = {},
) {
  const { plan: p } = await liveV1(taskQueue, plan);
  await beforeV2?.(p);
  const v2 = await (await startDeploy(taskQueue, p, 'v2')).result();
  assert.equal(v2.outcome, 'succeeded', v2.reason);
  return { plan: p, snapshotId: v2.snapshotId! };
}

/** Starts a rollback of `plan`, requested by dave for `reason: 'test'` unless `extra` says otherwise. */
export function startRollback(
  taskQueue: string,
  plan: ResolvedService,
  extra: Partial<RollbackRequest> = {},
  workflowId = uniqueName('rollback'),
) {
  const input: RollbackRequest = { ...requestFor(taskQueue, plan), requestedBy: 'dave', reason: 'test', ...extra };
  return testStack().client.workflow.start<typeof rollbackService>('rollbackService', {
    taskQueue,
    workflowId,
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

export const waitingAt = (handle: WorkflowHandle, gate: GateName, timeoutMs?: number) =>
  waitForState(handle, (s) => s.waitingFor?.gate === gate, `the ${gate} gate`, timeoutMs);

/** The rows of one statement on a database of the test stack, on a connection of its own. */
export async function queryDb<T extends pg.QueryResultRow>(
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl(testStack().settings, database) });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Rows of the orchestrator's release history for a service. */
export const releaseHistory = (service: string) =>
  queryDb<{ version: string; outcome: string; workflow_id: string }>(
    ORCHESTRATOR_DB,
    'SELECT version, outcome, workflow_id FROM releases WHERE service = $1 ORDER BY id',
    [service],
  );

const count = async (database: string, sql: string, params: unknown[] = []) =>
  Number((await queryDb<{ n: string }>(database, sql, params))[0]?.n);
const files = (folder: string, suffix = '') =>
  existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith(suffix)).length : 0;

/**
 * The side effects of one service's runbooks, counted from the real things: migrations applied (the service's
 * PostgreSQL), snapshot dumps (the snapshot folder), releases started (the release folder) and still running, the
 * release history (the orchestrator's PostgreSQL); with `drillId`, that drill's rows and the scratch databases left.
 */
export async function sideEffects(plan: ResolvedService, drillId?: string) {
  const releases = path.join(testStack().settings.home, 'releases', `${plan.service}-${plan.environment}`);
  const ids = existsSync(releases) ? readdirSync(releases) : [];
  const running = (await Promise.all(ids.map((id) => runner().get(plan.service, plan.environment, id)))).filter(
    Boolean,
  ).length;
  const database = plan.database!.name;
  return {
    migrations: await count(database, 'SELECT count(*) AS n FROM pgmigrations'),
    snapshots: files(snapshotPath(plan), '.dump'),
    releasesStarted: ids.length,
    releasesRunning: running,
    history: (await releaseHistory(plan.service)).map((h) => `${h.version} ${h.outcome}`),
    ...(drillId
      ? {
          drillRows: await count(ORCHESTRATOR_DB, 'SELECT count(*) AS n FROM drill_runs WHERE workflow_id = $1', [
            drillId,
          ]),
          scratchLeft: await count('postgres', 'SELECT count(*) AS n FROM pg_database WHERE datname LIKE $1', [
            `${database}_drill_%`,
          ]),
        }
      : {}),
  };
}
