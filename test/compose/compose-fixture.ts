/** What the compose suites share: the repository's docker-compose.yml, parsed, and how they run tools. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { packageRoot } from '../../src/stack/tools';

export const run = promisify(execFile);
export const root = packageRoot;
export const composeFile = path.join(root, 'docker-compose.yml');
export const composeText = readFileSync(composeFile, 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean | null>;
  command?: string[];
  entrypoint?: string[];
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  deploy?: { replicas?: string | number };
}
export const compose = parse(composeText, { merge: true }) as { services: Record<string, Service> };
export const service = (name: string): Service => {
  const s = compose.services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
};

/** A test that needs a tool: in CI its absence is a failure (CI installs it), elsewhere the test is skipped. */
export function requireTool(ctx: Mocha.Context, found: unknown, install: string): void {
  if (found) return;
  if (process.env.CI) assert.fail(`missing on this CI machine: ${install}`);
  ctx.skip();
}

/** An environment without the variables the compose file reads, so that the runner's own cannot leak in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[key]) env[key] = process.env[key];
  return { ...env, ...extra };
}
