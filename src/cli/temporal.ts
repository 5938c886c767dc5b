import type { Client } from '@temporalio/client';
import { CODEC_KEYS_ENV, PayloadDecryptionError } from '../codec/aes-gcm-codec';
import { UserError, errorMessage } from '../errors';
import { resolveStackSettings, temporalAddress, uiUrl } from '../stack/settings';
import { connectClient, loadTemporalConnection, type TemporalConnection } from '../temporal-connection';
import { connectionFailure, explainCallError } from '../temporal-diagnosis';

export interface TemporalTarget {
  address: string;
  namespace: string;
  taskQueue: string;
  /** The Web UI, for links printed to operators. */
  uiUrl: string;
  /** How the CLI connects (mode, certificates, API key, codec). */
  connection: TemporalConnection;
}

/**
 * Where and how the CLI finds Temporal: the environment's TEMPORAL_* variables and the Temporal config file's
 * profile (envconfig, see loadTemporalConnection), else the embedded stack that `runbook up` started (its
 * stack.json), else the defaults. RUNBOOK_TASK_QUEUE and RUNBOOK_UI_URL as before.
 */
export function temporalTarget(env: NodeJS.ProcessEnv): TemporalTarget {
  const settings = resolveStackSettings(env);
  const connection = loadTemporalConnection(env, {
    address: temporalAddress(settings),
    namespace: settings.namespace,
    what: 'the embedded stack (stack.json)',
  });
  return {
    address: connection.address,
    namespace: connection.namespace,
    taskQueue: settings.taskQueue,
    uiUrl: (env.RUNBOOK_UI_URL || uiUrl(settings)).replace(/\/$/, ''),
    connection,
  };
}

export const workflowLink = (t: TemporalTarget, workflowId: string) =>
  `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/workflows/${encodeURIComponent(workflowId)}`;

/**
 * Runs `fn` with a connected client and closes it. An unreachable or refusing server, and a namespace that does
 * not exist, are a UserError that names the cause (expired certificate, unknown CA, ...) and the fix.
 */
export async function withClient<T>(
  env: NodeJS.ProcessEnv,
  fn: (client: Client, target: TemporalTarget) => Promise<T>,
): Promise<T> {
  const target = temporalTarget(env);
  let client: Client;
  try {
    client = await connectClient(target.connection);
  } catch (err) {
    const failure = await connectionFailure(err, target.connection);
    throw target.connection.source.startsWith('the embedded stack')
      ? new UserError(
          failure.message,
          'start the stack with `runbook up --detach`, or set TEMPORAL_ADDRESS (or a profile)',
        )
      : failure;
  }
  try {
    return await fn(client, target);
  } catch (err) {
    if (err instanceof UserError) throw err;
    const known = explainCallError(err, target.connection);
    if (known) throw new UserError(known.problem, known.fix);
    if (err instanceof PayloadDecryptionError) throw new UserError(err.message, `runbook doctor names the keys in use`);
    if (/Unknown encoding: binary\/encrypted/.test(errorMessage(err))) {
      throw new UserError(
        `the workflow's payloads are encrypted and ${CODEC_KEYS_ENV} is not set here`,
        `set ${CODEC_KEYS_ENV} to the worker's value (the keys stay with who may read the payloads)`,
      );
    }
    throw err;
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
