import { sampleConfigForReleases } from '../stack/sample-copy';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { startLoad, type LoadReport } from '../load-generator';
import { loadRunbookConfig, resolveService } from '../runbook-config';
import type { DeployState } from '../shared/deploy';
import { deployRequestSchema, type DeployRequest } from '../shared/request';
import { signoffUpdate } from '../shared/messages';
import { signDecision, signRequest } from '../signing/decisions';
import { ensureDatabase } from '../stack/postgres';
import { resolveStackSettings, uiUrl } from '../stack/settings';
import { up } from '../stack/stack';
import { embeddedProfileEnv, workerPaths } from '../stack/worker-process';
import { packageRoot } from '../stack/tools';
import type { deployService } from '../workflows';
import type { Command, Io } from './command';
import { follow } from './follow';
import { homeOption } from './options';
import { singleHostPlan } from '../platforms/preflight';
import { checkedRequest, previewed } from './plan';
import { demoSigning, type DemoSigning } from './demo-signing';
import { outcomeExitCode } from './render';
import { withClient, workflowLink, type TemporalTarget } from './temporal';

const SERVICE = 'shop';
const ENVIRONMENT = 'demo';
const REQUESTER = 'dave';
const APPROVER = 'alice';

/**
 * Shows how a person gives the go-live sign-off (CLI, Web UI with a signed payload) once the deploy waits for it,
 * and, unless interactive, gives it as APPROVER a moment later, signed with APPROVER's demo key.
 */
function signOffWhenAsked(
  handle: WorkflowHandle & { firstExecutionRunId: string },
  target: TemporalTarget,
  io: Io,
  interactive: boolean,
  signing: DemoSigning,
) {
  let shown = false;
  const key = signing.keys[APPROVER] as string;
  return async (s: DeployState): Promise<void> => {
    if (!s.waitingFor || shown) return;
    shown = true;
    const signoff = `npx runbook signoff ${handle.workflowId} --as ${APPROVER} --key ${key}`;
    io.out(
      `\n   >> ${handle.workflowId} waits for the ${s.waitingFor.gate} sign-off from ${s.waitingFor.approvers.join(', ')}:`,
    );
    io.out(`   >>   CLI:    ${signoff}`);
    io.out(`   >>   Web UI: ${workflowLink(target, handle.workflowId)}`);
    io.out(`   >>           ${signoff} --print-signal   prints the signed payload;`);
    io.out('   >>           paste it in More Actions -> Send a Signal "signoff" (an unsigned one is refused here)');
    if (interactive) {
      io.out('   >> (--interactive: waiting for you)\n');
      return;
    }
    await sleep(2_000);
    const decision = await signDecision({
      workflowId: handle.workflowId,
      runId: handle.firstExecutionRunId,
      kind: 'signoff',
      gate: 'go-live',
      by: APPROVER,
      note: 'signed off by the demo',
      key,
      env: io.env,
    });
    await handle.executeUpdate(signoffUpdate, { args: [decision] });
    io.out(`   >> signed off as ${APPROVER} with the demo key (run the demo with --interactive to do it yourself)\n`);
  };
}

const fmt = (r: LoadReport) =>
  `${r.sent} requests, ${r.failed} failed${r.retriedOnIdleReset ? ` (${r.retriedOnIdleReset} sent again after an idle connection was reset)` : ''}, p95 ${r.p95Ms === null ? '-' : `${r.p95Ms.toFixed(1)} ms`}, served by ${Object.entries(
    r.byVersion,
  )
    .map(([v, n]) => `${v}: ${n}`)
    .join(', ')}`;

function diff(a: LoadReport, b: LoadReport): Pick<LoadReport, 'sent' | 'failed'> {
  return { sent: b.sent - a.sent, failed: b.failed - a.failed };
}

async function deploy(
  client: Client,
  target: TemporalTarget,
  io: Io,
  input: DeployRequest,
  interactive: boolean,
  signing: DemoSigning,
): Promise<number> {
  const workflowId = `deploy-${SERVICE}-${ENVIRONMENT}-${input.version}-${Date.now().toString(36)}`;
  // Signed by the requester's demo key, as `runbook deploy --key` signs: the worker records dave, verified.
  const signed = await signRequest(input, {
    workflowId,
    kind: 'deploy',
    key: signing.keys[REQUESTER] as string,
    env: io.env,
  });
  const handle = await client.workflow.start<typeof deployService>('deployService', {
    taskQueue: target.taskQueue,
    workflowId,
    args: [signed],
  });
  io.out(`   ${workflowId}   ${workflowLink(target, workflowId)}`);
  return follow(handle, target, io, false, signOffWhenAsked(handle, target, io, interactive, signing));
}

export const demoCommand: Command = {
  name: 'demo',
  summary:
    'The deploy story on the embedded stack: deploy the sample service v1, then v2 through canary steps and a\n' +
    'go-live sign-off, then a faulty v3 that the analysis rolls back by itself, all under a steady load.',
  usage: 'demo [--interactive] [--rps <n>] [--config <runbook.yaml>] [--home <dir>]',
  examples: ['npm run demo', 'npx runbook demo --interactive   # give the sign-off yourself (CLI or Web UI)'],
  details:
    'It deploys service shop, environment demo, of examples/runbook.yaml (or of --config). dave requests and alice\n' +
    "signs off with throwaway SSH keys that the demo makes under the data folder (keys/demo/); the stack's worker\n" +
    'runs a copy of the config with these keys enrolled (<data folder>/demo/runbook.yaml; a worker running with\n' +
    'another config is restarted), so the deploys record verified identities, as production does. The stack keeps\n' +
    'running afterwards: explore it in the Web UI, then `npx runbook down`.',
  options: {
    interactive: { type: 'boolean', description: 'wait for you to give the go-live sign-off' },
    rps: { type: 'string', description: 'requests per second of the demo load (default 50)' },
    config: {
      type: 'string',
      description: 'the runbook config with the shop service and its demo environment (default examples/runbook.yaml)',
    },
    ...homeOption,
  },
  async run({ values }, io) {
    const home = resolveStackSettings(io.env, values.home ? { home: String(values.home) } : {}).home;
    const sourceConfig = values.config
      ? path.resolve(String(values.config))
      : sampleConfigForReleases(path.join(packageRoot, 'examples', 'runbook.yaml'), home, (line) =>
          io.out(`   ${line}`),
        );
    // The demo's people sign with throwaway keys; its worker runs a copy of the config that enrols them.
    const signing = await demoSigning(home, sourceConfig, [REQUESTER, APPROVER]);
    const configFile = signing.configFile;
    const settings = resolveStackSettings(io.env, {
      ...(values.home ? { home: String(values.home) } : {}),
      runbookConfig: configFile,
    });
    // The demo runs on the embedded stack, whatever Temporal the environment or a profile names for other commands.
    const env = {
      ...embeddedProfileEnv(io.env, settings, workerPaths(settings.home).profile),
      RUNBOOK_HOME: settings.home,
    };
    const rps = Number(values.rps ?? 50);
    // The worker runs this config's plan: the demo sends the digest of the same plan.
    const plan = singleHostPlan(resolveService(loadRunbookConfig(configFile), SERVICE, ENVIRONMENT), 'demo');
    io.out('== 1. the stack: PostgreSQL, HAProxy, Temporal + Web UI, a worker');
    await up(settings, (line) => io.out(`   ${line}`));
    io.out(`   Temporal Web UI: ${uiUrl(settings)}`);
    io.out(
      `   signers: ${REQUESTER} (requests) and ${APPROVER} (sign-off) sign with throwaway demo keys in ${signing.dir};`,
    );
    io.out(`            the worker runs ${configFile}: ${sourceConfig} with these keys enrolled`);

    if (plan.database) await ensureDatabase(settings, plan.database.name);
    const url = `http://127.0.0.1:${plan.listen.port}/api/items`;
    const request = (version: string): DeployRequest =>
      checkedRequest(deployRequestSchema, 'demo', {
        service: SERVICE,
        environment: ENVIRONMENT,
        version,
        requestedBy: REQUESTER,
        reason: 'npm run demo',
        ...previewed(plan),
      });

    return withClient(env, async (client, target) => {
      const codes: Record<string, number> = {};
      const interactive = Boolean(values.interactive);
      io.out('\n== 2. deploy v1: the first release (or a redeploy): snapshot, migrations, health, smoke, traffic');
      codes.v1 = await deploy(client, target, io, request('v1'), interactive, signing);
      io.out(`\n== 3. a steady load of ${rps} requests/s on ${url} (through HAProxy) from now on`);
      const load = startLoad(url, { rps, maxSeconds: 600 });
      const steps: Array<[string, string, string]> = [
        [
          'v2',
          '4. deploy v2',
          `canary ${plan.traffic.steps.map((s) => `${s.weight}%`).join(' -> ')} watched by the analysis, then the go-live sign-off`,
        ],
        [
          'v3',
          '5. deploy v3 (faulty)',
          'it passes smoke, then half of its answers are 500 under load: the analysis rolls it back',
        ],
      ];
      try {
        for (const [version, title, what] of steps) {
          io.out(`\n== ${title}: ${what}`);
          const before = load.snapshot();
          codes[version] = await deploy(client, target, io, request(version), interactive, signing);
          const d = diff(before, load.snapshot());
          io.out(`   load during this deploy: ${d.sent} requests, ${d.failed} failed`);
        }
      } finally {
        const total = await load.stop();
        io.out(`\n== 6. the load during v2 and v3: ${fmt(total)}`);
        io.out('   (the failed requests are the faulty v3 answering 500 until the analysis took it out)');
      }
      const expected = {
        v1: outcomeExitCode.succeeded,
        v2: outcomeExitCode.succeeded,
        v3: outcomeExitCode['rolled-back'],
      };
      const asExpected = Object.entries(expected).every(([v, code]) => codes[v] === code);
      io.out(
        asExpected
          ? '\nAll as expected: v2 is live, v3 was rolled back automatically.'
          : `\nUnexpected outcomes: ${JSON.stringify(codes)}`,
      );
      io.out(
        'The stack keeps running: `npx runbook list`, the Web UI, `npx runbook doctor`; stop it with `npx runbook down`.',
      );
      return asExpected ? 0 : 1;
    });
  },
};
