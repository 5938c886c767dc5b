import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { examplesDir, shopPlan } from './deploy-fixture';

/**
 * Release folders of the sample server with the behaviour a test needs (its release.json: errorRate, faultAfter,
 * latencyMs), in a temporary folder of their own; returns the folder (a plan's release.cwd is `<folder>/{version}`).
 */
export function releasesWith(behaviours: Record<string, object>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'judged-releases-'));
  chmodSync(dir, 0o755); // releases run as the release user, who must read them
  for (const [version, behaviour] of Object.entries(behaviours)) {
    mkdirSync(path.join(dir, version));
    writeFileSync(path.join(dir, version, 'release.json'), JSON.stringify(behaviour));
    writeFileSync(
      path.join(dir, version, 'server.js'),
      `require(${JSON.stringify(path.join(examplesDir, 'shop/server.js'))});\n`,
    );
  }
  return dir;
}

/** The sample plan with one baked 50% step, then 100%, and the analysis settings given. */
export async function judgedPlan(
  overrides: Partial<ResolvedService['analysis']>,
  bakeMs = 4_000,
  releasesDir?: string,
): Promise<ResolvedService> {
  const base = await shopPlan();
  return {
    ...base,
    ...(releasesDir ? { release: { ...base.release, cwd: path.join(releasesDir, '{version}') } } : {}),
    traffic: {
      steps: [
        { weight: 50, bakeMs },
        { weight: 100, bakeMs: 0 },
      ],
    },
    analysis: { ...base.analysis, ...overrides },
  };
}
