import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  patched,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { z } from 'zod';
import type { DeployState } from '../shared/deploy';
import type { ResolvedService } from '../shared/service-plan';
import {
  INVALID_REQUEST,
  RUNBOOK_CONFIG_UNUSABLE,
  parseRequest,
  type PlanRequest,
  type ResolvedPlan,
} from '../shared/request';
import {
  RunbookEnvironment,
  RunbookKind,
  RunbookOutcome,
  RunbookPhase,
  RunbookService,
} from '../shared/search-attributes';
import {
  MAX_SCHEDULE_VALIDITY_MS,
  MAX_VALIDITY_MS,
  REQUEST_NAMESPACE,
  requestMessage,
  scheduleSubject,
  SIGNATURES_REQUIRED,
  unverifiedIdentity,
  type Requester,
  type RequestSignature,
} from '../shared/signed';
import { act } from './activity-options';
import { SIGNED_DECISIONS } from './gates';

/**
 * The patch that moved the plan to the worker's side. With it (every new execution) a runbook's input is a request
 * and its first command resolves the plan from the worker's runbook config; without it (replaying a history recorded
 * before) the runbook runs the plan its input carried, as it did then.
 */
export const WORKER_RESOLVES_PLAN = 'worker-resolves-plan';

/**
 * The patch that lets a Temporal Schedule's runs carry the standing signature of the person who set the schedule up
 * (`runbook drill schedule --key`): verified as that person for a run the schedule started, refused for any other.
 * Before it, a request signed that way could not be sent (the schema had no `signed.schedule`).
 */
export const SIGNED_SCHEDULES = 'signed-schedules';

/** What every runbook request has. */
interface RequestBase {
  service: string;
  environment: string;
  requestedBy: string;
  reason?: string;
  configDigest: string;
  fieldDigests?: Record<string, string>;
  signed?: RequestSignature;
}

/** A runbook's validated request; `inputPlan` only when replaying a history from before WORKER_RESOLVES_PLAN. */
export interface Taken<R extends RequestBase> {
  request: R;
  inputPlan?: ResolvedService;
}

/**
 * The request of a runbook, validated before anything happens (call it first: it decides the patch). A request that
 * is malformed, or that carries a plan of any shape, fails the workflow with InvalidRequest (non-retryable) before
 * any command: nothing changes.
 */
export function takeRequest<S extends z.ZodType<RequestBase>>(
  schema: S,
  what: string,
  input: unknown,
): Taken<z.output<S>> {
  if (!patched(WORKER_RESOLVES_PLAN)) {
    const { plan } = input as { plan: ResolvedService };
    const request = { ...(input as object), service: plan.service, environment: plan.environment, configDigest: '' };
    return { request: request as z.output<S>, inputPlan: plan };
  }
  const parsed = parseRequest(schema, what, input);
  if (!parsed.ok)
    throw ApplicationFailure.create({ type: INVALID_REQUEST, message: parsed.message, nonRetryable: true });
  return { request: parsed.request };
}

/**
 * The plan the runbook runs: resolved by the worker from its runbook config (the resolvePlan activity, whose result
 * records the plan and its digest in the history; `state.config` shows where it came from), or the input's when
 * replaying an old history. Then the runbook's search attributes, from the plan. A refused request (wrong digest,
 * unknown service or environment, no usable config) ends the runbook as failed with the refusal, before anything
 * was touched: the search attributes say so (from the request), and the workflow fails non-retryably with the
 * refusal's type.
 */
export async function planOf<R extends RequestBase>(
  taken: Taken<R>,
  kind: 'deploy' | 'rollback' | 'drill',
  state: DeployState,
): Promise<ResolvedService> {
  const { request } = taken;
  const refused = (type: string, message: string): never => {
    state.outcome = 'failed';
    state.reason = message;
    state.phase = 'done';
    state.step = `refused: ${message}`;
    state.timeline.push({ atMs: Date.now(), phase: 'done', message: state.step });
    upsertSearchAttributes([
      { key: RunbookService, value: request.service },
      { key: RunbookEnvironment, value: request.environment },
      { key: RunbookKind, value: kind },
      { key: RunbookPhase, value: 'done' },
      { key: RunbookOutcome, value: 'failed' },
    ]);
    throw ApplicationFailure.create({ type, message, nonRetryable: true });
  };
  let plan = taken.inputPlan;
  if (!plan) {
    let resolved: ResolvedPlan;
    try {
      const ask: PlanRequest = {
        service: request.service,
        environment: request.environment,
        kind,
        configDigest: request.configDigest,
        ...(request.fieldDigests ? { fieldDigests: request.fieldDigests } : {}),
      };
      resolved = await act.resolvePlan(ask);
    } catch (err) {
      if (isCancellation(err)) throw err;
      const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      const message = cause?.message ?? (err instanceof Error ? err.message : String(err));
      return refused(cause?.type ?? RUNBOOK_CONFIG_UNUSABLE, message);
    }
    plan = resolved.plan;
    state.config = { source: resolved.source, digest: resolved.digest };
    state.timeline.push({
      atMs: Date.now(),
      phase: 'plan',
      message: `the worker resolved the plan from ${resolved.source} (${resolved.digest.slice(0, 19)}…)`,
    });
    if (patched(SIGNED_DECISIONS)) {
      const who = await requesterOf(request, kind, plan.signing ?? SIGNATURES_REQUIRED);
      if (!who.ok) return refused(INVALID_REQUEST, who.reason);
      state.requester = who.requester;
      const through = who.requester.schedule ? ` through schedule ${who.requester.schedule}` : '';
      state.timeline.push({
        atMs: Date.now(),
        phase: 'plan',
        message: `requested by ${who.requester.identity}${through}${who.requester.fingerprint ? ` (signed, ${who.requester.fingerprint})` : ' (unsigned)'}`,
      });
    }
  }
  upsertSearchAttributes([
    { key: RunbookService, value: plan.service },
    { key: RunbookEnvironment, value: plan.environment },
    { key: RunbookKind, value: kind },
    { key: RunbookPhase, value: 'plan' },
  ]);
  return plan;
}

/**
 * Who asked: the verified signer of the request (its signature covers this workflow id, the kind and every field of
 * the request, and expires), or, where the environment accepts unsigned requests (and for drills),
 * `unverified:<requestedBy>`.
 */
async function requesterOf(
  request: RequestBase,
  kind: string,
  signing: { unsigned: 'refuse' | 'accept-unverified' },
): Promise<{ ok: true; requester: Requester } | { ok: false; reason: string }> {
  const signed = request.signed;
  if (!signed) {
    // A drill restores into a scratch database and changes nothing live, and a schedule (which starts drills) cannot
    // sign: an unsigned drill request runs, as unverified. Its sign-off still needs a signed decision.
    if (signing.unsigned === 'refuse' && kind !== 'drill') {
      return {
        ok: false,
        reason:
          `unsigned ${kind} request: ${request.environment} takes only signed requests; \`runbook ${kind}\` signs ` +
          "with your SSH key (--key <file> or RUNBOOK_SIGNING_KEY; the key must be under signers: in the worker's runbook config)",
      };
    }
    return { ok: true, requester: { identity: unverifiedIdentity(request.requestedBy), verified: false } };
  }
  if (signed.schedule !== undefined && patched(SIGNED_SCHEDULES))
    return scheduledRequesterOf(request, kind, { ...signed, schedule: signed.schedule });
  const now = Date.now();
  if (signed.expiresAtMs <= now || signed.expiresAtMs > now + MAX_VALIDITY_MS)
    return { ok: false, reason: `the request's signature expired or is valid for more than 24 h; sign it again` };
  const v = await act.verifySignature({
    namespace: REQUEST_NAMESPACE,
    message: requestMessage(workflowInfo().workflowId, kind, request as unknown as Record<string, unknown>),
    signature: signed.signature,
    by: request.requestedBy,
  });
  if (!v.ok) return { ok: false, reason: `the request's signature is refused: ${v.reason}` };
  return { ok: true, requester: { identity: v.identity, fingerprint: v.fingerprint, verified: true } };
}

/**
 * The requester of a run that a Temporal Schedule started: the signer of the schedule's standing signature, which is
 * over `schedule:<id>`, the kind and every field of the request. It counts only for a drill, before its expiry, and
 * only where Temporal's own record of the schedule says it started this run (the activity asks; a copy of the signed
 * input started by hand, even under a schedule-like id, is refused).
 */
async function scheduledRequesterOf(
  request: RequestBase,
  kind: string,
  signed: RequestSignature & { schedule: string },
): Promise<{ ok: true; requester: Requester } | { ok: false; reason: string }> {
  const { workflowId, firstExecutionRunId } = workflowInfo();
  const again = `sign it again: runbook drill schedule ${request.service} --env ${request.environment} --key <your key>`;
  if (kind !== 'drill')
    return { ok: false, reason: `a schedule's signature counts only for drills, not for a ${kind} request` };
  const now = Date.now();
  if (signed.expiresAtMs <= now)
    return {
      ok: false,
      reason: `the schedule's signature expired at ${new Date(signed.expiresAtMs).toISOString()}; ${again}`,
    };
  if (signed.expiresAtMs > now + MAX_SCHEDULE_VALIDITY_MS)
    return { ok: false, reason: `the schedule's signature is valid for more than 400 days; ${again}` };
  const v = await act.verifySignature({
    namespace: REQUEST_NAMESPACE,
    message: requestMessage(scheduleSubject(signed.schedule), kind, request as unknown as Record<string, unknown>),
    signature: signed.signature,
    startedBy: { scheduleId: signed.schedule, workflowId, firstRunId: firstExecutionRunId },
  });
  if (!v.ok) return { ok: false, reason: `the schedule's signature is refused: ${v.reason}` };
  return {
    ok: true,
    requester: { identity: v.identity, fingerprint: v.fingerprint, verified: true, schedule: signed.schedule },
  };
}
