import { loadRunbookConfig } from '../runbook-config';
import { verifySshSignature } from '../signing/sshsig';
import type { VerifySignatureRequest, VerifySignatureResult } from '../shared/signed';
import type { PlanActivityDeps } from './plan';

/** What signing needs beyond the runbook config: Temporal's own record of what a schedule started. */
export interface SigningActivityDeps extends PlanActivityDeps {
  /**
   * Whether the Temporal Schedule `scheduleId` started the run (`workflowId`, `firstRunId`), as the server records it
   * (the schedule's running and recent actions). Undefined: this worker cannot ask, and no schedule's signature counts.
   */
  scheduleStarted?: (scheduleId: string, workflowId: string, firstRunId: string) => Promise<boolean>;
}

/**
 * Verifying signatures of requests and decisions, with node's crypto, against the allowed signers of the worker's
 * runbook config as it is now: a key removed from the config stops counting for the next decision, even in a runbook
 * that started before. An activity, not workflow code: the workflow sandbox has no crypto, and the result (recorded in
 * the history) makes the judgement replay the same.
 */
export function createSigningActivities({ runbookConfig, scheduleStarted }: SigningActivityDeps) {
  return {
    /**
     * Whether `signature` is a valid SSH signature of `message` in `namespace` by a key of the worker's allowed
     * signers, and as whom; with `startedBy` (a schedule's standing signature), also whether that schedule started
     * the run. Answers `{ ok: false, reason }` for a signature that does not count (never throws for one: a refusal
     * is not a failure to retry); throws only when the config cannot be read or Temporal cannot be asked (retried).
     */
    async verifySignature(req: VerifySignatureRequest): Promise<VerifySignatureResult> {
      if (!runbookConfig) return { ok: false, reason: 'this worker has no runbook config, so it knows no signers' };
      const { signers, source } = loadRunbookConfig(runbookConfig);
      if (signers.length === 0)
        return { ok: false, reason: `${source} lists no signers (signers: allowed_signers lines); nobody can sign` };
      const v = verifySshSignature(req.message, String(req.signature), req.namespace, signers);
      if (!v.ok) return v;
      const claimed = req.by?.trim().toLowerCase();
      if (claimed && !v.principals.includes(claimed)) {
        return {
          ok: false,
          reason: `key ${v.fingerprint} signs as ${v.principals.join(', ')}, not as ${claimed}`,
        };
      }
      if (req.startedBy) {
        const { scheduleId, workflowId, firstRunId } = req.startedBy;
        if (!workflowId.startsWith(`${scheduleId}-`))
          return {
            ok: false,
            reason: `the request is signed for the runs of schedule ${scheduleId}, not ${workflowId}`,
          };
        if (!scheduleStarted) return { ok: false, reason: 'this worker cannot ask Temporal what a schedule started' };
        if (!(await scheduleStarted(scheduleId, workflowId, firstRunId))) {
          return {
            ok: false,
            reason: `schedule ${scheduleId} did not start ${workflowId}: its signature counts only for the schedule's own runs`,
          };
        }
      }
      const identity = claimed ?? (v.principals[0] as string);
      return { ok: true, identity, principals: v.principals, fingerprint: v.fingerprint };
    },
  };
}
