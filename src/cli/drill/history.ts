/** `runbook drill history <service>`: the past drills as a table (or JSON), with where they were read from. */
import { formatMs } from '../../shared/drill';
import type { Io, ParsedArgs } from '../command';
import { loadDrillRecords, serviceAndEnv } from './records';

export async function drillHistory(args: ParsedArgs, io: Io): Promise<number> {
  const { service, environment, limit } = serviceAndEnv(args, io, 'history');
  const { records, source } = await loadDrillRecords(io.env, service, environment, limit);
  if (args.values.json) {
    io.out(JSON.stringify({ source, drills: records }, null, 2));
    return 0;
  }
  io.out(`source: ${source}`);
  if (records.length === 0) {
    io.out(`no drill of ${service}/${environment} yet: runbook drill ${service} --env ${environment} --wait`);
    return 0;
  }
  io.out(
    `${'STARTED (UTC)'.padEnd(17)} ${'OUTCOME'.padEnd(17)} ${'RTO'.padStart(8)} ${'TARGET'.padStart(8)} ${'SNAP AGE'.padStart(9)} ${'SIGNED OFF'.padEnd(11)} WORKFLOW ID`,
  );
  for (const r of records) {
    const s = (v: number | null) => (v === null ? '-' : formatMs(v * 1000));
    io.out(
      `${new Date(r.startedAtMs).toISOString().slice(0, 16).replace('T', ' ')} ${`${r.outcome}${r.overTarget ? ' (over)' : ''}`.padEnd(17)} ${s(r.rtoSeconds).padStart(8)} ${s(r.rtoTargetSeconds).padStart(8)} ${s(r.snapshotAgeSeconds).padStart(9)} ${(r.signedOffBy ?? '-').padEnd(11)} ${r.workflowId}`,
    );
    if (r.outcome === 'failed' && r.reason) io.out(`  ${r.reason}`);
  }
  return 0;
}
