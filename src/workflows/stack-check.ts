import { proxyActivities, setHandler, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { RunbookKind, RunbookOutcome, RunbookPhase } from '../shared/search-attributes';
import {
  stackCheckStatusQuery,
  type StackCheckInput,
  type StackCheckResult,
  type StackCheckState,
} from '../shared/stack-check';
import { quick } from './activity-options';

const { checkDatabase, checkTrafficRouter } = proxyActivities<Activities>(quick);

/**
 * Proves the stack end to end: a worker reaches PostgreSQL and HAProxy, holds on a durable timer, and checks
 * again (whichever worker is alive by then). `runbook up` and the tests run it.
 */
export async function stackCheck(input: StackCheckInput = {}): Promise<StackCheckResult> {
  const state: StackCheckState = { phase: 'checking' };
  setHandler(stackCheckStatusQuery, () => state);
  const enter = (phase: StackCheckState['phase']) => {
    state.phase = phase;
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };
  upsertSearchAttributes([
    { key: RunbookKind, value: 'stack-check' },
    { key: RunbookPhase, value: state.phase },
  ]);

  state.database = await checkDatabase();
  state.trafficRouter = await checkTrafficRouter();
  if (input.hold) {
    enter('holding');
    await sleep(input.hold);
  }
  enter('rechecking');
  state.rechecked = await checkDatabase();
  enter('done');
  upsertSearchAttributes([{ key: RunbookOutcome, value: 'succeeded' }]);
  return {
    database: state.database,
    trafficRouter: state.trafficRouter,
    rechecked: state.rechecked,
    outcome: 'succeeded',
  };
}
