import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { errorMessage } from '../errors';
import type { DeployResult, DeployState } from '../shared/deploy';
import type { DrillResult, DrillState } from '../shared/drill';
import { statusQuery } from '../shared/messages';
import type { Io } from './command';
import { drillExitCode, drillSummary, outcomeExitCode, renderStatus, timelineLines } from './render';
import { workflowLink, type TemporalTarget } from './temporal';

/**
 * Follows a runbook until it ends: on a TTY the status is redrawn in place; piped, new timeline lines are
 * printed as they happen. Returns the outcome's exit code.
 */
export async function follow(
  handle: WorkflowHandle,
  target: TemporalTarget,
  io: Io,
  json: boolean,
  onState?: (state: DeployState) => Promise<void>,
): Promise<number> {
  const tty = !json && process.stdout.isTTY === true;
  let seen = 0;
  let drawn = 0;
  const desc = await handle.describe();
  const startMs = desc.startTime.getTime();
  const resultPromise = handle.result().then(
    (r: DeployResult) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  for (;;) {
    const state = await handle.query(statusQuery).catch(() => undefined);
    if (state && !json) {
      if (tty) {
        const lines = renderStatus(state, {
          workflowId: handle.workflowId,
          link: workflowLink(target, handle.workflowId),
          nowMs: Date.now(),
          startMs,
        });
        if (drawn > 0) process.stdout.write(`\x1b[${drawn}F\x1b[J`);
        process.stdout.write(`${lines.join('\n')}\n`);
        drawn = lines.length;
      } else {
        seen = printTimeline(io, state, seen);
      }
    }
    if (state && onState) await onState(state);
    const done = await Promise.race([
      resultPromise,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000)),
    ]);
    if (!done) continue;
    if (!done.ok) {
      const finalState = await handle.query(statusQuery).catch(() => undefined);
      if (finalState && !json && !tty) printTimeline(io, finalState, seen);
      const cancelled = /cancel/i.test(errorMessage(done.e));
      const error = failureMessage(done.e);
      if (json)
        io.out(
          JSON.stringify({
            workflowId: handle.workflowId,
            outcome: cancelled ? 'cancelled' : 'failed',
            error,
            state: finalState,
          }),
        );
      else io.out(`${handle.workflowId}: ${cancelled ? 'CANCELLED' : 'FAILED'}: ${error}`);
      return cancelled ? outcomeExitCode.cancelled : outcomeExitCode.failed;
    }
    const r = done.r;
    if (json) io.out(JSON.stringify({ workflowId: handle.workflowId, ...r }));
    else {
      if (!tty) printTimeline(io, r.state, seen);
      io.out(`${handle.workflowId}: ${r.outcome.toUpperCase()}: ${r.reason ?? ''}`);
      if (r.failedWindow) {
        const w = r.failedWindow;
        io.out(
          `  figures: ${w.requests} responses, ${w.errors5xx} 5xx (${(w.errorRate * 100).toFixed(2)}%), p95 ${w.p95Ms ?? '-'} ms at ${w.weight}%`,
        );
      }
      if (r.snapshotId && r.outcome !== 'succeeded')
        io.out(
          `  database snapshot before migration: ${r.snapshotId} (runbook rollback ${r.service} --restore-db ${r.snapshotId})`,
        );
    }
    return outcomeExitCode[r.outcome];
  }
}

/** Why a workflow failed: its failure's message (a refused request's reason), not the client's "execution failed". */
function failureMessage(err: unknown): string {
  if (err instanceof WorkflowFailedError && err.cause) return err.cause.message;
  return errorMessage(err);
}

/** Follows a drill until it ends, printing its timeline; returns the exit code of its verdict. */
export async function followDrill(handle: WorkflowHandle, io: Io, json: boolean): Promise<number> {
  let seen = 0;
  const print = (state: DrillState | undefined) => {
    if (!state || json) return;
    seen = printTimeline(io, state, seen);
  };
  const result = handle.result().then(
    (r: DrillResult) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  for (;;) {
    print((await handle.query(statusQuery).catch(() => undefined)) as DrillState | undefined);
    const done = await Promise.race([result, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000))]);
    if (!done) continue;
    if (done.ok) {
      print(done.r.state);
      if (json) io.out(JSON.stringify({ workflowId: handle.workflowId, ...done.r }));
      else for (const line of drillSummary(handle.workflowId, done.r)) io.out(line);
      return drillExitCode[done.r.outcome] ?? 1;
    }
    const state = (await handle.query(statusQuery).catch(() => undefined)) as DrillState | undefined;
    print(state);
    const cancelled = done.e instanceof WorkflowFailedError && /cancel/i.test(errorMessage(done.e.cause ?? done.e));
    if (json) {
      io.out(
        JSON.stringify({
          workflowId: handle.workflowId,
          outcome: cancelled ? 'cancelled' : 'failed',
          reason: state?.reason ?? failureMessage(done.e),
          state,
        }),
      );
    } else {
      io.out(`${handle.workflowId}: ${cancelled ? 'CANCELLED' : 'FAILED'}: ${state?.reason ?? failureMessage(done.e)}`);
      if (state?.drill.cleanup.length) io.out(`  cleanup: ${state.drill.cleanup.join('; ')}`);
    }
    return cancelled ? drillExitCode.cancelled! : drillExitCode.failed!;
  }
}

/** Prints the timeline entries added since `seen`; returns the new `seen`. */
function printTimeline(io: Io, state: DeployState, seen: number): number {
  const next = timelineLines(state, seen);
  for (const line of next.lines) io.out(line);
  return next.seen;
}
