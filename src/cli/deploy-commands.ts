import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { UserError, errorMessage } from '../errors';
import type { DecisionKind } from '../shared/approvals';
import type { DeployInput, DeployState, GateState, RollbackInput } from '../shared/deploy';
import { slug } from '../shared/ids';
import {
  RunbookEnvironment,
  RunbookKind,
  RunbookOutcome,
  RunbookPhase,
  RunbookService,
} from '../shared/search-attributes';
import { approveUpdate, rejectUpdate, signoffUpdate, statusQuery } from '../shared/messages';
import type { deployService, rollbackService } from '../workflows';
import type { Command, Io, ParsedArgs } from './command';
import {
  asOption,
  configOption,
  envOption,
  jsonOption,
  positional,
  reasonOption,
  required,
  SNAPSHOT_ID,
  whoAmI,
} from './options';
import { follow } from './follow';
import { checkVersion, resolvePlan } from './plan';
import { exitCodeHelp, renderStatus } from './render';
import { runningRunbooks, withClient, workflowLink } from './temporal';

/**
 * Starts a deploy or rollback after checking that none runs for the service+environment (the workflow's
 * lock is the guarantee; this check gives the clear error before anything starts), prints where to follow
 * it, and with --wait follows it to its outcome's exit code.
 */
async function startRunbook(
  io: Io,
  args: ParsedArgs,
  start: {
    workflowType: 'deployService' | 'rollbackService';
    workflowId: string;
    input: DeployInput | RollbackInput;
    service: string;
    environment: string;
  },
  what: string,
): Promise<number> {
  const { workflowId, service, environment } = start;
  return withClient(io.env, async (client, target) => {
    const running = await runningRunbooks(client, service, environment, ['deploy', 'rollback']);
    if (running.length > 0) {
      throw new UserError(
        `${service}/${environment} is busy: ${running.join(', ')} is running`,
        `wait for it (runbook watch ${running[0]}) or cancel it (runbook cancel ${running[0]})`,
      );
    }
    let handle: WorkflowHandle<typeof deployService | typeof rollbackService>;
    try {
      handle = await client.workflow.start(start.workflowType, {
        taskQueue: target.taskQueue,
        workflowId,
        args: [start.input],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw new UserError(`${workflowId} already exists`, 'run the command again');
      throw err;
    }
    if (!args.values.json) {
      io.out(`started ${workflowId}: ${what}`);
      io.out(`  watch:  runbook watch ${workflowId}`);
      io.out(`  Web UI: ${workflowLink(target, workflowId)}`);
    }
    if (!args.values.wait) {
      if (args.values.json) io.out(JSON.stringify({ workflowId, service, environment }));
      return 0;
    }
    return follow(handle, target, io, Boolean(args.values.json));
  });
}

export const deployCommand: Command = {
  name: 'deploy',
  summary: 'Start a deploy of a service version: snapshot, migrate, canary traffic with analysis, approvals, sign-off.',
  usage:
    'deploy <service> --version <v> [--env <e>] [--config <file>] [--as <name>] [--reason <text>] [--wait] [--json]',
  examples: [
    'runbook deploy shop --version v2 --env production --as dave --wait',
    'RUNBOOK_CONFIG=examples/runbook.yaml runbook deploy shop --version v2 --env staging',
  ],
  details: `The config is validated first: a bad file lists every problem and starts nothing.\n${exitCodeHelp} (with --wait)`,
  options: {
    version: {
      type: 'string',
      description: 'the release to deploy (its folder on single-host, its image tag on aws-ecs)',
    },
    ...envOption,
    ...configOption,
    ...asOption,
    ...reasonOption,
    wait: { type: 'boolean', description: 'follow the deploy live until it ends' },
    ...jsonOption,
  },
  async run(args, io) {
    const service = positional(args, 'service name', 'deploy');
    const version = required(args.values, 'version', 'deploy');
    const plan = resolvePlan(args.values, io.env, service);
    const { environment } = plan;
    checkVersion(plan, version, '--version');
    const input: DeployInput = {
      plan,
      version,
      requestedBy: whoAmI(args.values, io.env),
      ...(args.values.reason ? { reason: String(args.values.reason) } : {}),
    };
    const workflowId = `deploy-${slug(service)}-${slug(environment)}-${slug(version)}-${randomBytes(3).toString('hex')}`;
    return startRunbook(
      io,
      args,
      { workflowType: 'deployService', workflowId, input, service, environment },
      `${service} ${version} -> ${environment}`,
    );
  },
};

export const rollbackCommand: Command = {
  name: 'rollback',
  summary:
    'Roll a service back to the previous release that went live (or --to), and with --restore-db its database too.',
  usage:
    'rollback <service> [--env <e>] [--to <version>] [--restore-db <snapshot-id>] [--reason <text>] [--as <name>] [--wait] [--json]',
  examples: [
    'runbook rollback shop --env production --reason "checkout errors" --wait',
    'runbook rollback shop --env production --to v1 --restore-db shop-production-pre-migrate-1a2b3c4d --as dave --wait',
  ],
  details:
    'The plan (from, to, what happens to the database) is the first line it prints. A database restore loses the\n' +
    'writes since the snapshot: it is checked first (exists, belongs to the service, file whole), needs the\n' +
    'restore-database approval (rollback.dbRestoreApprovers, four-eyes), takes a safety snapshot, and runs in\n' +
    `maintenance (503 + Retry-After). ${exitCodeHelp} (with --wait)`,
  options: {
    ...envOption,
    to: { type: 'string', description: 'the version to go back to (default: the previous one that went live)' },
    'restore-db': { type: 'string', description: 'restore the database from this snapshot (destructive, approved)' },
    ...configOption,
    ...asOption,
    ...reasonOption,
    wait: { type: 'boolean', description: 'follow the rollback live until it ends' },
    ...jsonOption,
  },
  async run(args, io) {
    const service = positional(args, 'service name', 'rollback');
    const plan = resolvePlan(args.values, io.env, service);
    const { environment } = plan;
    const toVersion = args.values.to as string | undefined;
    if (toVersion) checkVersion(plan, toVersion, '--to');
    const snapshotId = args.values['restore-db'] as string | undefined;
    if (snapshotId !== undefined && !SNAPSHOT_ID.test(snapshotId)) {
      throw new UserError(
        `rollback: --restore-db ${JSON.stringify(snapshotId)} is not a snapshot id`,
        'snapshot ids look like shop-production-pre-migrate-1a2b3c4d (see the deploy result)',
      );
    }
    const input: RollbackInput = {
      plan,
      requestedBy: whoAmI(args.values, io.env),
      ...(toVersion ? { toVersion } : {}),
      ...(snapshotId ? { restoreSnapshotId: snapshotId } : {}),
      ...(args.values.reason ? { reason: String(args.values.reason) } : {}),
    };
    const workflowId = `rollback-${slug(service)}-${slug(environment)}-${randomBytes(3).toString('hex')}`;
    const what = `roll ${service}/${environment} back to ${toVersion ?? 'the previous release'}${snapshotId ? `, restoring the database from ${snapshotId}` : ''}`;
    return startRunbook(io, args, { workflowType: 'rollbackService', workflowId, input, service, environment }, what);
  },
};

function decisionCommand(kind: DecisionKind): Command {
  const update = { approve: approveUpdate, reject: rejectUpdate, signoff: signoffUpdate }[kind];
  const summary = {
    approve: 'Approve the gate a deploy or rollback is waiting at (before-start, before-traffic).',
    reject: 'Reject the gate a deploy or rollback is waiting at: it stops, and rolls back what it changed.',
    signoff: 'Give the go-live sign-off of a deploy.',
  }[kind];
  return {
    name: kind,
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
        let gate: GateState;
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

export const statusCommand: Command = {
  name: 'status',
  summary: 'Show where a deploy or rollback is: phase, traffic, analysis, gates, and who it waits for.',
  usage: 'status <workflow-id> [--json]',
  examples: [
    'runbook status deploy-shop-production-v2-1a2b3c',
    'runbook status deploy-shop-production-v2-1a2b3c --json | jq .weights',
  ],
  options: { ...jsonOption },
  async run(args, io) {
    const workflowId = positional(args, 'workflow id', 'status');
    return withClient(io.env, async (client, target) => {
      const handle = client.workflow.getHandle(workflowId);
      let state: DeployState;
      let startMs: number;
      try {
        startMs = (await handle.describe()).startTime.getTime();
        state = await handle.query(statusQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new UserError(`no workflow ${workflowId}`, 'runbook list shows the recent ones');
        throw new UserError(
          `cannot read the status of ${workflowId}: ${errorMessage(err)}`,
          'is a worker running? runbook doctor',
        );
      }
      if (args.values.json) io.out(JSON.stringify(state, null, 2));
      else
        for (const line of renderStatus(state, {
          workflowId,
          link: workflowLink(target, workflowId),
          nowMs: Date.now(),
          startMs,
        }))
          io.out(line);
      return 0;
    });
  },
};

export const watchCommand: Command = {
  name: 'watch',
  summary: 'Follow a deploy or rollback live until it ends (redrawn in place on a terminal, plain lines when piped).',
  usage: 'watch <workflow-id> [--json]',
  examples: [
    'runbook watch deploy-shop-production-v2-1a2b3c',
    'runbook watch deploy-shop-production-v2-1a2b3c | tee deploy.log',
  ],
  details: exitCodeHelp,
  options: { ...jsonOption },
  async run(args, io) {
    const workflowId = positional(args, 'workflow id', 'watch');
    return withClient(io.env, async (client, target) =>
      follow(client.workflow.getHandle(workflowId), target, io, Boolean(args.values.json)),
    );
  },
};

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'Cancel a deploy or rollback: it rolls back what it changed (non-cancellably), then ends as cancelled.',
  usage: 'cancel <workflow-id>',
  examples: ['runbook cancel deploy-shop-production-v2-1a2b3c'],
  options: {},
  async run(args, io) {
    const workflowId = positional(args, 'workflow id', 'cancel');
    return withClient(io.env, async (client) => {
      try {
        await client.workflow.getHandle(workflowId).cancel();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new UserError(`no running workflow ${workflowId}`, 'runbook list shows the running ones');
        throw err;
      }
      io.out(`cancellation requested for ${workflowId}; follow it with: runbook watch ${workflowId}`);
      return 0;
    });
  },
};

export const listCommand: Command = {
  name: 'list',
  summary: 'Recent and running deploys, rollbacks and drills, from Temporal visibility (search attributes).',
  usage: 'list [--service <s>] [--env <e>] [--kind deploy|rollback|drill] [--running] [--limit <n>] [--json]',
  examples: ['runbook list --service shop --running', 'runbook list --kind deploy --json | jq -r ".[].workflowId"'],
  options: {
    service: { type: 'string', description: 'only this service' },
    env: { type: 'string', description: 'only this environment' },
    kind: { type: 'string', description: 'deploy, rollback, drill or stack-check' },
    running: { type: 'boolean', description: 'only the running ones' },
    limit: { type: 'string', description: 'how many (default 20)' },
    ...jsonOption,
  },
  async run({ values }, io) {
    const limit = Number(values.limit ?? 20);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UserError(`list: --limit must be a whole number >= 1, got ${String(values.limit)}`);
    const quote = (flag: string, v: unknown) => {
      const s = String(v);
      if (!/^[A-Za-z0-9._-]+$/.test(s))
        throw new UserError(`list: --${flag} may hold letters, digits, '.', '_' and '-' only`);
      return `"${s}"`;
    };
    const clauses = ['RunbookKind IS NOT NULL'];
    if (values.service) clauses.push(`RunbookService = ${quote('service', values.service)}`);
    if (values.env) clauses.push(`RunbookEnvironment = ${quote('env', values.env)}`);
    if (values.kind) clauses.push(`RunbookKind = ${quote('kind', values.kind)}`);
    if (values.running) clauses.push('ExecutionStatus = "Running"');
    return withClient(io.env, async (client) => {
      const rows: Array<Record<string, string>> = [];
      for await (const wf of client.workflow.list({ query: clauses.join(' AND '), pageSize: limit })) {
        const get = (key: typeof RunbookKind) => wf.typedSearchAttributes.get(key) ?? '';
        rows.push({
          workflowId: wf.workflowId,
          kind: get(RunbookKind),
          service: get(RunbookService),
          environment: get(RunbookEnvironment),
          phase: get(RunbookPhase),
          outcome: get(RunbookOutcome) || (wf.status.name === 'RUNNING' ? 'running' : wf.status.name.toLowerCase()),
          started: wf.startTime.toISOString(),
        });
        if (rows.length >= limit) break;
      }
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) io.out('nothing found');
      else {
        io.out(
          `${'STARTED'.padEnd(20)} ${'KIND'.padEnd(11)} ${'SERVICE/ENV'.padEnd(24)} ${'OUTCOME'.padEnd(12)} ${'PHASE'.padEnd(18)} WORKFLOW ID`,
        );
        for (const r of rows) {
          io.out(
            `${r.started!.slice(0, 19).replace('T', ' ')} ${r.kind!.padEnd(11)} ${`${r.service}/${r.environment}`.padEnd(24)} ${r.outcome!.padEnd(12)} ${r.phase!.padEnd(18)} ${r.workflowId}`,
          );
        }
      }
      return 0;
    });
  },
};
