import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { UserError, errorMessage } from '../errors';
import {
  haproxyArgs,
  haproxyPaths,
  reloadHaproxy,
  validateHaproxyConfig,
} from '../platforms/single-host/haproxy-control';
import { createHaproxyRuntime, parseShowInfo } from '../platforms/single-host/haproxy-runtime';
import { fail, pass, type Check, type Component } from './component';
import { livePid, requireFreePort, stopProcess, waitFor } from '../system/processes';
import { writeFileAtomically } from '../system/atomic-write';
import { ensurePrivateDirSync, withPrivateUmask } from '../system/private-files';
import { settingEnv, type StackSettings } from './settings';
import { haproxyTool } from './tools';

const run = promisify(execFile);

/** The global part of the configuration: runtime API socket, defaults, and a stats/metrics frontend. */
export function renderBaseConfig(settings: StackSettings): string {
  const p = haproxyPaths(settings.home);
  return `# Written by runbook up; service frontends live in ${p.servicesDir}.
global
  stats socket ${p.adminSocket} mode 600 level admin expose-fd listeners
  stats timeout 30s
  hard-stop-after 30s

defaults
  mode http
  option http-server-close
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  # retry a failed connection on another server, so a release that stops does not fail a request
  retries 3
  option redispatch

frontend runbook-stats
  bind 127.0.0.1:${settings.haproxyStatsPort}
  http-request use-service prometheus-exporter if { path /metrics }
  stats enable
  stats uri /stats
  stats refresh 5s
`;
}

export const haproxyComponent: Component = {
  name: 'haproxy',

  async preflight(ctx) {
    const p = haproxyPaths(ctx.settings.home);
    if (livePid(p.pidFile, p.config)) return;
    await requireFreePort(ctx.settings.haproxyStatsPort, 'HAProxy stats', settingEnv.haproxyStatsPort);
  },

  async start(ctx) {
    const { settings } = ctx;
    const p = haproxyPaths(settings.home);
    ensurePrivateDirSync(p.servicesDir);
    await writeFileAtomically(p.config, renderBaseConfig(settings));
    const tool = await haproxyTool();
    if (!tool) throw new UserError('haproxy not found', 'sudo apt-get install -y haproxy');
    const address = `http://127.0.0.1:${settings.haproxyStatsPort}/stats (runtime API ${p.adminSocket})`;
    const pid = livePid(p.pidFile, p.config);
    if (pid) {
      ctx.log('haproxy: already running, adopted (configuration reloaded)');
      await reloadHaproxy(settings.home);
      return address;
    }
    await haproxyComponent.preflight(ctx);
    await validateHaproxyConfig(tool.path, settings.home);
    ctx.log(`haproxy: starting (stats on 127.0.0.1:${settings.haproxyStatsPort})`);
    // umask 077: HAProxy (re)writes its pid file at every reload, with the umask it was started with
    const start = withPrivateUmask(tool.path, [
      '-W',
      '-D',
      '-S',
      `${p.masterSocket},mode,600`,
      '-p',
      p.pidFile,
      ...haproxyArgs(settings.home),
    ]);
    try {
      await run(start.command, start.args, { timeout: 30_000 });
    } catch (err) {
      const e = err as { stderr?: string };
      throw new UserError(`HAProxy did not start: ${(e.stderr ?? errorMessage(err)).trim()}`);
    }
    const runtime = createHaproxyRuntime(p.adminSocket);
    await waitFor('HAProxy', async () => (await runtime.command('show info')).includes('Version'), {
      timeoutMs: 10_000,
    });
    return address;
  },

  async stop(ctx) {
    const p = haproxyPaths(ctx.settings.home);
    const pid = livePid(p.pidFile, p.config);
    if (!pid) return false;
    await stopProcess(pid, 10_000);
    return true;
  },

  async check(ctx) {
    const checks: Check[] = [];
    const tool = await haproxyTool();
    checks.push(
      tool
        ? pass('haproxy', 'binary', tool.version.split(' - ')[0] ?? tool.version)
        : fail('haproxy', 'binary', 'haproxy not found', 'sudo apt-get install -y haproxy'),
    );
    const p = haproxyPaths(ctx.settings.home);
    if (!existsSync(p.adminSocket)) {
      checks.push(fail('haproxy', 'runtime API', `no socket at ${p.adminSocket}`, 'runbook up'));
      return checks;
    }
    try {
      const info = parseShowInfo(await createHaproxyRuntime(p.adminSocket).command('show info'));
      checks.push(pass('haproxy', 'runtime API', `${p.adminSocket} (up ${info.Uptime ?? '?'})`));
    } catch (err) {
      checks.push(
        fail('haproxy', 'runtime API', errorMessage(err), 'runbook up (a stale socket from a crash is replaced)'),
      );
    }
    return checks;
  },
};
