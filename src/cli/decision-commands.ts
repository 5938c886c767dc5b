/**
 * The decisions a person gives a waiting deploy or rollback: `runbook approve`, `reject` and `signoff`. Each is a
 * Temporal Update, so that a refused decision (unknown approver, four-eyes, wrong gate) comes back with its reason.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { UserError } from '../errors';
import type { DecisionKind } from '../shared/approvals';
import type { GateDecision } from '../shared/deploy';
import { approveUpdate, rejectUpdate, signoffUpdate } from '../shared/messages';
import type { Command } from './command';
import { asOption, jsonOption, positional, whoAmI } from './options';
import { withClient } from './temporal';

function decisionCommand(kind: DecisionKind): Command {
  const update = { approve: approveUpdate, reject: rejectUpdate, signoff: signoffUpdate }[kind];
  const summary = {
    approve: 'Approve the gate a deploy or rollback is waiting at (before-start, before-traffic).',
    reject: 'Reject the gate a deploy or rollback is waiting at: it stops, and rolls back what it changed.',
    signoff: 'Give the go-live sign-off of a deploy.',
  }[kind];
  return {
    name: kind,
    connectsToTemporal: true,
    summary,
    usage: `${kind} <workflow-id> --as <name> [--gate <gate>] [--note <text>]`,
    examples: [`runbook ${kind} deploy-shop-production-v2-1a2b3c --as alice --note "checked the dashboards"`],
    details:
      'The decision is validated before it is recorded: an unknown approver, the requester approving their own\n' +
      'deploy (four-eyes) or the wrong gate is refused with the reason, and nothing changes.',
    options: {
      ...asOption,
      gate: { type: 'string', description: 'the gate (default: the one it waits at)' },
      note: { type: 'string', description: 'a note recorded with the decision' },
      ...jsonOption,
    },
    async run(args, io) {
      const workflowId = positional(args, 'workflow id', kind);
      const payload = {
        by: whoAmI(args.values, io.env),
        ...(args.values.gate ? { gate: String(args.values.gate) } : {}),
        ...(args.values.note ? { note: String(args.values.note) } : {}),
      };
      return withClient(io.env, async (client) => {
        let gate: GateDecision;
        try {
          gate = await client.workflow.getHandle(workflowId).executeUpdate(update, { args: [payload] });
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
        if (args.values.json) io.out(JSON.stringify(gate));
        else io.out(`${workflowId}: ${gate.gate} ${gate.status} by ${gate.decidedBy}`);
        return 0;
      });
    },
  };
}

export const approveCommand = decisionCommand('approve');
export const rejectCommand = decisionCommand('reject');
export const signoffCommand = decisionCommand('signoff');
