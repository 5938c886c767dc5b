import type { DeployState, GateState, Outcome, StepEvidence } from '../shared/deploy';
import { formatMs, type DrillResult, type DrillState } from '../shared/drill';
import { scrubSecrets } from '../shared/redact';
import { timelineSince } from '../shared/timeline';

/** Exit codes of `deploy --wait`, `watch` and `rollback --wait`: one per outcome, documented in --help. */
export const outcomeExitCode: Record<Outcome | 'passed', number> = {
  succeeded: 0,
  passed: 0,
  'rolled-back': 3,
  rejected: 4,
  failed: 5,
  cancelled: 6,
};
export const exitCodeHelp =
  'Exit codes: 0 succeeded (a drill: passed), 3 rolled back, 4 rejected (or approval timed out), 5 failed, 6 cancelled, 2 usage error.';

/** Exit codes of `drill --wait`. */
export const drillExitCode: Record<string, number> = { passed: 0, failed: 5, cancelled: 6 };

const duration = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
};

/**
 * One gate's decision for the audit: who (the verified identity, or unverified:<name>), with which key, when, how
 * (CLI or Web UI), and the note.
 */
export function auditLine(g: GateState): string {
  const proof = g.fingerprint ? `verified, key ${g.fingerprint}` : 'UNVERIFIED: unsigned';
  const when = g.decidedAtMs ? ` at ${new Date(g.decidedAtMs).toISOString()}` : '';
  const via = g.via === 'signal' ? 'Web UI' : 'CLI';
  return `${g.gate} ${g.status} by ${g.decidedBy} (${proof}) via ${via}${when}${g.note ? ` "${g.note}"` : ''}`;
}

function gateLine(g: GateState, nowMs: number, waitingSince?: number): string {
  switch (g.status) {
    case 'approved':
    case 'rejected':
      return `${g.gate}: ${g.status} by ${g.decidedBy}${g.via === 'signal' ? ' (Web UI)' : ''}${g.note ? ` "${g.note}"` : ''}`;
    case 'waiting':
      return `${g.gate}: WAITING ${waitingSince ? duration(nowMs - waitingSince) : ''}`;
    default:
      return `${g.gate}: ${g.status}`;
  }
}

/**
 * The status of a deploy or rollback as lines for a person: steps done / running with elapsed time /
 * waiting for whom / failed, the traffic split and the latest analysis figures.
 */
export function renderStatus(
  s: DeployState,
  opts: {
    workflowId: string;
    link: string;
    nowMs: number;
    startMs?: number;
    /** The execution's status when it is closed (TERMINATED, FAILED, ...), from `describe()`. */
    closedAs?: string;
  },
): string[] {
  const lines: string[] = [];
  lines.push(
    `${s.kind} ${s.service} ${s.version} -> ${s.environment}   (${opts.workflowId}, requested by ${s.requestedBy})`,
  );
  const stopped = opts.closedAs !== undefined && opts.closedAs !== 'RUNNING' && !s.outcome;
  if (stopped) {
    // Terminated by an operator or by the server (a history over its limit): no rollback ran, no outcome was set.
    lines.push(
      `stopped: the workflow is ${opts.closedAs}; it ran no rollback and stands where shown below ` +
        `(why: its last event, ${opts.link}); to put traffic back: runbook rollback ${s.service} --env ${s.environment}`,
    );
  }
  const elapsed = opts.startMs ? `  elapsed ${duration(opts.nowMs - opts.startMs)}` : '';
  lines.push(
    s.outcome
      ? `outcome: ${s.outcome.toUpperCase()}: ${scrubSecrets(s.reason ?? '')}`
      : `phase:   ${s.phase}: ${s.step}${elapsed}`,
  );
  const weights = Object.entries(s.weights);
  if (weights.length > 0)
    lines.push(
      `traffic: ${weights.map(([v, w]) => `${v} ${w}%`).join(' | ')}${s.trafficStep ? `   (step ${s.trafficStep.index}/${s.trafficStep.of})` : ''}`,
    );
  const drill = s.kind === 'drill' ? (s as DrillState).drill : undefined;
  if (drill) {
    const snap = drill.snapshot
      ? `${drill.snapshot.snapshotId} (${formatMs(drill.snapshot.ageMs)} old)`
      : 'not picked yet';
    const rto =
      drill.rtoMs === undefined
        ? `target ${formatMs(drill.rtoTargetMs)}`
        : `${formatMs(drill.rtoMs)}, target ${formatMs(drill.rtoTargetMs)}${drill.overTargetByMs !== undefined ? ` (OVER by ${formatMs(drill.overTargetByMs)})` : ''}`;
    lines.push(`drill:   snapshot ${snap} -> ${drill.scratchDatabase}; RTO ${rto}`);
    if (s.candidate && !s.outcome)
      lines.push(`app:     ${s.version} on ${s.candidate.host}:${s.candidate.port} (not routed)`);
  }
  if (s.baseline) {
    lines.push(
      `baseline: ${s.baseline.releaseId} (${s.baseline.version}, the judge's comparison side)${s.baseline.running ? ` on ${s.baseline.host}:${s.baseline.port}` : ', stopped'}`,
    );
  }
  const last = s.analysis.at(-1);
  if (last) {
    lines.push(
      `analysis: ${last.requests} responses, ${last.errors5xx} 5xx (${(last.errorRate * 100).toFixed(2)}%), p95 ${last.p95Ms === null ? '-' : `${Math.round(last.p95Ms)} ms`}: ${last.verdict}${last.because ? ` (${last.because})` : ''}`,
    );
  }
  if (last?.compare?.errors || last?.compare?.latency) {
    const c = last.compare;
    const against = c.against === 'baseline' ? `baseline ${s.baseline?.releaseId ?? ''}`.trimEnd() : 'stable';
    lines.push(
      `judge:   vs ${against} since the step began: ${c.canary.errors}/${c.canary.requests} vs ${c.stable.errors}/${c.stable.requests} errors` +
        `${c.errors ? ` (Fisher p=${c.errors.pValue.toPrecision(2)}, alpha ${c.errors.alpha.toPrecision(2)})` : ''}` +
        `, p95 ${c.canary.p95Ms ?? '-'} vs ${c.stable.p95Ms ?? '-'} ms${c.latency?.pValue != null ? ` (Mann-Whitney p=${c.latency.pValue.toPrecision(2)})` : ''}: ${c.verdict}`,
    );
  } else if (last?.compare) {
    lines.push(`judge:   ${last.compare.verdict}${last.compare.because ? ` (${last.compare.because})` : ''}`);
  }
  for (const st of s.steps ?? []) lines.push(`step ${st.step} ${st.weight}%: ${stepEvidenceLine(st)}`);
  const shown = s.gates.filter((g) => g.status !== 'pending' || s.waitingFor?.gate === g.gate);
  if (shown.length > 0)
    lines.push(`gates:   ${shown.map((g) => gateLine(g, opts.nowMs, s.waitingFor?.sinceMs)).join(' · ')}`);
  if (s.requester)
    lines.push(
      `requester: ${s.requester.identity}${s.requester.schedule ? ` through schedule ${s.requester.schedule}` : ''}${s.requester.fingerprint ? ` (verified, key ${s.requester.fingerprint})` : ' (unverified: unsigned request)'}`,
    );
  for (const g of s.gates) {
    if (g.verified !== undefined && g.decidedBy) lines.push(`decision: ${auditLine(g)}`);
  }
  for (const g of s.gates) {
    for (const r of g.refused.slice(-3)) lines.push(`refused: ${r.by} via ${r.via}: ${r.reason}`);
    const count = g.refusedCount ?? g.refused.length;
    const listed = count > g.refused.length ? `the first ${g.refused.length}` : 'them';
    if (count > 3) lines.push(`refused: ${count} attempts at ${g.gate} in all (runbook status --json lists ${listed})`);
  }
  if (s.waitingFor && !stopped) {
    const who = s.waitingFor.approvers.join(', ');
    const verb = s.waitingFor.gate === 'go-live' ? 'signoff' : 'approve';
    lines.push(
      `waiting for ${s.waitingFor.gate} from ${who} (times out in ${duration(s.waitingFor.sinceMs + s.waitingFor.timeoutMs - opts.nowMs)}):`,
    );
    if (s.requester) {
      // Signed decisions: the CLI signs; the Web UI takes the payload the CLI prints.
      lines.push(
        `  runbook ${verb} ${opts.workflowId} --as <name> --key <ssh key>   (or: runbook reject ${opts.workflowId} ...)`,
      );
      lines.push(
        `  Web UI: ${opts.link}  -> Send a Signal "${verb}" with the output of: runbook ${verb} ${opts.workflowId} --as <name> --key <ssh key> --print-signal`,
      );
    } else {
      lines.push(
        `  runbook ${verb} ${opts.workflowId} --as <name>        (or: runbook reject ${opts.workflowId} --as <name>)`,
      );
      lines.push(
        `  Web UI: ${opts.link}  -> Send a Signal "${verb}" with {"by": "<name>", "gate": "${s.waitingFor.gate}", "note": "..."}`,
      );
    }
  }
  if (s.snapshotId) lines.push(`snapshot: ${s.snapshotId}`);
  return lines;
}

/**
 * The timeline entries added after the first `seen` ones, as plain lines (for piped output), scrubbed of credentials
 * (the worker scrubs what it records; a history from an older version may not be), and the new `seen`. A long
 * timeline keeps its first and last entries (shared/timeline.ts): its omission line is shown once, in place of the
 * entries it stands for.
 */
export function timelineLines(s: DeployState, seen: number): { lines: string[]; seen: number } {
  const since = timelineSince(s.timeline, seen);
  return {
    lines: since.entries.map(
      (t) => `${new Date(t.atMs).toISOString().slice(11, 19)} [${t.phase}] ${scrubSecrets(t.message)}`,
    ),
    seen: since.seen,
  };
}

/** The lines of a finished drill for a person: verdict, RTO vs target, RPO, integrity, phases. */
export function drillSummary(workflowId: string, r: DrillResult): string[] {
  const d = r.drill;
  const lines = [`${workflowId}: ${r.outcome.toUpperCase()}: ${r.reason}`];
  if (d.rtoMs !== undefined) {
    lines.push(
      `  RTO ${formatMs(d.rtoMs)} (target ${formatMs(d.rtoTargetMs)}${d.overTargetByMs !== undefined ? `, OVER by ${formatMs(d.overTargetByMs)}` : ', within'})` +
        (d.snapshot ? `   snapshot age (RPO) ${formatMs(d.snapshot.ageMs)}: ${d.snapshot.snapshotId}` : ''),
    );
  } else if (d.snapshot) {
    lines.push(`  snapshot ${d.snapshot.snapshotId}, ${formatMs(d.snapshot.ageMs)} old`);
  }
  const i = d.integrity;
  const checks = [
    i.amcheck ? `amcheck ${i.amcheck.ok ? 'ok' : 'CORRUPTION'}` : undefined,
    i.manifest
      ? `manifest ${i.manifest.ok ? `ok (${i.manifest.tables} tables, ${i.manifest.rows} rows)` : 'MISMATCH'}`
      : undefined,
    i.schema
      ? `schema ${i.schema.ok ? 'ok' : i.schema.migrated ? `${i.schema.pending.length} migration(s) behind, migrated` : 'MISMATCH'}`
      : undefined,
    i.command ? `${i.command.command.join(' ')} ${i.command.ok ? 'ok' : 'FAILED'}` : undefined,
  ].filter(Boolean);
  if (checks.length > 0) lines.push(`  integrity: ${checks.join(', ')}`);
  const notes = i.command?.notes.trimEnd().split('\n').slice(-5) ?? [];
  if (notes.length > 0 && notes[0] !== '') lines.push(`  integrity notes:\n${notes.map((l) => `    ${l}`).join('\n')}`);
  if (d.phases.length > 0)
    lines.push(
      `  phases: ${d.phases.map((p) => `${p.phase} ${p.ms === undefined ? '?' : formatMs(p.ms)}`).join(' · ')}`,
    );
  if (d.cleanup.length > 0) lines.push(`  cleanup: ${d.cleanup.join('; ')}`);
  return lines;
}

/** One traffic step's evidence for a person: how much the canary answered, against what it needed, and the decision. */
export function stepEvidenceLine(st: StepEvidence): string {
  if (st.status === 'not-baked') return 'not baked (the plan gives it no bake time)';
  const figures =
    `${st.requests} canary requests (${st.needed} needed), ${st.errors5xx} 5xx, ${st.connectionErrors} connection errors; ` +
    `${st.against ? `baseline ${st.against}` : 'stable'} ${st.stableRequests} requests, ${st.stableErrors} errors; ${st.conclusive}/${st.windows} windows conclusive` +
    `${st.extendedMs ? `; extended ${Math.round(st.extendedMs / 1000)}s` : ''}`;
  const verdict: Record<StepEvidence['status'], string> = {
    baking: 'baking',
    judged: 'JUDGED',
    failed: 'FAILED',
    approved: 'UNJUDGED',
    proceeded: 'UNJUDGED',
    'not-baked': 'not baked',
  };
  return `${verdict[st.status]}: ${figures}${st.unjudged ? ` (${st.unjudged})` : ''}`;
}
