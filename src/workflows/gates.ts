import { ApplicationFailure, condition, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  cutText,
  judgeDecision,
  judgePerson,
  judgeShape,
  MAX_REASON_LENGTH,
  MAX_REFUSALS_KEPT,
  shownName,
  type DecisionKind,
  type Judgement,
} from '../shared/approvals';
import type { DeployPhase, GateDecision, GateName, GatePolicy, GateState, TimelineEntry } from '../shared/deploy';
import {
  approveSignal,
  approveUpdate,
  rejectSignal,
  rejectUpdate,
  signoffSignal,
  signoffUpdate,
} from '../shared/messages';
import {
  DECISION_NAMESPACE,
  decisionMessage,
  MAX_NONCES_KEPT,
  SIGNATURES_REQUIRED,
  personOf,
  unverifiedIdentity as unverified,
  type Requester,
  type SigningPolicy,
} from '../shared/signed';
import { addToTimeline } from '../shared/timeline';
import { act } from './activity-options';

export const REJECTED = 'Rejected';

/**
 * The patch of the payload limits (size and pattern of every field, see shared/approvals.ts): a signal or update
 * that a workflow of before the limits accepted is judged by the old rules when its history is replayed.
 */
const BOUNDED_DECISIONS = 'bounded-decisions';

/**
 * The patch of signed decisions: a decision counts when its SSH signature (verified by the verifySignature activity,
 * against the worker's allowed signers as they are at that moment) proves who gave it, or, where the environment
 * accepts unsigned ones, as `unverified:<name>`; four-eyes compares identities and keys. Histories recorded before it
 * replay with the rules of then.
 */
export const SIGNED_DECISIONS = 'signed-decisions';

export interface GateHost {
  gates: GateState[];
  requester?: Requester;
  usedNonces?: string[];
  waitingFor?: { gate: GateName; approvers: string[]; sinceMs: number; timeoutMs: number };
  timeline: TimelineEntry[];
  phase: DeployPhase;
}

/**
 * Human gates shared by deploy, rollback and drill: registers the approve / reject / signoff signals and
 * updates (call before the first await), and returns `gate(name)`, which waits for a decision.
 * A refused signal (the Web UI cannot validate) is recorded on the gate and never counts; a refused update
 * is rejected by its validator and never reaches history. Whatever is sent, the state grows by a bounded amount:
 * a gate keeps its first MAX_REFUSALS_KEPT refused attempts (cut short) and counts the others, and the timeline
 * is capped (shared/timeline.ts).
 */
export function installGates(
  host: GateHost,
  policyFor: (gate: GateName) => GatePolicy,
  requestedBy: string,
  what: string,
  signingFor: () => SigningPolicy | undefined = () => undefined,
) {
  const signedDecisions = patched(SIGNED_DECISIONS);
  const note = (message: string) => addToTimeline(host.timeline, { atMs: Date.now(), phase: host.phase, message });
  const judge = (kind: DecisionKind, payload: unknown, unbounded = false) => {
    const waiting = host.waitingFor?.gate;
    return judgeDecision(kind, payload, {
      policy: policyFor(waiting ?? 'before-start'),
      requestedBy,
      waiting,
      what,
      unbounded,
    });
  };
  /** Refused attempts with no gate to be recorded on (a drill without a sign-off): counted for the timeline. */
  let refusedWithoutGate = 0;

  const refuse = (kind: DecisionKind, j: Extract<Judgement, { ok: false }>, via: 'update' | 'signal') => {
    const target = host.gates.find((g) => g.gate === host.waitingFor?.gate) ?? host.gates[0];
    const count = target ? (target.refusedCount = (target.refusedCount ?? 0) + 1) : ++refusedWithoutGate;
    if (target && target.refused.length < MAX_REFUSALS_KEPT)
      target.refused.push({ by: j.by, atMs: Date.now(), reason: j.reason, via });
    if (count <= MAX_REFUSALS_KEPT) note(`refused ${kind} by ${j.by}: ${j.reason}`);
    else if (count === MAX_REFUSALS_KEPT + 1)
      note(`more refused attempts${target ? ` at ${target.gate}` : ''} are counted, not listed (refusedCount)`);
    return target;
  };

  const apply = (kind: DecisionKind, payload: unknown, via: 'update' | 'signal'): GateState | undefined => {
    const j = judge(kind, payload, !patched(BOUNDED_DECISIONS));
    if (!j.ok) {
      const target = refuse(kind, j, via);
      if (via === 'update') throw ApplicationFailure.create({ type: 'DecisionRefused', message: j.reason });
      return target;
    }
    const gate = host.gates.find((g) => g.gate === j.gate) as GateState;
    gate.status = kind === 'reject' ? 'rejected' : 'approved';
    gate.decidedBy = j.decision.by;
    gate.decidedAtMs = Date.now();
    gate.note = j.decision.note;
    gate.via = via;
    note(`${j.gate} ${gate.status} by ${j.decision.by}${j.decision.note ? `: ${j.decision.note}` : ''}`);
    return gate;
  };
  const signing = () => signingFor() ?? SIGNATURES_REQUIRED;
  const requester = (): Requester => host.requester ?? { identity: unverified(requestedBy), verified: false };
  const shape = (kind: DecisionKind, payload: unknown) =>
    judgeShape(kind, payload, {
      waiting: host.waitingFor?.gate,
      what,
      runId: workflowInfo().runId,
      nowMs: Date.now(),
      usedNonces: host.usedNonces ?? [],
      signing: signing(),
    });
  const person = (kind: DecisionKind, gate: GateName, who: { identity: string; fingerprint?: string }) =>
    judgePerson(kind, who, {
      policy: policyFor(gate),
      requester: requester(),
      gate,
      what,
      distinctApprovers: signing().distinctApprovers,
      decided: host.gates,
    });
  /** The first synchronous judgement; for an unsigned decision it is the whole judgement (validators use it). */
  const firstLook = (kind: DecisionKind, payload: unknown): Judgement => {
    const s = shape(kind, payload);
    if (!s.ok || s.signed) return s.ok ? { ok: true, decision: s.decision, gate: s.gate } : s;
    const p = person(kind, s.gate, { identity: unverified(s.decision.by) });
    return p.ok
      ? { ok: true, decision: s.decision, gate: s.gate }
      : { ok: false, by: shownName(s.decision.by), reason: p.reason };
  };
  /**
   * Signed decisions: the shape first (as the validator did), then the signature (an activity: its result is in the
   * history), then the shape again (the gate may have been decided and the nonce used meanwhile), then the person.
   */
  const applySigned = async (kind: DecisionKind, payload: unknown, via: 'update' | 'signal') => {
    const fail = (j: Extract<Judgement, { ok: false }>) => {
      const target = refuse(kind, j, via);
      if (via === 'update') throw ApplicationFailure.create({ type: 'DecisionRefused', message: j.reason });
      return target;
    };
    const first = shape(kind, payload);
    if (!first.ok) return fail(first);
    const by = shownName(first.decision.by);
    let who: { identity: string; fingerprint?: string } = { identity: unverified(first.decision.by) };
    if (first.signed) {
      const { workflowId, runId } = workflowInfo();
      const s = first.signed;
      const v = await act.verifySignature({
        namespace: DECISION_NAMESPACE,
        message: decisionMessage({
          workflowId,
          runId,
          kind,
          gate: s.gate,
          by: s.by,
          note: s.note,
          nonce: s.nonce,
          expiresAtMs: s.expiresAtMs,
        }),
        signature: s.signature,
        by: s.by,
      });
      if (!v.ok) return fail({ ok: false, by, reason: cutText(`signature refused: ${v.reason}`, MAX_REASON_LENGTH) });
      const again = shape(kind, payload);
      if (!again.ok) return fail(again);
      who = { identity: v.identity, fingerprint: v.fingerprint };
    }
    const p = person(kind, first.gate, who);
    if (!p.ok) return fail({ ok: false, by: shownName(who.identity), reason: p.reason });
    if (first.signed) {
      const nonces = (host.usedNonces ??= []);
      nonces.push(first.signed.nonce);
      if (nonces.length > MAX_NONCES_KEPT) nonces.shift();
    }
    const gate = host.gates.find((g) => g.gate === first.gate) as GateState;
    gate.status = kind === 'reject' ? 'rejected' : 'approved';
    gate.decidedBy = who.identity;
    gate.decidedAtMs = Date.now();
    gate.note = first.decision.note;
    gate.via = via;
    gate.verified = first.signed !== undefined;
    if (who.fingerprint) gate.fingerprint = who.fingerprint;
    const proof = who.fingerprint ? ` (signed, ${who.fingerprint})` : ' (unsigned)';
    note(
      `${first.gate} ${gate.status} by ${who.identity}${proof}${first.decision.note ? `: ${first.decision.note}` : ''}`,
    );
    return gate;
  };

  /** An update's answer: the decision, never the refused attempts (they would make every answer as big as they are). */
  const decide =
    (kind: DecisionKind) =>
    async (payload: unknown): Promise<GateDecision> => {
      const state = signedDecisions ? await applySigned(kind, payload, 'update') : apply(kind, payload, 'update');
      const { refused: _refused, refusedCount: _refusedCount, ...decision } = state as GateState;
      return decision;
    };

  const validator = (kind: DecisionKind) => (payload: unknown) => {
    const j = signedDecisions ? firstLook(kind, payload) : judge(kind, payload);
    if (!j.ok) throw new Error(j.reason);
  };
  /**
   * A signal cannot be refused before it is recorded, and an error thrown here would fail the workflow task on every
   * attempt (or, as an ApplicationFailure, the workflow): whatever goes wrong judging it becomes a refusal.
   */
  const onSignal = (kind: DecisionKind) => async (payload: unknown) => {
    try {
      if (signedDecisions) await applySigned(kind, payload, 'signal');
      else apply(kind, payload, 'signal');
    } catch (err) {
      refuse(
        kind,
        { ok: false, by: '?', reason: cutText(`could not judge it: ${String(err)}`, MAX_REASON_LENGTH) },
        'signal',
      );
    }
  };
  setHandler(approveSignal, onSignal('approve'));
  setHandler(rejectSignal, onSignal('reject'));
  setHandler(signoffSignal, onSignal('signoff'));
  setHandler(approveUpdate, decide('approve'), { validator: validator('approve') });
  setHandler(rejectUpdate, decide('reject'), { validator: validator('reject') });
  setHandler(signoffUpdate, decide('signoff'), { validator: validator('signoff') });

  /**
   * Waits at a gate (skipped when the policy does not list it). `whileWaiting` runs every `everyMs` during
   * the wait (the deploy keeps analysing the canary while it waits for the go-live sign-off); an error it
   * throws ends the wait. Throws an ApplicationFailure of type Rejected on reject or timeout-with-abort.
   */
  async function gate(name: GateName, opts: { whileWaiting?: () => Promise<void>; everyMs?: number } = {}) {
    const state = host.gates.find((g) => g.gate === name);
    if (!state) return;
    const policy = policyFor(name);
    if (!policy.gates.includes(name)) {
      state.status = 'skipped';
      return;
    }
    state.status = 'waiting';
    const sinceMs = Date.now();
    host.waitingFor = {
      gate: name,
      approvers: policy.approvers.filter(
        (a) =>
          !(
            policy.fourEyes &&
            (signedDecisions ? a.toLowerCase() === personOf(requester().identity) : a === requestedBy)
          ),
      ),
      sinceMs,
      timeoutMs: policy.timeoutMs,
    };
    note(`waiting for ${name} approval from ${host.waitingFor.approvers.join(' or ')}`);
    try {
      const decided = () => state.status !== 'waiting';
      let timedOut = false;
      if (opts.whileWaiting && opts.everyMs) {
        while (!decided()) {
          const left = sinceMs + policy.timeoutMs - Date.now();
          if (left <= 0) {
            timedOut = true;
            break;
          }
          if (!(await condition(decided, Math.min(opts.everyMs, left)))) await opts.whileWaiting();
        }
      } else {
        timedOut = !(await condition(decided, policy.timeoutMs));
      }
      if (timedOut) {
        state.status = policy.onTimeout === 'proceed' ? 'proceeded-on-timeout' : 'timed-out';
        note(`${name}: no decision within the timeout, ${policy.onTimeout}`);
        if (policy.onTimeout === 'abort') {
          throw ApplicationFailure.create({
            type: REJECTED,
            message: `${name} approval timed out`,
            nonRetryable: true,
          });
        }
      } else if ((state.status as GateState['status']) === 'rejected') {
        throw ApplicationFailure.create({
          type: REJECTED,
          message: `${name} rejected by ${state.decidedBy}${state.note ? `: ${state.note}` : ''}`,
          nonRetryable: true,
        });
      }
    } finally {
      host.waitingFor = undefined;
    }
  }

  return { gate };
}
