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

/** What --help says of a start without --wait. */
export const TAKEN_HELP =
  'Without --wait it waits until the worker has taken the request (at most 30 s) and says as whom, or exits 5 with\n' +
  "the worker's refusal (a plan that is not the one you previewed, a missing or refused signature).";

/** What became of a request that was started without --wait, within the time given to the worker to take it. */
export type Taken =
  | { taken: 'accepted'; requester?: string }
  | { taken: 'refused'; reason: string }
  | { taken: 'not yet'; reason: string };

/**
 * Waits until the worker has taken a runbook it was sent (resolved the plan from its own config and established who
 * asked) or refused it (a plan that is not the one previewed, an unsigned or badly signed request), for at most
 * `timeoutMs`, so that a request the worker refuses is never reported as started. A worker that does not pick the
 * request up in that time is said, not waited for.
 */
export async function untilTaken(handle: WorkflowHandle, timeoutMs = 30_000): Promise<Taken> {
  const ended = handle.result().then(
    () => undefined,
    (e: unknown) => failureMessage(e),
  );
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = (await handle.query(statusQuery).catch(() => undefined)) as
      (DeployState & { requester?: { identity: string } }) | undefined;
    if (state?.requester) return { taken: 'accepted', requester: state.requester.identity };
    if (state?.outcome === 'failed') return { taken: 'refused', reason: state.reason ?? 'refused' };
    if (state && state.phase !== 'plan') return { taken: 'accepted' };
    const reason = await Promise.race([ended, new Promise<null>((r) => setTimeout(() => r(null), 500))]);
    if (typeof reason === 'string') return { taken: 'refused', reason };
    if (reason === undefined) return { taken: 'accepted' };
  }
  return {
    taken: 'not yet',
    reason: `no worker took it within ${Math.round(timeoutMs / 1000)} s: is a worker polling the task queue? (runbook doctor)`,
  };
}

/**
 * Without --wait: says whether the worker took the runbook ({@link untilTaken}) and returns the exit code: 0 taken (or
 * not picked up yet), 5 refused. With `json`, one object: the workflow id, `fields`, `taken` and the reason.
 */
export async function reportTaken(
  io: Io,
  handle: WorkflowHandle,
  json: boolean,
  fields: Record<string, unknown>,
): Promise<number> {
  const t = await untilTaken(handle);
  if (json) io.out(JSON.stringify({ workflowId: handle.workflowId, ...fields, ...t }));
  else if (t.taken === 'accepted')
    io.out(`  taken by the worker${t.requester ? `, requested by ${t.requester}` : ''}; it runs without you now`);
  else if (t.taken === 'refused') io.out(`${handle.workflowId}: REFUSED by the worker: ${t.reason}`);
  else io.out(`  note: ${t.reason}`);
  return t.taken === 'refused' ? outcomeExitCode.failed : 0;
}
