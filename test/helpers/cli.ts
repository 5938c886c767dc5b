import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const runbookBin = path.join(__dirname, '../../bin/runbook.js');

/**
 * Runs the compiled `runbook` CLI (what `npx runbook` runs; `npm test` builds it first) with extra environment,
 * and returns its exit code and output instead of throwing on a non-zero exit.
 */
export async function runbookCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [runbookBin, ...args], {
      env: { ...process.env, ...env },
      timeout: timeoutMs,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
