import { z } from 'zod';
import {
  decisionSchema,
  gateNames,
  MAX_DECISION_PAYLOAD,
  MAX_NAME_LENGTH,
  MAX_NOTE_LENGTH,
  type Decision,
  type GateName,
  type GatePolicy,
} from './deploy';
import { UnreadablePayload } from './payload-converter';
import {
  MAX_VALIDITY_MS,
  personOf,
  signedDecisionSchema,
  type Requester,
  type SignedDecision,
  type SigningPolicy,
} from './signed';

export type DecisionKind = 'approve' | 'reject' | 'signoff';

/** `by` is what the attempt is shown under: the name it came with, cut to MAX_NAME_LENGTH ("?" without one). */
export type Judgement = { ok: true; decision: Decision; gate: GateName } | { ok: false; by: string; reason: string };

/** The refused attempts a gate keeps (the first ones); the others are only counted (`refusedCount`). */
export const MAX_REFUSALS_KEPT = 20;
/** The longest reason a refused attempt is stored and answered with. */
export const MAX_REASON_LENGTH = 500;

const PAYLOAD_HINT =
  `send {"by": "<name>", "gate": "<gate>", "note": "..."} (a name of at most ${MAX_NAME_LENGTH} characters, ` +
  `a note of at most ${MAX_NOTE_LENGTH})`;

/**
 * The payload rules of the workflows that ran before the limits (patch `bounded-decisions`): a signal that such a
 * workflow accepted must be accepted again when its history is replayed.
 */
const unboundedDecisionSchema = z
  .object({
    by: z.string().trim().min(1, 'say who decides: "by": "<your name>"'),
    gate: z.enum(gateNames).optional(),
    note: z.string().max(2000).optional(),
  })
  .strict();

/**
 * Decides whether a person's approve / reject / signoff may count, by the same rules for the CLI's updates
 * (refused before they reach history) and the Web UI's signals (recorded as refused attempts):
 * a well-formed payload of bounded size, the gate that is waiting, an allowed approver, and four-eyes.
 * A payload larger than MAX_DECISION_PAYLOAD is refused before it is parsed, and no reason repeats more than
 * MAX_NAME_LENGTH characters of what was sent, so that judging a huge payload costs little and its refusal is small.
 * Pure and synchronous: update validators call it. `unbounded` applies the rules of before the limits (replay).
 */
export function judgeDecision(
  kind: DecisionKind,
  payload: unknown,
  ctx: { policy: GatePolicy; requestedBy: string; waiting: GateName | undefined; what: string; unbounded?: boolean },
): Judgement {
  const refuse = (by: string, reason: string): Judgement => ({ ok: false, by, reason: boundText(reason) });
  if (payload instanceof UnreadablePayload)
    return refuse('?', `${kind} payload that cannot be read (${payload.problem}); ${PAYLOAD_HINT} as JSON`);
  if (!ctx.unbounded) {
    const size = jsonSizeUpTo(payload, MAX_DECISION_PAYLOAD);
    if (size > MAX_DECISION_PAYLOAD)
      return refuse(nameOf(payload), `${kind} payload larger than ${MAX_DECISION_PAYLOAD} characters; ${PAYLOAD_HINT}`);
  }
  const parsed = (ctx.unbounded ? unboundedDecisionSchema : decisionSchema).safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${shownName(i.path.join('.')) || 'payload'}: ${i.message}`)
      .join('; ');
    return refuse(nameOf(payload), `invalid ${kind} payload (${problems}); ${PAYLOAD_HINT}`);
  }
  const decision = parsed.data;
  const by = shownName(decision.by);
  if (!ctx.waiting) return refuse(by, `${ctx.what} is not waiting for an approval now`);
  // signoff is the decision of the sign-off gates: a deploy's go-live, a restore drill's review.
  const signoffGate = ctx.waiting === 'drill-signoff' ? 'drill-signoff' : 'go-live';
  const gate = decision.gate ?? (kind === 'signoff' ? signoffGate : ctx.waiting);
  if (kind === 'signoff' && gate !== 'go-live' && gate !== 'drill-signoff') {
    return refuse(by, `signoff is the go-live gate's decision; "${gate}" needs approve`);
  }
  if (gate !== ctx.waiting) {
    return refuse(by, `gate "${gate}" is not waiting; ${ctx.what} waits for "${ctx.waiting}"`);
  }
  const isRequester = decision.by === ctx.requestedBy;
  if (!ctx.policy.approvers.includes(decision.by) && !(kind === 'reject' && isRequester)) {
    return refuse(
      by,
      `${by} is not an approver of ${ctx.what} (allowed: ${ctx.policy.approvers.join(', ') || 'nobody'})`,
    );
  }
  if (kind !== 'reject' && ctx.policy.fourEyes && isRequester) {
    return refuse(by, `four-eyes: ${by} requested ${ctx.what} and may not approve it; ask another approver`);
  }
  return { ok: true, decision, gate };
}

/** The first judgement of a decision under signed decisions: its shape, its gate, and (when signed) its signature. */
export type ShapeJudgement =
  { ok: true; decision: Decision; gate: GateName; signed?: SignedDecision } | { ok: false; by: string; reason: string };

const SIGNED_HINT = (kind: DecisionKind) =>
  `sign it: \`runbook ${kind} <workflow-id>\` signs with your SSH key (--key or RUNBOOK_SIGNING_KEY), and ` +
  `\`runbook ${kind} <workflow-id> --print-signal\` prints a signed payload for the Web UI's Signal dialog`;

/**
 * What can be judged of a decision before its signature is checked (synchronous: update validators call it, and the
 * workflow calls it again once the signature is verified): a readable, bounded payload; the gate that waits; for a
 * signed one, this run's id, an expiry in the future (by workflow time) and at most MAX_VALIDITY_MS away, and a nonce
 * this workflow has not used; an unsigned one only where the environment accepts unverified decisions.
 */
export function judgeShape(
  kind: DecisionKind,
  payload: unknown,
  ctx: {
    waiting: GateName | undefined;
    what: string;
    runId: string;
    nowMs: number;
    usedNonces: readonly string[];
    signing: SigningPolicy;
  },
): ShapeJudgement {
  const refuse = (by: string, reason: string): ShapeJudgement => ({ ok: false, by, reason: boundText(reason) });
  if (payload instanceof UnreadablePayload)
    return refuse('?', `${kind} payload that cannot be read (${payload.problem}); ${PAYLOAD_HINT} as JSON`);
  if (jsonSizeUpTo(payload, MAX_DECISION_PAYLOAD) > MAX_DECISION_PAYLOAD)
    return refuse(nameOf(payload), `${kind} payload larger than ${MAX_DECISION_PAYLOAD} characters; ${PAYLOAD_HINT}`);
  const isSigned = typeof payload === 'object' && payload !== null && 'signature' in payload;
  if (!isSigned && ctx.signing.unsigned === 'refuse')
    return refuse(nameOf(payload), `unsigned ${kind}: ${ctx.what} takes only signed decisions; ${SIGNED_HINT(kind)}`);
  const parsed = (isSigned ? signedDecisionSchema : decisionSchema).safeParse(payload);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) => `${shownName(i.path.join('.')) || 'payload'}: ${i.message}`)
      .join('; ');
    const hint = isSigned ? `a signed ${kind} is what \`runbook ${kind} --print-signal\` prints` : PAYLOAD_HINT;
    return refuse(nameOf(payload), `invalid ${kind} payload (${problems}); ${hint}`);
  }
  const decision = parsed.data;
  const by = shownName(decision.by);
  const gate = gateOf(kind, decision.gate, ctx.waiting, ctx.what);
  if (!gate.ok) return refuse(by, gate.reason);
  if (!isSigned) return { ok: true, decision, gate: gate.gate };
  const signed = decision as SignedDecision;
  if (signed.runId !== ctx.runId)
    return refuse(by, `signed for run ${shownName(signed.runId)}, not this run (${ctx.runId}); sign for this run`);
  if (signed.expiresAtMs <= ctx.nowMs)
    return refuse(by, `the signature expired at ${iso(signed.expiresAtMs)} (now ${iso(ctx.nowMs)}); sign again`);
  if (signed.expiresAtMs > ctx.nowMs + MAX_VALIDITY_MS)
    return refuse(by, `the signature is valid until ${iso(signed.expiresAtMs)}: more than 24 h ahead; sign again`);
  if (ctx.usedNonces.includes(signed.nonce))
    return refuse(by, `nonce ${signed.nonce} was used already (a replayed decision); sign a new one`);
  return { ok: true, decision, gate: gate.gate, signed };
}

/**
 * Whether an identity (verified, or `unverified:<name>`) may decide: an approver of the gate (names compared without
 * case and without the `unverified:` prefix), not the requester under four-eyes (by name, or by key: the requester's
 * own key under another name is the requester), and, with `distinctApprovers`, nobody who decided another gate.
 */
export function judgePerson(
  kind: DecisionKind,
  who: { identity: string; fingerprint?: string },
  ctx: {
    policy: GatePolicy;
    requester: Requester;
    gate: GateName;
    what: string;
    distinctApprovers: boolean;
    decided: ReadonlyArray<{ gate: GateName; status: string; decidedBy?: string; fingerprint?: string }>;
  },
): { ok: true } | { ok: false; reason: string } {
  const refuse = (reason: string) => ({ ok: false as const, reason: boundText(reason) });
  const person = personOf(who.identity);
  const shown = shownName(who.identity);
  const sameKey = (fp?: string) => fp !== undefined && fp === who.fingerprint;
  const isRequester = person === personOf(ctx.requester.identity) || sameKey(ctx.requester.fingerprint);
  const approvers = ctx.policy.approvers.map((a) => a.toLowerCase());
  if (!approvers.includes(person) && !(kind === 'reject' && isRequester))
    return refuse(
      `${shown} is not an approver of ${ctx.what} (allowed: ${ctx.policy.approvers.join(', ') || 'nobody'})`,
    );
  if (kind !== 'reject' && ctx.policy.fourEyes && isRequester) {
    const how = person === personOf(ctx.requester.identity) ? '' : ` (with the requester's key ${who.fingerprint})`;
    return refuse(`four-eyes: ${shown} requested ${ctx.what}${how} and may not approve it; ask another approver`);
  }
  if (kind !== 'reject' && ctx.distinctApprovers) {
    const other = ctx.decided.find(
      (g) =>
        g.gate !== ctx.gate &&
        g.status === 'approved' &&
        g.decidedBy !== undefined &&
        (personOf(g.decidedBy) === person || sameKey(g.fingerprint)),
    );
    if (other) return refuse(`distinct approvers: ${shown} decided ${other.gate} already; ask another approver`);
  }
  return { ok: true };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The gate a decision is for: the one named, else the waiting one (signoff: the sign-off gate); it must be waiting. */
function gateOf(
  kind: DecisionKind,
  named: GateName | undefined,
  waiting: GateName | undefined,
  what: string,
): { ok: true; gate: GateName } | { ok: false; reason: string } {
  if (!waiting) return { ok: false, reason: `${what} is not waiting for an approval now` };
  const signoffGate = waiting === 'drill-signoff' ? 'drill-signoff' : 'go-live';
  const gate = named ?? (kind === 'signoff' ? signoffGate : waiting);
  if (kind === 'signoff' && gate !== 'go-live' && gate !== 'drill-signoff')
    return { ok: false, reason: `signoff is the go-live gate's decision; "${gate}" needs approve` };
  if (gate !== waiting) return { ok: false, reason: `gate "${gate}" is not waiting; ${what} waits for "${waiting}"` };
  return { ok: true, gate };
}

/**
 * How a name that came with a message is shown (refused attempts, reasons): at most MAX_NAME_LENGTH characters
 * (a cut one ends in '…'), control and bidirectional-override characters replaced by '?'.
 */
export function shownName(name: string): string {
  const cut = name.length > MAX_NAME_LENGTH ? `${name.slice(0, MAX_NAME_LENGTH - 1)}…` : name;
  return cut.replace(UNPRINTABLE, '?');
}

/** Text cut to `max` characters (ending in '…' when cut). */
export function cutText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const boundText = (reason: string) => cutText(reason, MAX_REASON_LENGTH);

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

/** The `by` of any payload, shown bounded; "?" when it has none. */
function nameOf(payload: unknown): string {
  const by = typeof payload === 'object' && payload !== null ? (payload as { by?: unknown }).by : undefined;
  return typeof by === 'string' && by.trim() !== '' ? shownName(by.trim()) : '?';
}

/**
 * The length of `value` as JSON, counted only up to `limit` (anything larger gives `limit + 1`). Walks the value
 * without recursion and stops as soon as the limit is passed, so a huge or deeply nested payload costs little.
 */
export function jsonSizeUpTo(value: unknown, limit: number): number {
  let size = 0;
  const todo: unknown[] = [value];
  while (todo.length > 0 && size <= limit) {
    const v = todo.pop();
    if (typeof v === 'string') size += v.length + 2;
    else if (v === null || typeof v !== 'object') size += String(v).length;
    else if (Array.isArray(v)) {
      size += 1 + Math.max(1, v.length);
      for (let i = 0; i < v.length && todo.length + size <= limit; i++) todo.push(v[i]);
    } else {
      size += 1;
      for (const key in v) {
        if (!Object.prototype.hasOwnProperty.call(v, key)) continue;
        size += key.length + 4;
        if (size > limit) break;
        todo.push((v as Record<string, unknown>)[key]);
      }
    }
  }
  return Math.min(size, limit + 1);
}
