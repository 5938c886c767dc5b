import { ApplicationFailure, condition, setHandler } from '@temporalio/workflow';
import { judgeDecision, type DecisionKind } from '../shared/approvals';
import type { DeployPhase, GateName, GatePolicy, GateState, TimelineEntry } from '../shared/deploy';
import {
  approveSignal,
  approveUpdate,
  rejectSignal,
  rejectUpdate,
  signoffSignal,
  signoffUpdate,
} from '../shared/messages';

export const REJECTED = 'Rejected';

export interface GateHost {
  gates: GateState[];
  waitingFor?: { gate: GateName; approvers: string[]; sinceMs: number; timeoutMs: number };
  timeline: TimelineEntry[];
  phase: DeployPhase;
}

/**
 * Human gates shared by deploy, rollback and drill: registers the approve / reject / signoff signals and
 * updates (call before the first await), and returns `gate(name)`, which waits for a decision.
 * A refused signal (the Web UI cannot validate) is recorded on the gate and never counts; a refused update
 * is rejected by its validator and never reaches history.
 */
export function installGates(
  host: GateHost,
  policyFor: (gate: GateName) => GatePolicy,
  requestedBy: string,
  what: string,
) {
  const judge = (kind: DecisionKind, payload: unknown) => {
    const waiting = host.waitingFor?.gate;
    return judgeDecision(kind, payload, { policy: policyFor(waiting ?? 'before-start'), requestedBy, waiting, what });
  };

  const apply = (kind: DecisionKind, payload: unknown, via: 'update' | 'signal'): GateState => {
    const j = judge(kind, payload);
    const waiting = host.gates.find((g) => g.gate === host.waitingFor?.gate);
    if (!j.ok) {
      const target = waiting ?? host.gates[0];
      target?.refused.push({ by: j.by, atMs: Date.now(), reason: j.reason, via });
      host.timeline.push({ atMs: Date.now(), phase: host.phase, message: `refused ${kind} by ${j.by}: ${j.reason}` });
      if (via === 'update') throw ApplicationFailure.create({ type: 'DecisionRefused', message: j.reason });
      return target as GateState;
    }
    const gate = host.gates.find((g) => g.gate === j.gate) as GateState;
    gate.status = kind === 'reject' ? 'rejected' : 'approved';
    gate.decidedBy = j.decision.by;
    gate.decidedAtMs = Date.now();
    gate.note = j.decision.note;
    gate.via = via;
    host.timeline.push({
      atMs: Date.now(),
      phase: host.phase,
      message: `${j.gate} ${gate.status} by ${j.decision.by}${j.decision.note ? `: ${j.decision.note}` : ''}`,
    });
    return gate;
  };

  const validator = (kind: DecisionKind) => (payload: unknown) => {
    const j = judge(kind, payload);
    if (!j.ok) throw new Error(j.reason);
  };
  setHandler(approveSignal, (p) => void apply('approve', p, 'signal'));
  setHandler(rejectSignal, (p) => void apply('reject', p, 'signal'));
  setHandler(signoffSignal, (p) => void apply('signoff', p, 'signal'));
  setHandler(approveUpdate, (p) => apply('approve', p, 'update'), { validator: validator('approve') });
  setHandler(rejectUpdate, (p) => apply('reject', p, 'update'), { validator: validator('reject') });
  setHandler(signoffUpdate, (p) => apply('signoff', p, 'update'), { validator: validator('signoff') });

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
      approvers: policy.approvers.filter((a) => !(policy.fourEyes && a === requestedBy)),
      sinceMs,
      timeoutMs: policy.timeoutMs,
    };
    host.timeline.push({
      atMs: sinceMs,
      phase: host.phase,
      message: `waiting for ${name} approval from ${host.waitingFor.approvers.join(' or ')}`,
    });
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
        host.timeline.push({
          atMs: Date.now(),
          phase: host.phase,
          message: `${name}: no decision within the timeout, ${policy.onTimeout}`,
        });
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
