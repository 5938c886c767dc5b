/**
 * One replay scenario per workflow path: what `npm run test:upgrade` records with the previous release's code and
 * replays on the current code (scripts/replay-previous-release.ts). Names of test/replay/scenarios.ts; a name the
 * previous release does not have yet is reported and left out.
 */
export const upgradePaths = [
  // deployService: promoted; the judge rolls a canary back; a person rejects at a gate; an unjudged step approved;
  // HAProxy's cut-off takes a failing canary out
  'worker-plan-deploy-happy',
  'baseline-deploy-slower-canary-rolled-back',
  'worker-plan-deploy-rejected',
  'judged-deploy-unjudged-approved',
  'cutoff-deploy-canary-taken-out',
  // rollbackService with a database restore (four-eyes, safety snapshot, maintenance, swap)
  'worker-plan-rollback-db-restore',
  // restoreDrill by hand and from a signed schedule; pitrDrill; backupService; stackCheck
  'worker-plan-drill-passed',
  'signed-schedule-drill-passed',
  'pitr-drill-passed',
  'backup-full-verified-expired',
  'stack-check-happy',
];
