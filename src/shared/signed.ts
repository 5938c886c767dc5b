import { z } from 'zod';
import { decisionSchema, gateNames } from './deploy';

/**
 * Signed requests and decisions (patch `signed-decisions`): what is signed, in which SSH signature namespace, and the
 * payload fields that carry it. Workflow-safe: the workflow builds the message it asks the worker to verify from its
 * own workflow id and run id, so a signature made for another run, gate or decision does not verify.
 */

/** The `ssh-keygen -Y sign -n` namespace of decisions: a signature for git (`-n git`) or a file never counts here. */
export const DECISION_NAMESPACE = 'runbook-decision@durable-runbooks';
/** The namespace of start requests (`runbook deploy|rollback|drill`). */
export const REQUEST_NAMESPACE = 'runbook-request@durable-runbooks';
/** The longest a signed decision or request may be valid (its expiry at most this far in the workflow's future). */
export const MAX_VALIDITY_MS = 24 * 3_600_000;
/** How long the CLI makes its signatures valid by default. */
export const DEFAULT_VALIDITY_MS = 10 * 60_000;
/**
 * The longest a schedule's standing signature may be valid: it signs the request that every run of a Temporal Schedule
 * sends (a weekly drill), so it lives as long as the schedule is meant to run without being signed again.
 */
export const MAX_SCHEDULE_VALIDITY_MS = 400 * 24 * 3_600_000;
/** How long `runbook drill schedule` makes its signature valid by default (then the runs are refused: sign again). */
export const DEFAULT_SCHEDULE_VALIDITY_MS = 90 * 24 * 3_600_000;
/** The nonces a workflow remembers (of accepted signed decisions); a runbook has at most a handful of gates. */
export const MAX_NONCES_KEPT = 64;
/** The prefix of an identity nobody proved: a name typed into an unsigned Web UI signal. */
export const UNVERIFIED = 'unverified:';
/** A signature as `ssh-keygen -Y sign` writes it (armored SSHSIG), bounded. */
export const MAX_SIGNATURE_LENGTH = 1_500;

/** What an environment accepts (runbook.yaml `signing:`); absent in plans resolved before signed decisions. */
export interface SigningPolicy {
  /** `refuse`: an unsigned decision or request is refused; `accept-unverified`: it counts as `unverified:<name>`. */
  unsigned: 'refuse' | 'accept-unverified';
  /** No identity (nor key) may decide two gates of one runbook. */
  distinctApprovers: boolean;
}

/** The default where a plan has no signing block (none before this patch): signatures required. */
export const SIGNATURES_REQUIRED: SigningPolicy = { unsigned: 'refuse', distinctApprovers: false };

/** Who asked for a runbook, as the workflow established it. */
export interface Requester {
  /** A verified principal (`alice`) or `unverified:<name>`. */
  identity: string;
  /** The key that signed the request (absent: unsigned). */
  fingerprint?: string;
  verified: boolean;
  /** The Temporal Schedule that started this run with the identity's standing signature (patch `signed-schedules`). */
  schedule?: string;
}

const nonce = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16,64}$/, 'a nonce of 16 to 64 letters, digits, _ or - (runbook approve makes one)');
const expiresAtMs = z.number().int().positive('the expiry in milliseconds since 1970');
const signature = z
  .string()
  .max(MAX_SIGNATURE_LENGTH, `a signature of at most ${MAX_SIGNATURE_LENGTH} characters`)
  .regex(/^-----BEGIN SSH SIGNATURE-----/, 'the armored output of ssh-keygen -Y sign');

/** The fields a signed decision adds to {by, gate, note}; `gate` is required in a signed one. */
export const signedDecisionSchema = decisionSchema
  .extend({
    gate: z.enum(gateNames, 'the gate the signature is for'),
    runId: z.string().min(1).max(64),
    nonce,
    expiresAtMs,
    signature,
  })
  .strict();
export type SignedDecision = z.infer<typeof signedDecisionSchema>;

/**
 * The fields a signed start request carries next to the request itself. `schedule`: the signature is a standing one,
 * for every run that this Temporal Schedule starts (its message names the schedule instead of a workflow id).
 */
export const requestSignatureSchema = z.strictObject({
  nonce,
  expiresAtMs,
  signature,
  schedule: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'the id of the Temporal Schedule the signature is for')
    .optional(),
});
export type RequestSignature = z.infer<typeof requestSignatureSchema>;

/**
 * The exact text a decision's signature is over: the workflow id and run id it is for, the decision, the gate, who,
 * the note, the nonce and the expiry. One line of JSON after a fixed header, so that `runbook approve` and the workflow
 * build the same bytes.
 */
export function decisionMessage(d: {
  workflowId: string;
  runId: string;
  kind: string;
  gate: string;
  by: string;
  note?: string;
  nonce: string;
  expiresAtMs: number;
}): string {
  return `runbook-decision v1\n${JSON.stringify([
    d.workflowId,
    d.runId,
    d.kind,
    d.gate,
    d.by,
    d.note ?? '',
    d.nonce,
    d.expiresAtMs,
  ])}\n`;
}

/**
 * The text a start request's signature is over: the workflow id it starts, the kind, the request's fields (in sorted
 * key order, `signed` left out) and the signature's nonce and expiry.
 */
export function requestMessage(workflowId: string, kind: string, request: Record<string, unknown>): string {
  const { signed, ...rest } = request as { signed?: { nonce?: unknown; expiresAtMs?: unknown } };
  const sorted = Object.keys(rest)
    .sort()
    .map((k) => [k, (rest as Record<string, unknown>)[k]]);
  return `runbook-request v1\n${JSON.stringify([workflowId, kind, sorted, signed?.nonce ?? null, signed?.expiresAtMs ?? null])}\n`;
}

/** What a schedule's standing signature is bound to in place of a workflow id: `schedule:<schedule id>`. */
export const scheduleSubject = (scheduleId: string) => `schedule:${scheduleId}`;

/** What the verifySignature activity is asked. */
export interface VerifySignatureRequest {
  namespace: string;
  message: string;
  signature: string;
  /** The name the signer claims; the identity when it is one of the key's principals. */
  by?: string;
  /**
   * A schedule's standing signature: it counts only for a run that this schedule started, as Temporal records it
   * (the schedule's running or recent actions name this workflow id and first run id).
   */
  startedBy?: { scheduleId: string; workflowId: string; firstRunId: string };
}

/** Its answer: recorded in the history, so that replay gives the same judgement. */
export type VerifySignatureResult =
  { ok: true; identity: string; principals: string[]; fingerprint: string } | { ok: false; reason: string };

/** The name part of an identity, lowercased (`unverified:Alice` and `alice` are both `alice`): what four-eyes compares. */
export function personOf(identity: string): string {
  const lower = identity.trim().toLowerCase();
  return lower.startsWith(UNVERIFIED) ? lower.slice(UNVERIFIED.length) : lower;
}

/** The identity of an unsigned decision or request where the environment accepts them: `unverified:<name>`. */
export function unverifiedIdentity(by: string): string {
  return `${UNVERIFIED}${by.trim().toLowerCase()}`;
}
