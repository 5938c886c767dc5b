/**
 * The decisions a person gives a waiting deploy, rollback or drill: `runbook approve`, `reject` and `signoff`. Each is
 * signed with the person's SSH key (ssh-keygen -Y sign: a key file, ssh-agent or a hardware token) for this workflow,
 * run, gate and decision, with a nonce and an expiry, and sent as a Temporal Update, so that a refused decision
 * (unsigned, wrong key, unknown approver, four-eyes, wrong gate) comes back with its reason. `--print-signal` prints
 * the signed payload for the Web UI's Signal dialog instead of sending it.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { UserError } from '../errors';
import { parseDuration } from '../runbook-config';
import type { DecisionKind } from '../shared/approvals';
import { gateNames, type GateDecision, type GateName } from '../shared/deploy';
import { approveUpdate, rejectUpdate, signoffUpdate, statusQuery } from '../shared/messages';
import { DEFAULT_VALIDITY_MS, MAX_VALIDITY_MS } from '../shared/signed';
import { signDecision } from '../signing/decisions';
import { SIGNING_KEY_ENV, signingKeyOf } from '../signing/ssh-keygen';
import type { Command } from './command';
import { asOption, jsonOption, keyOption, positional, whoAmI } from './options';
import { withClient } from './temporal';

/** The run and the gate a decision is for: the gate named, else the one the workflow waits at. */
async function targetOf(client: Client, workflowId: string, kind: DecisionKind, named: string | undefined) {
  if (named !== undefined && !(gateNames as readonly string[]).includes(named))
    throw new UserError(`--gate ${JSON.stringify(named)} is not a gate`, `use one of ${gateNames.join(', ')}`);
  const handle = client.workflow.getHandle(workflowId);
  let runId: string;
  let waiting: GateName | undefined;
  try {
    runId = (await handle.describe()).runId;
    waiting = (await handle.query(statusQuery)).waitingFor?.gate;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new UserError(`no workflow ${workflowId}`, 'runbook list shows the recent ones');
    throw err;
  }
  const gate = (named as GateName | undefined) ?? waiting;
  if (!gate)
    throw new UserError(`${workflowId} is not waiting at a gate`, `runbook status ${workflowId} shows where it is`);
  if (kind === 'signoff' && gate !== 'go-live' && gate !== 'drill-signoff')
    throw new UserError(
      `signoff is the go-live gate's decision; ${gate} needs approve`,
      `runbook approve ${workflowId}`,
    );
  return { handle, runId, gate };
}

function decisionCommand(kind: DecisionKind): Command {
  const update = { approve: approveUpdate, reject: rejectUpdate, signoff: signoffUpdate }[kind];
  const summary = {
    approve:
      'Approve the gate a deploy or rollback is waiting at (before-start, before-traffic), signed with your SSH key.',
    reject: 'Reject the gate a deploy or rollback is waiting at: it stops, and rolls back what it changed.',
    signoff: 'Give the go-live sign-off of a deploy (or a drill), signed with your SSH key.',
  }[kind];
  return {
    name: kind,
    connectsToTemporal: true,
    summary,
    usage: `${kind} <workflow-id> --as <name> [--key <ssh key>] [--gate <gate>] [--note <text>] [--valid-for <duration>] [--print-signal]`,
    examples: [
      `runbook ${kind} deploy-shop-production-v2-1a2b3c --as alice --key ~/.ssh/id_ed25519 --note "checked the dashboards"`,
      `runbook ${kind} deploy-shop-production-v2-1a2b3c --as alice --key ~/.ssh/id_ed25519.pub --print-signal   # key in ssh-agent; paste into the Web UI`,
    ],
    details:
      `The decision is signed (ssh-keygen -Y sign, as git signs commits) for this workflow, run, gate and decision,\n` +
      `with a nonce and an expiry (--valid-for, default 10m, at most 24h), with --key or ${SIGNING_KEY_ENV}: a private\n` +
      'key file, or the .pub of a key held by ssh-agent or a hardware token. The worker checks it against the signers\n' +
      'of its runbook config and records the verified identity and key fingerprint. It is validated before it is\n' +
      'recorded: an unsigned, wrongly signed, expired or replayed decision, an unknown approver, the requester approving\n' +
      'their own deploy (four-eyes, by name or by key) or the wrong gate is refused with the reason, and nothing\n' +
      'changes. Without a key the decision goes unsigned: only an environment with signing.unsigned: accept-unverified\n' +
      'counts it (as unverified:<name>). --print-signal prints the signed payload for the Web UI Signal dialog.',
    options: {
      ...asOption,
      ...keyOption,
      gate: { type: 'string', description: 'the gate (default: the one it waits at)' },
      note: { type: 'string', description: 'a note recorded with the decision' },
      'valid-for': { type: 'string', description: 'how long the signature is valid (default 10m, at most 24h)' },
      'print-signal': {
        type: 'boolean',
        description: "print the signed payload to paste into the Web UI's Signal dialog; send nothing",
      },
      ...jsonOption,
    },
    async run(args, io) {
      const workflowId = positional(args, 'workflow id', kind);
      const by = whoAmI(args.values, io.env);
      const note = args.values.note ? String(args.values.note) : undefined;
      const key = signingKeyOf(args.values.key, io.env);
      const validFor = args.values['valid-for']
        ? (parseDuration(String(args.values['valid-for'])) ?? -1)
        : DEFAULT_VALIDITY_MS;
      if (validFor <= 0 || validFor > MAX_VALIDITY_MS)
        throw new UserError(`--valid-for must be more than 0 and at most 24h`, 'e.g. --valid-for 30m');
      if (args.values['print-signal'] && !key)
        throw new UserError(
          '--print-signal prints a signed payload and needs your SSH key',
          `pass --key <private key file, or the .pub of a key in ssh-agent> or set ${SIGNING_KEY_ENV}`,
        );
      return withClient(io.env, async (client) => {
        const { handle, runId, gate } = await targetOf(
          client,
          workflowId,
          kind,
          args.values.gate ? String(args.values.gate) : undefined,
        );
        let payload: object;
        if (key) {
          payload = await signDecision({
            workflowId,
            runId,
            kind,
            gate,
            by,
            note,
            key,
            env: io.env,
            validityMs: validFor,
          });
        } else {
          io.err(
            `note: the ${kind} is not signed (no --key or ${SIGNING_KEY_ENV}); it counts only where unsigned decisions are accepted, as unverified:${by}`,
          );
          payload = { by, gate, ...(note ? { note } : {}) };
        }
        if (args.values['print-signal']) {
          if (args.values.json) io.out(JSON.stringify(payload));
          else {
            io.out(
              `In the Web UI, open ${workflowId} -> Send a Signal, name "${kind}", and paste this JSON as its input`,
            );
            io.out(
              `(valid until ${new Date(Date.now() + validFor).toISOString()}, for this run and the ${gate} gate only):`,
            );
            io.out(JSON.stringify(payload));
          }
          return 0;
        }
        let decided: GateDecision;
        try {
          decided = await handle.executeUpdate(update, { args: [payload] });
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) {
            throw new UserError(
              `${kind} refused: ${err.cause?.message ?? err.message}`,
              `runbook status ${workflowId}`,
            );
          }
          if (err instanceof WorkflowNotFoundError)
            throw new UserError(`no workflow ${workflowId}`, 'runbook list shows the recent ones');
          throw err;
        }
        if (args.values.json) io.out(JSON.stringify(decided));
        else {
          const proof = decided.fingerprint
            ? ` (verified, key ${decided.fingerprint})`
            : decided.verified === false
              ? ' (unverified)'
              : '';
          io.out(`${workflowId}: ${decided.gate} ${decided.status} by ${decided.decidedBy}${proof}`);
        }
        return 0;
      });
    },
  };
}

export const approveCommand = decisionCommand('approve');
export const rejectCommand = decisionCommand('reject');
export const signoffCommand = decisionCommand('signoff');
