import { metricMeter } from '@temporalio/workflow';
import type { Outcome } from '../shared/deploy';

/**
 * The runbooks' own metrics, emitted from workflow code through the SDK's metric meter: exported on the
 * worker's Prometheus endpoint next to the SDK's own, and skipped during replay (a replayed workflow does
 * not count twice).
 */
export const metrics = {
  outcome(kind: 'deploy' | 'rollback' | 'drill', service: string, environment: string, outcome: Outcome | string) {
    metricMeter
      .createCounter('runbook_outcomes', 'runbooks', 'Deploys, rollbacks and drills by outcome')
      .add(1, { kind, service, environment, outcome });
  },
  rollback(kind: 'automatic' | 'workflow', service: string, environment: string, seconds: number) {
    metricMeter
      .createHistogram(
        'runbook_rollback_seconds',
        'float',
        's',
        'Time to put traffic back on the stable release: from the failure to traffic back (automatic) or the whole rollback (workflow)',
      )
      .record(seconds, { kind, service, environment });
  },
  /** A restore drill's measured RTO, and whether it was over the service's target. */
  drill(service: string, environment: string, rtoSeconds: number, overTarget: boolean) {
    metricMeter
      .createHistogram(
        'runbook_drill_rto_seconds',
        'float',
        's',
        'RTO measured by restore drills (restore start to app ready)',
      )
      .record(rtoSeconds, { service, environment });
    if (overTarget) {
      metricMeter
        .createCounter('runbook_drill_over_target', 'drills', 'Restore drills whose RTO was over the target')
        .add(1, { service, environment });
    }
  },
  analysis(service: string, environment: string, verdict: string) {
    metricMeter
      .createCounter('runbook_analysis_decisions', 'windows', 'Canary analysis windows by verdict')
      .add(1, { service, environment, verdict });
  },
};
