import type { Client } from '@temporalio/client';
import { UserError, errorMessage } from '../errors';
import { resolveStackSettings, temporalAddress, uiUrl } from '../stack/settings';
import { connectClient } from '../temporal-connection';

export interface TemporalTarget {
  address: string;
  namespace: string;
  taskQueue: string;
  /** The Web UI, for links printed to operators. */
  uiUrl: string;
}

/**
 * Where the CLI finds Temporal: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / RUNBOOK_TASK_QUEUE when set, else
 * the embedded stack that `runbook up` started (its stack.json), else the defaults.
 */
export function temporalTarget(env: NodeJS.ProcessEnv): TemporalTarget {
  const settings = resolveStackSettings(env);
  return {
    address: env.TEMPORAL_ADDRESS || temporalAddress(settings),
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    uiUrl: (env.RUNBOOK_UI_URL || uiUrl(settings)).replace(/\/$/, ''),
  };
}

export const workflowLink = (t: TemporalTarget, workflowId: string) =>
  `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/workflows/${encodeURIComponent(workflowId)}`;

/** Runs `fn` with a connected client and closes it; an unreachable server is a UserError with the fix. */
export async function withClient<T>(
  env: NodeJS.ProcessEnv,
  fn: (client: Client, target: TemporalTarget) => Promise<T>,
): Promise<T> {
  const target = temporalTarget(env);
  let client: Client;
  try {
    client = await connectClient(target.address, target.namespace);
  } catch (err) {
    throw new UserError(
      `cannot reach Temporal at ${target.address}: ${errorMessage(err)}`,
      'start the stack with `runbook up --detach`, or set TEMPORAL_ADDRESS',
    );
  }
  try {
    return await fn(client, target);
  } finally {
    await client.connection.close();
  }
}

/** Running workflows of these kinds (RunbookKind) for a service+environment, from Temporal visibility. */
export async function runningRunbooks(
  client: Client,
  service: string,
  environment: string,
  kinds: readonly string[],
): Promise<string[]> {
  const ids: string[] = [];
  const query = `RunbookService = "${service}" AND RunbookEnvironment = "${environment}" AND ExecutionStatus = "Running" AND RunbookKind IN (${kinds.map((k) => `"${k}"`).join(', ')})`;
  for await (const wf of client.workflow.list({ query })) ids.push(wf.workflowId);
  return ids;
}
