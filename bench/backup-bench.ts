/**
 * The backup benchmark (issue 15): the backupService workflow (pgBackRest on the stack's PostgreSQL) on a generated
 * database of `--scale` pgbench units (10 ≈ 160 MB; 70 ≈ 1 GB) in a service's database, against the bare
 * `pgbackrest backup` command on the same cluster:
 *
 *   1. workflow full backup (policy, backup, verify, expire): the backup's duration as the activity measured it, the
 *      workflow's whole span, and the sizes and WAL range it recorded;
 *   2. `pgbench -t <n>` writes, then a workflow incr and a workflow diff;
 *   3. bare: `pgbackrest backup --type=full`, timed from this process.
 *
 * Run: `npm run bench:backup` (= `npx tsx bench/backup-bench.ts`); `-- --scale 70` for ~1 GB. Writes
 * bench/results/backup.json and backup.md.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { putPlan } from '../test/helpers/worker-config';
import { runbookConfigFor, startTestStack, startWorker, uniqueName } from '../test/harness';
import { shopPlan } from '../test/workflows/deploy-fixture';
import type { BackupKind, BackupResult, PitrDrillResult } from '../src/shared/backup';
import { stackPgbackrest } from '../src/stack/postgres';
import { pgbackrestTool } from '../src/stack/tools';
import {
  benchCleanup,
  benchCommand,
  databaseBytes,
  gitState,
  machineInfo,
  pgTool,
  round,
  runBench,
  toolVersions,
  writeResults,
} from './common';

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: '10' },
    transactions: { type: 'string', default: '2000' },
    out: { type: 'string', default: path.join(__dirname, 'results') },
  },
});
const scale = Number(values.scale);
const transactions = Number(values.transactions);

let worker: { stop(): Promise<void> } | undefined;
let started = false;
const cleanup = benchCleanup([['stopping the worker', () => worker]], () => started);

const mib = (b: number) => round(b / 2 ** 20, 1);

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  const stack = await startTestStack();
  started = true;
  const taskQueue = uniqueName('bench-backup');
  worker = await startWorker(taskQueue);
  const plan = await shopPlan({ backup: { retention: { full: 1 }, verify: true } });
  putPlan(runbookConfigFor(taskQueue), plan);
  const database = plan.database!.name;
  console.log(`pgbench -i -s ${scale} into ${database}`);
  await pgTool('pgbench', ['-i', '-s', String(scale), '-q'], database);
  const dbBytes = await databaseBytes(database);

  const run = async (type: BackupKind) => {
    const t0 = Date.now();
    const handle = await stack.client.workflow.start('backupService', {
      taskQueue,
      workflowId: uniqueName(`bench-backup-${type}`),
      args: [{ service: plan.service, environment: plan.environment, type }],
    });
    const r = (await handle.result()) as BackupResult;
    const wallMs = Date.now() - t0;
    console.log(`${type}: ${r.backup.label} ${r.backup.durationMs} ms, workflow ${wallMs} ms`);
    return {
      type,
      label: r.backup.label,
      backupMs: r.backup.durationMs,
      workflowMs: wallMs,
      clusterMiB: mib(r.backup.bytes),
      repoMiB: mib(r.backup.repoBytes),
      walStart: r.backup.walStart ?? null,
      walStop: r.backup.walStop ?? null,
      verified: r.verified === 'skipped' ? 'skipped' : r.verified.ok,
      expired: r.expired.length,
    };
  };
  const full = await run('full');
  await pgTool('pgbench', ['-t', String(transactions), '-c', '2', '-n'], database);
  const incr = await run('incr');
  await pgTool('pgbench', ['-t', String(transactions), '-c', '2', '-n'], database);
  const diff = await run('diff');

  // A point-in-time drill to a moment after the diff, with writes on both sides of it (pgbench, 2 clients).
  await pgTool('pgbench', ['-t', String(transactions / 2), '-c', '2', '-n'], database);
  const [mark] = await pgTool(
    'psql',
    ['-AtXc', 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint'],
    database,
  ).then((o) => o.trim().split('\n'));
  await pgTool('pgbench', ['-t', String(transactions / 2), '-c', '2', '-n'], database);
  const runner = stackPgbackrest(stack.settings);
  await runner.run(['check']);
  const p0 = Date.now();
  const pitr = (await stack.client.workflow.execute('pitrDrill', {
    taskQueue,
    workflowId: uniqueName('bench-pitr'),
    args: [{ service: plan.service, environment: plan.environment, toTimeMs: Number(mark) }],
  })) as PitrDrillResult;
  const pitrWallMs = Date.now() - p0;
  console.log(`pitr: restore ${pitr.restoreMs} ms, RPO ${pitr.rpoMs} ms, workflow ${pitrWallMs} ms`);

  const b0 = Date.now();
  await runner.run(['--type=full', 'backup']);
  const bareFullMs = Date.now() - b0;
  const v0 = Date.now();
  await runner.run(['verify']);
  const bareVerifyMs = Date.now() - v0;

  const results = {
    at: new Date().toISOString(),
    command: benchCommand('bench:backup', 'bench/backup-bench.ts'),
    machine: machineInfo(loadBefore),
    tools: { ...(await toolVersions()), pgbackrest: (await pgbackrestTool())?.version ?? null },
    git: gitState(),
    data: { scale, serviceDatabaseMiB: mib(dbBytes), transactionsBetween: transactions * 2 },
    workflow: [full, incr, diff],
    bare: { fullMs: bareFullMs, verifyMs: bareVerifyMs },
    pitrDrill: {
      backup: pitr.backup,
      restoreMs: pitr.restoreMs,
      rpoMs: pitr.rpoMs,
      workflowMs: pitrWallMs,
      removed: pitr.removed,
    },
    note: 'the cluster is the test stack: the service database plus the orchestrator database; compress-type lz4, process-max 2',
  };
  const rows = results.workflow
    .map(
      (r) =>
        `| ${r.type} | ${r.label} | ${(r.backupMs / 1000).toFixed(2)} s | ${(r.workflowMs / 1000).toFixed(2)} s | ${r.clusterMiB} MiB | ${r.repoMiB} MiB | ${r.walStart}..${r.walStop} | ${r.verified} | ${r.expired} |`,
    )
    .join('\n');
  const md = `# Backup benchmark

${results.at} — \`${results.command}\` — ${results.machine.cpus} × ${results.machine.cpuModel} — ${results.tools.postgres} — ${results.tools.pgbackrest} — commit ${String(results.git.commit).slice(0, 10)}. Load average before / after: ${results.machine.loadAvgBefore.join(' ')} / ${results.machine.loadAvgAfter.join(' ')}.

Data: \`pgbench -i -s ${scale}\` in the service's database (${results.data.serviceDatabaseMiB} MiB), then \`pgbench -t ${transactions} -c 2\` before the incr and again before the diff.

## The backupService workflow

"backup" is the pgbackrest backup as the activity measured it; "workflow" is start to result (policy, backup, verify, expire).

| type | label | backup | workflow | cluster | in repo | WAL | verified | expired |
| ---- | ----- | -----: | -------: | ------: | ------: | --- | -------- | ------: |
${rows}

## Bare commands on the same cluster

| command | time |
| ------- | ---: |
| \`pgbackrest backup --type=full\` | ${(bareFullMs / 1000).toFixed(2)} s |
| \`pgbackrest verify\` | ${(bareVerifyMs / 1000).toFixed(2)} s |

## Point-in-time drill

\`pitrDrill\` to a moment between two \`pgbench -t ${transactions / 2} -c 2\` runs after the diff: restore from ${pitr.backup} (its WAL replayed to the moment) into a scratch cluster, promoted, checked, removed.

| restore (restore start → copy out of recovery) | RPO (moment − last replayed commit) | workflow (start → result, removal included) |
| ---: | ---: | ---: |
| ${(pitr.restoreMs / 1000).toFixed(2)} s | ${pitr.rpoMs === null ? 'n/a' : `${pitr.rpoMs} ms`} | ${(pitrWallMs / 1000).toFixed(2)} s |

${results.note}.
`;
  await writeResults(values.out!, 'backup', results, md);
  console.log(md);
}

runBench(main, cleanup, 'the worker and the test stack');
