/**
 * Commands on runbooks already started (deploys, rollbacks, drills): `runbook status`, `watch` and `cancel` by
 * workflow id, and `runbook list` from Temporal visibility.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { UserError, errorMessage } from '../errors';
import type { DeployState } from '../shared/deploy';
import { statusQuery } from '../shared/messages';
import {
  RunbookEnvironment,
  RunbookKind,
  RunbookOutcome,
  RunbookPhase,
  RunbookService,
} from '../shared/search-attributes';
import type { Command } from './command';
import { follow } from './follow';
import { renderDeployReport } from './deploy-report-html';
import { jsonOption, positional, stringOpt } from './options';
import { exitCodeHelp, renderStatus } from './render';
import { withClient, workflowLink } from './temporal';

export const statusCommand: Command = {
  name: 'status',
  connectsToTemporal: true,
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
      let closedAs: string;
      try {
        const described = await handle.describe();
        startMs = described.startTime.getTime();
        closedAs = described.status.name;
        state = await handle.query(statusQuery);
      } catch (err) {
        throw statusUnreadable(err, workflowId);
      }
      if (args.values.json) io.out(JSON.stringify(state, null, 2));
      else
        for (const line of renderStatus(state, {
          workflowId,
          link: workflowLink(target, workflowId),
          nowMs: Date.now(),
          startMs,
          closedAs,
        }))
          io.out(line);
      return 0;
    });
  },
};

/** Why the status of `workflowId` could not be read, in words with the fix. */
function statusUnreadable(err: unknown, workflowId: string): UserError {
  if (err instanceof WorkflowNotFoundError)
    return new UserError(`no workflow ${workflowId}`, 'runbook list shows the recent ones');
  return new UserError(
    `cannot read the status of ${workflowId}: ${errorMessage(err)}`,
    'is a worker running? runbook doctor',
  );
}

export const reportCommand: Command = {
  name: 'report',
  connectsToTemporal: true,
  summary:
    'Write the HTML report of a deploy: the evidence per traffic step, canary vs stable per window, the verdicts.',
  usage: 'report <workflow-id> [--out <file.html>]',
  examples: [
    'runbook report deploy-shop-production-v2-1a2b3c',
    'runbook report deploy-shop-production-v2-1a2b3c --out v2-canary.html',
  ],
  details:
    "The report reads the deploy's status (running or ended): each step's evidence (canary requests against the\n" +
    'least it needed, and whether it was judged), and per analysis window the canary and the stable release over\n' +
    'the same time (error rate, p95) with the judge\'s statistic and threshold. See docs/deploy.md, "The judge".',
  options: { out: { type: 'string', description: 'the HTML file to write (default report-<workflow-id>.html)' } },
  async run(args, io) {
    const workflowId = positional(args, 'workflow id', 'report');
    return withClient(io.env, async (client) => {
      let state: DeployState;
      try {
        state = await client.workflow.getHandle(workflowId).query(statusQuery);
      } catch (err) {
        throw statusUnreadable(err, workflowId);
      }
      if (state.kind !== 'deploy')
        throw new UserError(`${workflowId} is a ${state.kind}, not a deploy`, "runbook report takes a deploy's id");
      const out = path.resolve(stringOpt(args.values, 'out') ?? `report-${workflowId}.html`);
      writeFileSync(out, renderDeployReport(state, { workflowId, generatedAtMs: Date.now() }));
      const steps = state.steps ?? [];
      io.out(
        `wrote ${out}: ${state.analysis.length} analysis window(s), ${steps.filter((st) => st.status === 'judged').length} of ` +
          `${steps.filter((st) => st.status !== 'not-baked').length} baked step(s) judged`,
      );
      return 0;
    });
  },
};

export const watchCommand: Command = {
  name: 'watch',
  connectsToTemporal: true,
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
  connectsToTemporal: true,
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
  connectsToTemporal: true,
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
