/**
 * The verbs that start a release runbook: `runbook deploy` and `runbook rollback`. Both check the arguments and
 * the config before anything starts, refuse a busy service+environment, and with --wait follow it to its end.
 */
import { randomBytes } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { UserError } from '../errors';
import { slug } from '../shared/ids';
import {
  deployRequestSchema,
  rollbackRequestSchema,
  SNAPSHOT_ID,
  type DeployRequest,
  type RollbackRequest,
} from '../shared/request';
import type { deployService, rollbackService } from '../workflows';
import type { Command, Io, ParsedArgs } from './command';
import { follow, reportTaken, TAKEN_HELP } from './follow';
import {
  asOption,
  configOption,
  dryRunOption,
  envOption,
  jsonOption,
  keyOption,
  positional,
  reasonOption,
  required,
  signedRequest,
  whoAmI,
} from './options';
import { checkVersion } from '../platforms/preflight';
import { dryRun } from './dry-run';
import { checkedRequest, previewed, resolvePlan } from './plan';
import { exitCodeHelp } from './render';
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
    input: DeployRequest | RollbackRequest;
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
    if (!args.values.wait) return reportTaken(io, handle, Boolean(args.values.json), { service, environment });
    return follow(handle, target, io, Boolean(args.values.json));
  });
}

export const deployCommand: Command = {
  name: 'deploy',
  connectsToTemporal: true,
  summary: 'Start a deploy of a service version: snapshot, migrate, canary traffic with analysis, approvals, sign-off.',
  usage:
    'deploy <service> --version <v> [--env <e>] [--config <file>] [--as <name>] [--reason <text>] [--migrations backward|breaking] [--wait | --dry-run] [--json]',
  examples: [
    'runbook deploy shop --version v2 --env production --dry-run',
    'runbook deploy shop --version v2 --env production --as dave --wait',
    'RUNBOOK_CONFIG=examples/runbook.yaml runbook deploy shop --version v2 --env staging',
  ],
  details:
    'The config is validated first: a bad file lists every problem and starts nothing. The worker runs the plan of\n' +
    'ITS runbook config (RUNBOOK_CONFIG on the worker): the deploy sends the digest of the plan you see, and the worker\n' +
    "refuses it (PlanDigestMismatch, naming the fields) when its plan differs. --dry-run shows the worker's plan\n" +
    '(gates, approvers, traffic, commands, database, platform) and whether it is yours: exit 0 when it is, 1 otherwise.\n' +
    `${exitCodeHelp} (with --wait)\n${TAKEN_HELP}`,
  options: {
    version: {
      type: 'string',
      description: 'the release to deploy (its folder on single-host, its image tag on aws-ecs)',
    },
    ...envOption,
    ...configOption,
    ...asOption,
    ...keyOption,
    ...reasonOption,
    migrations: {
      type: 'string',
      description:
        "this version's migrations are backward compatible (expand-only) or breaking (an app-only rollback across this deploy is then refused); default: the environment's database.compatibility",
    },
    wait: { type: 'boolean', description: 'follow the deploy live until it ends' },
    ...dryRunOption,
    ...jsonOption,
  },
  async run(args, io) {
    const service = positional(args, 'service name', 'deploy');
    const version = required(args.values, 'version', 'deploy');
    const requestedBy = whoAmI(args.values, io.env);
    if (args.values['dry-run']) {
      return dryRun(
        io,
        args,
        'deploy',
        service,
        (environment) => `deploy ${service} ${version} to ${environment}, requested by ${requestedBy}`,
        (plan) => checkVersion(plan, version, '--version'),
      );
    }
    const plan = resolvePlan(args.values, io.env, service);
    const { environment } = plan;
    checkVersion(plan, version, '--version');
    const input = checkedRequest(deployRequestSchema, 'deploy', {
      service,
      environment,
      version,
      requestedBy,
      ...(args.values.reason ? { reason: String(args.values.reason) } : {}),
      ...(args.values.migrations ? { migrations: String(args.values.migrations) } : {}),
      ...previewed(plan),
    });
    const workflowId = `deploy-${slug(service)}-${slug(environment)}-${slug(version)}-${randomBytes(3).toString('hex')}`;
    const signed = await signedRequest(input, { workflowId, kind: 'deploy', values: args.values, io });
    return startRunbook(
      io,
      args,
      { workflowType: 'deployService', workflowId, input: signed, service, environment },
      `${service} ${version} -> ${environment}`,
    );
  },
};

export const rollbackCommand: Command = {
  name: 'rollback',
  connectsToTemporal: true,
  summary:
    'Roll a service back to the previous release that went live (or --to), and with --restore-db its database too.',
  usage:
    'rollback <service> [--env <e>] [--to <version>] [--restore-db <snapshot-id>] [--reason <text>] [--as <name>] [--wait | --dry-run] [--json]',
  examples: [
    'runbook rollback shop --env production --dry-run',
    'runbook rollback shop --env production --reason "checkout errors" --wait',
    'runbook rollback shop --env production --to v1 --restore-db shop-production-pre-migrate-1a2b3c4d --as dave --wait',
  ],
  details:
    'The plan (from, to, what happens to the database) is the first line it prints. A database restore loses the\n' +
    'writes since the snapshot: it is checked first (exists, belongs to the service, file whole), needs the\n' +
    'restore-database approval (rollback.dbRestoreApprovers, four-eyes), takes a safety snapshot, and runs in\n' +
    'maintenance (503 + Retry-After). As for deploy, the worker runs the plan of its own runbook config, refuses the\n' +
    'rollback when it differs from yours, and --dry-run shows it (exit 0 when it is yours, 1 otherwise).\n' +
    `${exitCodeHelp} (with --wait)\n${TAKEN_HELP}`,
  options: {
    ...envOption,
    to: { type: 'string', description: 'the version to go back to (default: the previous one that went live)' },
    'restore-db': { type: 'string', description: 'restore the database from this snapshot (destructive, approved)' },
    ...configOption,
    ...asOption,
    ...keyOption,
    ...reasonOption,
    wait: { type: 'boolean', description: 'follow the rollback live until it ends' },
    ...dryRunOption,
    ...jsonOption,
  },
  async run(args, io) {
    const service = positional(args, 'service name', 'rollback');
    const toVersion = args.values.to as string | undefined;
    const snapshotId = args.values['restore-db'] as string | undefined;
    if (snapshotId !== undefined && !SNAPSHOT_ID.test(snapshotId)) {
      throw new UserError(
        `rollback: --restore-db ${JSON.stringify(snapshotId)} is not a snapshot id`,
        'snapshot ids look like shop-production-pre-migrate-1a2b3c4d (see the deploy result)',
      );
    }
    const requestedBy = whoAmI(args.values, io.env);
    const back = (environment: string) =>
      `roll ${service}/${environment} back to ${toVersion ?? 'the previous release'}${snapshotId ? `, restoring the database from ${snapshotId}` : ''}`;
    if (args.values['dry-run']) {
      return dryRun(
        io,
        args,
        'rollback',
        service,
        (environment) => `${back(environment)}, requested by ${requestedBy}`,
        (plan) => {
          if (toVersion) checkVersion(plan, toVersion, '--to');
        },
      );
    }
    const plan = resolvePlan(args.values, io.env, service);
    const { environment } = plan;
    if (toVersion) checkVersion(plan, toVersion, '--to');
    const input = checkedRequest(rollbackRequestSchema, 'rollback', {
      service,
      environment,
      requestedBy,
      ...(toVersion ? { toVersion } : {}),
      ...(snapshotId ? { restoreSnapshotId: snapshotId } : {}),
      ...(args.values.reason ? { reason: String(args.values.reason) } : {}),
      ...previewed(plan),
    });
    const workflowId = `rollback-${slug(service)}-${slug(environment)}-${randomBytes(3).toString('hex')}`;
    const what = back(environment);
    const signed = await signedRequest(input, { workflowId, kind: 'rollback', values: args.values, io });
    return startRunbook(
      io,
      args,
      { workflowType: 'rollbackService', workflowId, input: signed, service, environment },
      what,
    );
  },
};
