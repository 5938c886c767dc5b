import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { loadRunbookConfig, planDigest, resolveService } from '../../src/runbook-config';
import {
  isCommandCheck,
  type CommandSpec,
  type JsonObject,
  type ResolvedService,
  type SingleHostService,
} from '../../src/shared/service-plan';
import { ensurePrivateDirSync } from '../../src/system/private-files';

/** A command's runbook.yaml block: `{ command, timeout }`. */
const command = (c: CommandSpec): JsonObject => ({ command: c.command, timeout: c.timeoutMs });

/**
 * The runbook.yaml service block of a resolved single-host plan: the inverse of resolveService (durations as
 * milliseconds, paths absolute), so that a test can compose a plan in code (a shorter deadline, other gates) and
 * hand it to the worker the only way a worker takes a plan: in its runbook config.
 */
export function serviceBlock(plan: SingleHostService): JsonObject {
  const { release: r, health: h, analysis: a } = plan;
  const approvals = (p: SingleHostService['approvals']): JsonObject => ({
    gates: p.gates,
    approvers: p.approvers,
    fourEyes: p.fourEyes,
    timeout: p.timeoutMs,
    onTimeout: p.onTimeout,
  });
  return {
    platform: 'single-host',
    listen: { port: plan.listen.port },
    release: {
      command: r.command,
      cwd: r.cwd,
      env: r.env,
      portRange: [r.portRange.min, r.portRange.max],
      drain: r.drainMs,
    },
    health: {
      liveness: { ...h.liveness },
      readiness: { ...h.readiness },
      timeout: h.timeoutMs,
      deadline: h.deadlineMs,
    },
    smoke: plan.smoke.map((c) =>
      isCommandCheck(c)
        ? { name: c.name, command: c.command, timeout: c.timeoutMs, runFrom: c.runFrom }
        : ({ ...c } as JsonObject),
    ),
    ...(plan.database
      ? {
          database: {
            name: plan.database.name,
            ...(plan.database.urlEnv ? { urlEnv: plan.database.urlEnv } : {}),
            ...(plan.database.migrationsDir ? { migrations: plan.database.migrationsDir } : {}),
            ...(plan.database.migrate
              ? {
                  migrate: {
                    ...command(plan.database.migrate),
                    ...(plan.database.migrate.status ? { status: command(plan.database.migrate.status) } : {}),
                  },
                }
              : {}),
            ...(plan.database.compatibility ? { compatibility: plan.database.compatibility } : {}),
          },
        }
      : {}),
    traffic: { steps: plan.traffic.steps.map((s) => ({ weight: s.weight, bake: s.bakeMs })) },
    analysis: {
      max5xxRate: a.max5xxRate,
      maxP95LatencyMs: a.maxP95LatencyMs,
      minRequests: a.minRequests,
      interval: a.intervalMs,
      failuresTolerated: a.failuresTolerated,
      ...(a.onInconclusive ? { onInconclusive: a.onInconclusive } : {}),
      ...(a.stepMinRequests !== undefined ? { stepMinRequests: a.stepMinRequests } : {}),
      ...(a.minConclusiveWindows !== undefined ? { minConclusiveWindows: a.minConclusiveWindows } : {}),
      ...(a.expectedRps !== undefined ? { expectedRps: a.expectedRps } : {}),
      ...(a.extendMaxMs !== undefined ? { extendMax: a.extendMaxMs } : {}),
      ...(a.compare
        ? {
            compare: {
              max5xxRatio: a.compare.max5xxRatio,
              maxP95Ratio: a.compare.maxP95Ratio,
              minP95Delta: a.compare.minP95DeltaMs,
              confidence: a.compare.confidence,
              ...(a.compare.warmupMs !== undefined ? { warmup: a.compare.warmupMs } : {}),
              ...(a.compare.baseline ? { baseline: a.compare.baseline } : {}),
            },
          }
        : {}),
      cutoff: a.cutoff
        ? {
            errorLimit: a.cutoff.errorLimit,
            ...(a.cutoff.rate === false
              ? { rate: { enabled: false } }
              : a.cutoff.rate
                ? { rate: { ...a.cutoff.rate } }
                : {}),
          }
        : { enabled: false },
    },
    approvals: approvals(plan.approvals),
    rollback: { approvals: approvals(plan.rollback.approvals), dbRestoreApprovers: plan.rollback.dbRestoreApprovers },
    ...(plan.signing
      ? { signing: { unsigned: plan.signing.unsigned, distinctApprovers: plan.signing.distinctApprovers } }
      : {}),
    ...(plan.drill
      ? {
          drill: {
            rtoTarget: plan.drill.rtoTargetMs,
            ...(plan.drill.schedule ? { schedule: plan.drill.schedule } : {}),
            ...(plan.drill.integrityCommand ? { integrityCommand: command(plan.drill.integrityCommand) } : {}),
          },
        }
      : {}),
    ...(plan.backup ? { backup: JSON.parse(JSON.stringify(plan.backup)) as JsonObject } : {}),
    environments: { [plan.environment]: {} },
  };
}

/**
 * Puts `plan` (its service, in its environment) into the runbook config `file` (created when missing; the other
 * services in it stay), and returns the plan as the worker will resolve it from there, with what a request for it
 * carries: the digest and field digests, computed from the file as the CLI computes them from its own.
 * @throws when the file would not give back the same plan (apart from `source`): the test would not run what it says.
 */
export function putPlan(
  file: string,
  plan: SingleHostService,
): { plan: ResolvedService; configDigest: string; fieldDigests: Record<string, string> } {
  const doc = existsSync(file)
    ? (parse(readFileSync(file, 'utf8')) as { version: 1; services: Record<string, unknown> })
    : { version: 1 as const, services: {} };
  doc.services[plan.service] = serviceBlock(plan);
  // Inside the test stack's data folder: private, as everything there is (test/workflows/secrets.test.ts checks).
  ensurePrivateDirSync(path.dirname(file));
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  chmodSync(file, 0o600);
  const resolved = resolveService(loadRunbookConfig(file), plan.service, plan.environment);
  const { source: _a, ...wanted } = plan;
  const { source: _b, ...got } = resolved;
  if (JSON.stringify(sortKeys(wanted)) !== JSON.stringify(sortKeys(got)))
    throw new Error(`${file} does not give back the plan of ${plan.service}: ${JSON.stringify({ wanted, got })}`);
  const { digest, fieldDigests } = planDigest(resolved);
  return { plan: resolved, configDigest: digest, fieldDigests };
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
  );
}
