import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { UserError, errorMessage } from '../errors';
import { isExecutable, which } from '../system/executables';
import { toolsDir } from './tools';

const run = promisify(execFile);

/**
 * The Temporal server this project builds for `runbook up --cluster`: the version the pinned CLI's dev server runs
 * (CLI 1.5.1 embeds server 1.29.1), so that a runbook behaves the same on both. It needs Go 1.25 or newer; the
 * next minor versions (1.30.x and later) name Go 1.26.10 in their go.mod.
 */
export const TEMPORAL_SERVER_VERSION = '1.29.1';
const MODULE = 'go.temporal.io/server';

export interface TemporalServerBuild {
  version: string;
  /** The server binary (`cmd/server`): all services in one process, or those named by `--service`. */
  server: string;
  /** `temporal-sql-tool` (`cmd/tools/sql`): creates and upgrades the schemas, which it embeds (`--schema-name`). */
  sqlTool: string;
}

export function temporalServerBuildDir(version = TEMPORAL_SERVER_VERSION): string {
  return path.join(toolsDir, `temporal-server-${version}`);
}

function layout(version: string): TemporalServerBuild {
  const dir = temporalServerBuildDir(version);
  return {
    version,
    server: path.join(dir, 'bin', 'server'),
    sqlTool: path.join(dir, 'bin', 'sql'),
  };
}

/** The build in the tools folder, when both binaries are there. */
export function findTemporalServer(version = TEMPORAL_SERVER_VERSION): TemporalServerBuild | undefined {
  const build = layout(version);
  return isExecutable(build.server) && isExecutable(build.sqlTool) ? build : undefined;
}

/**
 * Builds the pinned Temporal server and its SQL tool with `go install` into `.tools/temporal-server-<version>/bin`.
 * Go's module and build caches make a second build (a fresh
 * clone on the same machine) a matter of linking. Progress goes to `log`.
 */
export async function ensureTemporalServer(
  log: (line: string) => void = () => {},
  version = TEMPORAL_SERVER_VERSION,
): Promise<TemporalServerBuild> {
  const found = findTemporalServer(version);
  if (found) return found;
  const go = which('go', ['/usr/local/go/bin']);
  const fix = `install Go 1.25 or newer (https://go.dev/dl), then run runbook setup --cluster again`;
  if (!go) throw new UserError(`building the Temporal server ${version} needs Go, which is not on PATH`, fix);
  const build = layout(version);
  const bin = path.dirname(build.server);
  mkdirSync(bin, { recursive: true });
  const env = { ...process.env, GOBIN: bin, GOFLAGS: `${process.env.GOFLAGS ?? ''} -buildvcs=false`.trim() };
  for (const [what, pkg] of [
    ['the server', `${MODULE}/cmd/server`],
    ['its SQL schema tool', `${MODULE}/cmd/tools/sql`],
  ] as const) {
    log(
      `building ${what} (${pkg}@v${version}) with go install into ${bin}: several minutes on a fresh machine, seconds once Go's caches hold it`,
    );
    const started = Date.now();
    try {
      await run(go, ['install', `${pkg}@v${version}`], { env, timeout: 3_600_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? errorMessage(err)).trim();
      throw new UserError(`go install ${pkg}@v${version} failed: ${stderr.split('\n').slice(-3).join(' / ')}`, fix);
    }
    log(`  built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const done = findTemporalServer(version);
  if (!done) throw new UserError(`the Temporal server build in ${temporalServerBuildDir(version)} is incomplete`, fix);
  return done;
}
