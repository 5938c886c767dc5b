/**
 * The restore drill benchmark (issue "Weekly restore drill"): the `restoreDrill` workflow's RTO on a generated
 * database of `--scale` pgbench units (70 ≈ 1 GB) plus the sample's items table, against the bare commands it
 * wraps, run the same way on the same dump:
 *
 *   1. the drill (`fresh: true`: it snapshots the live database, then restores it): `drill.rtoMs` and `drill.phases`
 *      from its result, the activities inside its integrity phase from its history;
 *   2. bare: CREATE DATABASE + `pg_restore -j2 --no-owner` → connect → `pg_amcheck --install-missing
 *      --heapallindexed --jobs=2` + fingerprintDatabase / diffFingerprints against the snapshot's manifest → the
 *      same release started on the copy through the release runner → /health/ready answers 200 (polled every
 *      100 ms). Restore start to app ready: the span of the drill's RTO;
 *   3. restore methods on the same dump: pg_restore -j1 / -j2 / -j4, and `CREATE DATABASE … TEMPLATE` of an
 *      already-restored copy; plus the integrity checks run concurrently instead of one after the other.
 *
 * Run: `npm run bench:drill` (= `npx tsx bench/drill-bench.ts`); `-- --scale 5` for a quick run; `--repeat 2`
 * alternates drill and bare runs (drill, bare, bare, drill…). Writes bench/results/drill.json and drill.md.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { diffFingerprints, fingerprintDatabase } from '../src/pg/fingerprint';
import type { SnapshotManifest } from '../src/platforms/types';
import type { SingleHostService as ResolvedService } from '../src/shared/service-plan';
import { drillReleaseEnvironment } from '../src/shared/drill';
import { releaseIdFor } from '../src/shared/ids';
import { databaseUrl } from '../src/stack/postgres';
import { startTestStack, startWorker, testStack, uniqueName } from '../test/harness';
import { queryDb, runner, shopPlan, snapshotManifest, startDeploy } from '../test/workflows/deploy-fixture';
import { startDrill } from '../test/workflows/drill-fixture';
import {
  benchCleanup,
  benchCommand,
  databaseBytes,
  gitState,
  intArgs,
  machineInfo,
  median,
  pgBin,
  pgTool,
  resultWithin,
  round,
  roundDeep,
  toolVersions,
  waitReady,
  writeResults,
  runBench,
} from './common';
import { timelineOf } from './history';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '70' },
    items: { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '1' },
    'skip-methods': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(__dirname, 'results') },
  },
});
const int = intArgs<'scale' | 'items' | 'repeat'>(args);
const settings = {
  /** pgbench scale of the service's database (1 ≈ 15 MB). */
  scale: int('scale'),
  /** rows added to the sample's items table. */
  items: int('items', 0),
  /** drill + bare pairs, alternating which goes first. */
  repeat: int('repeat'),
  restoreJobs: 2,
  methods: !args['skip-methods'],
};
const GOAL_RATIO = 1.15;
const DRILL_MAX_MS = 20 * 60_000;
const command = benchCommand('bench:drill', 'bench/drill-bench.ts');

let worker: { stop(): Promise<void> } | undefined;
let stackStarted = false;

const url = (db: string) => databaseUrl(testStack().settings, db);
const admin = (sql: string) => queryDb('postgres', sql);
const drop = (db: string) => admin(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

/** CREATE DATABASE (template0, as the drill) + pg_restore -j<jobs> --no-owner --exit-on-error. */
async function restore(dump: string, target: string, jobs: number) {
  await admin(`CREATE DATABASE ${pg.escapeIdentifier(target)} TEMPLATE template0`);
  await pgTool(
    'pg_restore',
    [`--jobs=${jobs}`, '--no-owner', '--exit-on-error', '--no-password', `--dbname=${target}`, dump],
    target,
  );
}

const amcheck = (db: string) =>
  pgTool('pg_amcheck', ['--install-missing', '--heapallindexed', '--no-password', '--jobs=2', db], db);

async function manifestCheck(db: string, manifest: SnapshotManifest) {
  const differences = diffFingerprints(manifest, await fingerprintDatabase(url(db)));
  if (differences.length > 0) throw new Error(`bare: ${db} differs from the manifest: ${differences.join('; ')}`);
}

async function ping(db: string) {
  const c = new pg.Client({ connectionString: url(db) });
  await c.connect();
  await c.query('SELECT 1');
  await c.end();
}

// ---------------------------------------------------------------------------------------------------------------

async function drillRun(taskQueue: string, plan: ResolvedService, fresh: boolean, snapshotId?: string) {
  const handle = await startDrill(taskQueue, plan, fresh ? { fresh: true } : { snapshotId: snapshotId! });
  const r = await resultWithin(handle, DRILL_MAX_MS, 'the drill', 'the drill did not finish in time');
  if (r.outcome !== 'passed') throw new Error(`the drill ended ${r.outcome}: ${r.reason}`);
  const t = timelineOf(await handle.fetchHistory());
  const act = (name: string) => {
    const s = t.steps.find((x) => x.name === name);
    return s ? round(s.endedMs - s.startedMs, 1) : null;
  };
  const phases = Object.fromEntries(r.drill.phases.map((p) => [p.phase, p.ms ?? null]));
  return {
    workflowId: handle.workflowId,
    snapshotId: r.drill.snapshot!.snapshotId,
    rtoMs: r.drill.rtoMs!,
    phases,
    integrityActivities: {
      amcheckDatabase: act('amcheckDatabase'),
      compareWithSnapshot: act('compareWithSnapshot'),
      checkSchema: act('checkSchema'),
    },
    restoreActivityMs: act('restoreScratch'),
    amcheck: r.drill.integrity.amcheck?.detail ?? null,
  };
}

async function bareRun(plan: ResolvedService, manifest: SnapshotManifest, version: string) {
  const db = `${plan.database!.name}_bare_${Math.random().toString(36).slice(2, 8)}`;
  const t0 = performance.now();
  const restoreT = await timed(() => restore(manifest.location, db, settings.restoreJobs));
  const connectT = await timed(() => ping(db));
  const amcheckT = await timed(() => amcheck(db));
  const manifestT = await timed(() => manifestCheck(db, manifest));
  const key = { service: plan.service, environment: drillReleaseEnvironment(plan.environment) };
  const startT = await timed(() =>
    runner().start({
      ...key,
      releaseId: releaseIdFor(version, uniqueName('bare')),
      version,
      release: plan.release,
      database: { name: db },
    }),
  );
  const { host, port } = startT.value;
  const readyT = await timed(() =>
    waitReady({ host, port }, 30_000, `the bare run's release on ${host}:${port} was not ready within 30 s`),
  );
  const totalMs = performance.now() - t0;
  await runner().stop(key.service, key.environment, startT.value.releaseId, 2_000);
  await drop(db);
  return {
    database: db,
    totalMs,
    phases: {
      restore: restoreT.ms,
      connect: connectT.ms,
      integrity: amcheckT.ms + manifestT.ms,
      'start-release': startT.ms,
      health: readyT.ms,
    },
    integrityParts: { amcheck: amcheckT.ms, fingerprintAndDiff: manifestT.ms },
  };
}

async function methods(manifest: SnapshotManifest) {
  const base = `${manifest.database}_m_${Math.random().toString(36).slice(2, 6)}`;
  const rows: Array<{ method: string; ms: number; note: string }> = [];
  for (const jobs of [1, 2, 4]) {
    const db = `${base}_j${jobs}`;
    const t = await timed(() => restore(manifest.location, db, jobs));
    rows.push({ method: `pg_restore -j${jobs}`, ms: t.ms, note: 'CREATE DATABASE … TEMPLATE template0 + pg_restore' });
    console.log(`  pg_restore -j${jobs}: ${(t.ms / 1000).toFixed(1)} s`);
    if (jobs !== 2) await drop(db);
  }
  const source = `${base}_j2`;
  const copy = `${base}_tpl`;
  const tpl = await timed(() =>
    admin(`CREATE DATABASE ${pg.escapeIdentifier(copy)} TEMPLATE ${pg.escapeIdentifier(source)}`),
  );
  rows.push({
    method: 'CREATE DATABASE … TEMPLATE <restored copy>',
    ms: tpl.ms,
    note: 'file-level copy of a database restored earlier; proves nothing about the dump',
  });
  console.log(`  template copy: ${(tpl.ms / 1000).toFixed(1)} s`);
  // The integrity checks of the drill, one after the other (as the drill runs them) and concurrently.
  const seqA = await timed(() => amcheck(copy));
  const seqF = await timed(() => manifestCheck(copy, manifest));
  const both = await timed(() => Promise.all([amcheck(copy), manifestCheck(copy, manifest)]));
  const integrity = {
    amcheckMs: seqA.ms,
    fingerprintMs: seqF.ms,
    sequentialMs: seqA.ms + seqF.ms,
    concurrentMs: both.ms,
  };
  console.log(
    `  integrity: sequential ${(integrity.sequentialMs / 1000).toFixed(1)} s, concurrent ${(both.ms / 1000).toFixed(1)} s`,
  );
  await drop(copy);
  await drop(source);
  return { restores: rows, integrity };
}

// ---------------------------------------------------------------------------------------------------------------

const cleanup = benchCleanup([['stopping the worker', () => worker]], () => stackStarted);

const PHASES = ['restore', 'connect', 'integrity', 'migrate', 'start-release', 'health', 'smoke'] as const;

async function main() {
  const loadAvgBefore = os.loadavg();
  const startedAt = new Date();
  console.log(
    `drill benchmark: pgbench -s ${settings.scale} + ${settings.items} items; ${settings.repeat} drill/bare pair(s)`,
  );
  stackStarted = true;
  await startTestStack();
  const taskQueue = uniqueName('bench-drill');
  worker = await startWorker(taskQueue);

  const base = await shopPlan();
  const plan: ResolvedService = { ...base, traffic: { steps: [{ weight: 100, bakeMs: 0 }] } };
  const database = plan.database!.name;
  const v1 = await (await startDeploy(taskQueue, plan, 'v1')).result();
  if (v1.outcome !== 'succeeded') throw new Error(`the v1 deploy ended ${v1.outcome}: ${v1.reason}`);
  console.log(`  pgbench -i -s ${settings.scale} into ${database}…`);
  const gen = await timed(() => pgTool('pgbench', ['-i', '-s', String(settings.scale), '-q'], database));
  if (settings.items > 0)
    await queryDb(
      database,
      `INSERT INTO items (name) SELECT 'item-' || g FROM generate_series(1, ${settings.items}) g`,
    );
  await admin('CHECKPOINT');
  const liveBytes = await databaseBytes(database);
  console.log(`  ${(liveBytes / 2 ** 30).toFixed(2)} GiB in ${(gen.ms / 1000).toFixed(1)} s`);

  const drills: Awaited<ReturnType<typeof drillRun>>[] = [];
  const bares: Awaited<ReturnType<typeof bareRun>>[] = [];
  let manifest: SnapshotManifest | undefined;
  const readManifest = (id: string) => JSON.parse(readFileSync(snapshotManifest(plan, id), 'utf8')) as SnapshotManifest;
  const order: Array<'drill' | 'bare'> = [];
  for (let i = 0; i < settings.repeat; i++)
    order.push(...(i % 2 === 0 ? (['drill', 'bare'] as const) : (['bare', 'drill'] as const)));
  for (const what of order) {
    if (what === 'drill') {
      const d = await drillRun(taskQueue, plan, !manifest, manifest?.snapshotId);
      manifest ??= readManifest(d.snapshotId);
      drills.push(d);
      console.log(
        `  drill ${drills.length}: RTO ${(d.rtoMs / 1000).toFixed(1)} s ${JSON.stringify(roundDeep(d.phases))}`,
      );
    } else {
      const b = await bareRun(plan, manifest!, 'v1');
      bares.push(b);
      console.log(`  bare ${bares.length}: ${(b.totalMs / 1000).toFixed(1)} s ${JSON.stringify(roundDeep(b.phases))}`);
    }
  }
  const m = settings.methods ? await methods(manifest!) : null;

  const results = await summarize({
    startedAt,
    loadAvgBefore,
    database,
    liveBytes,
    generateMs: gen.ms,
    manifest: manifest!,
    drills,
    bares,
    methods: m,
  });
  const md = render(results);
  await writeResults(path.resolve(args.out!), 'drill', results, md);
  console.log(`\n${md}`);
}

interface Measured {
  startedAt: Date;
  loadAvgBefore: number[];
  database: string;
  liveBytes: number;
  generateMs: number;
  manifest: SnapshotManifest;
  drills: Awaited<ReturnType<typeof drillRun>>[];
  bares: Awaited<ReturnType<typeof bareRun>>[];
  methods: Awaited<ReturnType<typeof methods>> | null;
}

/** The figures, goal and context that go into drill.json, rounded. */
async function summarize({
  startedAt,
  loadAvgBefore,
  database,
  liveBytes,
  generateMs,
  manifest,
  drills,
  bares,
  methods: m,
}: Measured) {
  const drillRto = median(drills.map((d) => d.rtoMs));
  const bareTotal = median(bares.map((b) => b.totalMs));
  const ratio = drillRto / bareTotal;
  const phaseTable = PHASES.map((p) => {
    const d = drills.map((x) => x.phases[p]).filter((x): x is number => typeof x === 'number');
    const b = bares
      .map((x) => (x.phases as Record<string, number>)[p])
      .filter((x): x is number => typeof x === 'number');
    const dm = d.length ? median(d) : null;
    const bm = b.length ? median(b) : null;
    return { phase: p, drillMs: dm, bareMs: bm, diffMs: dm !== null && bm !== null ? dm - bm : dm };
  }).filter((r) => r.drillMs !== null || r.bareMs !== null);

  return roundDeep({
    benchmark: 'drill',
    date: startedAt.toISOString(),
    command,
    node: process.version,
    machine: machineInfo(loadAvgBefore),
    tools: await toolVersions(),
    git: gitState(),
    settings,
    data: {
      database,
      liveDatabaseBytes: liveBytes,
      generateMs,
      snapshotId: manifest.snapshotId,
      dumpBytes: manifest.bytes,
      rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
      tables: manifest.tables.map((t) => `${t.table}: ${t.rows}`),
    },
    drillRtoMs: drillRto,
    bareMs: bareTotal,
    ratio,
    goal: { maxRatio: GOAL_RATIO, met: ratio <= GOAL_RATIO },
    phases: phaseTable,
    drills,
    bares,
    methods: m,
    commands: {
      restore: `CREATE DATABASE <db> TEMPLATE template0; ${pgBin('pg_restore')} --jobs=2 --no-owner --exit-on-error --no-password --dbname=<db> <dump>`,
      amcheck: `${pgBin('pg_amcheck')} --install-missing --heapallindexed --no-password --jobs=2 <db>`,
      manifest: 'fingerprintDatabase(<db url>) + diffFingerprints(manifest, …) (src/pg/fingerprint.ts)',
      release:
        "runner().start({ service, environment: '<env>-drill', version: 'v1', database: { name: <db> } }), then GET /health/ready every 100 ms until 200",
      generate: `${pgBin('pgbench')} -i -s ${settings.scale} -q; INSERT INTO items (name) SELECT 'item-' || g FROM generate_series(1, ${settings.items}) g`,
    },
  });
}

type Results = Awaited<ReturnType<typeof summarize>>;

const s = (ms: number | null | undefined) => (ms === null || ms === undefined ? '–' : `${(ms / 1000).toFixed(2)} s`);

function render(r: Results): string {
  const lines = [
    '# Restore drill benchmark',
    '',
    `${r.date} — \`${r.command}\` — Node ${r.node} — ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, ${r.machine.os} — ${r.tools.postgres} — commit ${String(r.git.commit).slice(0, 10)}` +
      (r.git.uncommittedChangesIn.length
        ? ` (uncommitted changes in ${r.git.uncommittedChangesIn.length} files of src/ test/ examples/, listed in drill.json)`
        : '') +
      `. Load average before / after: ${r.machine.loadAvgBefore.join(' ')} / ${r.machine.loadAvgAfter.join(' ')}.`,
    '',
    `Data: \`pgbench -i -s ${r.settings.scale}\` + ${r.settings.items} items in the service's database: ${(r.data.liveDatabaseBytes / 2 ** 20).toFixed(0)} MiB, ${r.data.rows} rows; the drill's fresh snapshot ${r.data.snapshotId} is a ${(r.data.dumpBytes / 2 ** 20).toFixed(1)} MiB pg_dump -Fc archive. Drill and bare runs restore this same dump (${r.drills.length} drill, ${r.bares.length} bare; medians).`,
    '',
    '## Goal',
    '',
    '| goal | drill RTO | bare | ratio | |',
    '| --- | ---: | ---: | ---: | --- |',
    `| drill RTO / bare commands ≤ ${r.goal.maxRatio} | ${s(r.drillRtoMs)} | ${s(r.bareMs)} | **${r.ratio}** | **${r.goal.met ? 'met' : 'missed'}** |`,
    '',
    '## Phases side by side',
    '',
    'Drill: `drill.phases` (workflow clock, so each phase includes its workflow task and activity dispatch). Bare: the same commands from the bench process.',
    '',
    '| phase | drill | bare | drill − bare |',
    '| --- | ---: | ---: | ---: |',
    ...r.phases.map((p) => `| ${p.phase} | ${s(p.drillMs)} | ${s(p.bareMs)} | ${s(p.diffMs)} |`),
    `| **restore start → app ready** | **${s(r.drillRtoMs)}** | **${s(r.bareMs)}** | **${s(r.drillRtoMs - r.bareMs)}** |`,
    '',
    'Inside integrity: ' +
      r.drills
        .map(
          (d) =>
            `drill amcheckDatabase ${s(d.integrityActivities.amcheckDatabase)}, compareWithSnapshot ${s(d.integrityActivities.compareWithSnapshot)}, checkSchema ${s(d.integrityActivities.checkSchema)}`,
        )
        .join('; ') +
      ' — ' +
      r.bares
        .map(
          (b) =>
            `bare pg_amcheck ${s(b.integrityParts.amcheck)}, fingerprint + diff ${s(b.integrityParts.fingerprintAndDiff)}`,
        )
        .join('; ') +
      '.',
    '',
  ];
  if (r.methods) {
    lines.push(
      '## Restore methods (same dump)',
      '',
      '| method | time | note |',
      '| --- | ---: | --- |',
      ...r.methods.restores.map((x) => `| ${x.method} | ${s(x.ms)} | ${x.note} |`),
      '',
      `Integrity checks on one copy: pg_amcheck ${s(r.methods.integrity.amcheckMs)} + fingerprint ${s(r.methods.integrity.fingerprintMs)} = ${s(r.methods.integrity.sequentialMs)} one after the other (as the drill runs them); **${s(r.methods.integrity.concurrentMs)} concurrently**.`,
      '',
    );
  }
  lines.push('## Commands', '', ...Object.entries(r.commands).map(([k, v]) => `- ${k}: \`${v}\``), '');
  return lines.join('\n');
}

runBench(main, cleanup, 'the worker, the releases and the stack');
