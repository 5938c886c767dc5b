import { decisionSchema, type Decision, type GateName, type GatePolicy } from './deploy';

export type DecisionKind = 'approve' | 'reject' | 'signoff';

export type Judgement = { ok: true; decision: Decision; gate: GateName } | { ok: false; by: string; reason: string };

/**
 * Decides whether a person's approve / reject / signoff may count, by the same rules for the CLI's updates
 * (refused before they reach history) and the Web UI's signals (recorded as refused attempts):
 * a well-formed payload, the gate that is waiting, an allowed approver, and four-eyes.
 * Pure and synchronous: update validators call it.
 */
export function judgeDecision(
  kind: DecisionKind,
  payload: unknown,
  ctx: { policy: GatePolicy; requestedBy: string; waiting: GateName | undefined; what: string },
): Judgement {
  const parsed = decisionSchema.safeParse(payload);
  if (!parsed.success) {
    const by = typeof (payload as { by?: unknown })?.by === 'string' ? String((payload as { by: string }).by) : '?';
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ');
    return {
      ok: false,
      by,
      reason: `invalid ${kind} payload (${problems}); send {"by": "<name>", "gate": "<gate>", "note": "..."}`,
    };
  }
  const decision = parsed.data;
  const by = decision.by;
  if (!ctx.waiting) return { ok: false, by, reason: `${ctx.what} is not waiting for an approval now` };
  // signoff is the decision of the sign-off gates: a deploy's go-live, a restore drill's review.
  const signoffGate = ctx.waiting === 'drill-signoff' ? 'drill-signoff' : 'go-live';
  const gate = decision.gate ?? (kind === 'signoff' ? signoffGate : ctx.waiting);
  if (kind === 'signoff' && gate !== 'go-live' && gate !== 'drill-signoff') {
    return { ok: false, by, reason: `signoff is the go-live gate's decision; "${gate}" needs approve` };
  }
  if (gate !== ctx.waiting) {
    return { ok: false, by, reason: `gate "${gate}" is not waiting; ${ctx.what} waits for "${ctx.waiting}"` };
  }
  const isRequester = by === ctx.requestedBy;
  if (!ctx.policy.approvers.includes(by) && !(kind === 'reject' && isRequester)) {
    return {
      ok: false,
      by,
      reason: `${by} is not an approver of ${ctx.what} (allowed: ${ctx.policy.approvers.join(', ') || 'nobody'})`,
    };
  }
  if (kind !== 'reject' && ctx.policy.fourEyes && isRequester) {
    return {
      ok: false,
      by,
      reason: `four-eyes: ${by} requested ${ctx.what} and may not approve it; ask another approver`,
    };
  }
  return { ok: true, decision, gate };
}
