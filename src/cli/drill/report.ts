/** `runbook drill report <service>`: write the HTML report of the past drills. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { slug } from '../../shared/ids';
import type { Io, ParsedArgs } from '../command';
import { stringOpt } from '../options';
import { loadDrillRecords, serviceAndEnv } from './records';
import { renderDrillReport } from './report-html';

export async function drillReport(args: ParsedArgs, io: Io): Promise<number> {
  const { service, environment, limit, rtoTargetSeconds } = serviceAndEnv(args, io, 'report');
  const { records, source } = await loadDrillRecords(io.env, service, environment, limit);
  const out = path.resolve(stringOpt(args.values, 'out') ?? `drill-report-${slug(service)}-${slug(environment)}.html`);
  const html = renderDrillReport(records, {
    service,
    environment,
    source,
    generatedAtMs: Date.now(),
    rtoTargetSeconds,
  });
  writeFileSync(out, html);
  io.out(`wrote ${out}: ${records.length} drill(s) of ${service}/${environment} from ${source}`);
  return 0;
}
