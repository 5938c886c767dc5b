import { randomBytes } from 'node:crypto';
import {
  DECISION_NAMESPACE,
  decisionMessage,
  DEFAULT_VALIDITY_MS,
  REQUEST_NAMESPACE,
  requestMessage,
  scheduleSubject,
  type RequestSignature,
  type SignedDecision,
} from '../shared/signed';
import { sshSign } from './ssh-keygen';

/** A fresh nonce: 16 random bytes, base64url (22 characters). */
export const newNonce = () => randomBytes(16).toString('base64url');

/**
 * A decision signed with `key` for one gate of one run (what `runbook approve` sends and `--print-signal` prints).
 * @throws UserError when ssh-keygen cannot sign.
 */
export async function signDecision(d: {
  workflowId: string;
  runId: string;
  kind: string;
  gate: SignedDecision['gate'];
  by: string;
  note?: string;
  key: string;
  env: NodeJS.ProcessEnv;
  validityMs?: number;
  nonce?: string;
  expiresAtMs?: number;
}): Promise<SignedDecision> {
  const nonce = d.nonce ?? newNonce();
  const expiresAtMs = d.expiresAtMs ?? Date.now() + (d.validityMs ?? DEFAULT_VALIDITY_MS);
  const fields = { by: d.by, gate: d.gate, ...(d.note ? { note: d.note } : {}), runId: d.runId, nonce, expiresAtMs };
  const message = decisionMessage({ ...fields, workflowId: d.workflowId, kind: d.kind });
  return { ...fields, signature: await sshSign(message, DECISION_NAMESPACE, d.key, d.env) };
}

/**
 * A start request with its requester's signature (`signed` added): for the workflow id it will start, or, with
 * `schedule`, a standing signature for every run that Temporal Schedule starts.
 * @throws UserError when ssh-keygen cannot sign.
 */
export async function signRequest<R extends object>(
  request: R,
  a: ({ workflowId: string } | { schedule: string }) & {
    kind: string;
    key: string;
    env: NodeJS.ProcessEnv;
    validityMs?: number;
  },
): Promise<R & { signed: RequestSignature }> {
  const unsigned = {
    nonce: newNonce(),
    expiresAtMs: Date.now() + (a.validityMs ?? DEFAULT_VALIDITY_MS),
    ...('schedule' in a ? { schedule: a.schedule } : {}),
  };
  const subject = 'schedule' in a ? scheduleSubject(a.schedule) : a.workflowId;
  const message = requestMessage(subject, a.kind, { ...request, signed: unsigned });
  const signature = await sshSign(message, REQUEST_NAMESPACE, a.key, a.env);
  return { ...request, signed: { ...unsigned, signature } };
}
