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
