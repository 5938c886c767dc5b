/** `runbook drill schedule <service>`: create, update or delete the Temporal Schedule that starts drills. */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleDescription,
  type ScheduleSpec,
} from '@temporalio/client';
import { UserError } from '../../errors';
import type { Check } from '../../stack/component';
import { describeScheduleIfAny } from '../../temporal-schedules';
import {
  defaultEnvironment,
  loadRunbookConfig,
  resolveService,
  runbookConfigPath,
  type RunbookConfig,
} from '../../runbook-config';
import { drillScheduleId, formatMs } from '../../shared/drill';
import { drillRequestSchema } from '../../shared/request';
import { DEFAULT_SCHEDULE_VALIDITY_MS, MAX_SCHEDULE_VALIDITY_MS } from '../../shared/signed';
import { signRequest } from '../../signing/decisions';
import { SIGNING_KEY_ENV, signingKeyOf } from '../../signing/ssh-keygen';
import type { Io, ParsedArgs } from '../command';
import { durationOpt, stringOpt, whoAmI } from '../options';
import { checkedRequest, previewed } from '../plan';
import { withClient, type TemporalTarget } from '../temporal';
import { drillPlan, signoffOf } from './input';

/** How late a missed scheduled drill may still start after a Temporal outage (then it is skipped). */
export const CATCHUP_WINDOW = '1h';

function loadConfig(values: ParsedArgs['values'], env: NodeJS.ProcessEnv): RunbookConfig {
  return loadRunbookConfig(runbookConfigPath(values.config as string | undefined, env));
}

const scheduleLink = (t: TemporalTarget, id: string) =>
  `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/schedules/${encodeURIComponent(id)}`;

function describeSchedule(d: ScheduleDescription): Record<string, unknown> {
  return {
    scheduleId: d.scheduleId,
    // Temporal compiles a cron expression into calendars; the note says what was asked for.
    calendars: d.spec.calendars ?? [],
    intervals: (d.spec.intervals ?? []).map((i) => formatMs(Number(i.every))),
    overlap: d.policies.overlap,
    catchupWindow: formatMs(d.policies.catchupWindow),
    paused: d.state.paused,
    note: d.state.note ?? null,
    nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      takenAt: a.takenAt.toISOString(),
    })),
  };
}

/**
 * The schedule's times: --cron, --every, else the service's `drill.schedule` (a cron expression, a shorthand
 * like @weekly, or @every <duration>, which Temporal turns into an interval).
 */
function scheduleSpec(
  values: ParsedArgs['values'],
  configured: string | undefined,
): { spec: ScheduleSpec; what: string } {
  const cron = stringOpt(values, 'cron');
  const everyMs = durationOpt(values, 'every', 60_000, 'drill');
  if (cron && everyMs) throw new UserError('drill schedule: give --cron or --every, not both');
  if (everyMs) return { spec: { intervals: [{ every: everyMs }] }, what: `every ${formatMs(everyMs)}` };
  const expression = cron ?? configured;
  if (!expression) {
    throw new UserError(
      'drill schedule: say when: --cron "0 3 * * 1" or --every 7d',
      'or set drill.schedule for the service in runbook.yaml',
    );
  }
  const fields = expression.split(/\s+/);
  if (!/^@\w+/.test(expression) && (fields.length !== 5 || !fields.every((f) => /^[0-9A-Za-z*?/,-]+$/.test(f)))) {
    throw new UserError(
      `drill schedule: --cron must be a 5-field cron expression like "0 3 * * 1" (minute hour day month weekday), got ${JSON.stringify(expression)}`,
    );
  }
  return { spec: { cronExpressions: [expression] }, what: `cron "${expression}" (UTC)` };
}

export async function scheduleDrill(args: ParsedArgs, io: Io): Promise<number> {
  const [, service, ...rest] = args.positionals;
  if (!service) throw new UserError('drill schedule: give the service name', 'runbook drill --help');
  if (rest.length > 0) throw new UserError(`drill schedule: unexpected argument(s) ${rest.join(' ')}`);
  const { values } = args;
  const config = loadConfig(values, io.env);
  const environment = stringOpt(values, 'env') ?? defaultEnvironment(config, service);
  const scheduleId = drillScheduleId(service, environment);
  if (values.delete) {
    return withClient(io.env, async (client) => {
      try {
        await client.schedule.getHandle(scheduleId).delete();
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw new UserError(`there is no schedule ${scheduleId}`);
        throw err;
      }
      io.out(values.json ? JSON.stringify({ scheduleId, deleted: true }) : `deleted the schedule ${scheduleId}`);
      return 0;
    });
  }
  const plan = drillPlan(resolveService(config, service, environment));
  const { spec, what } = scheduleSpec(values, plan.drill?.schedule);
  const signoffTimeoutMs = signoffOf(values, plan.approvals.approvers);
  const by = whoAmI(values, io.env);
  // The request, with the digest of the plan as it is now: a scheduled run is refused once the worker's plan changes.
  const input = checkedRequest(drillRequestSchema, 'drill schedule', {
    service: plan.service,
    environment: plan.environment,
    requestedBy: `schedule:${scheduleId}`.slice(0, 64),
    ...(values.fresh ? { fresh: true } : {}),
    ...(signoffTimeoutMs ? { signoffTimeoutMs } : {}),
    reason: `scheduled drill (${what}), set up by ${by}`,
    ...previewed(plan),
  });
  const key = signingKeyOf(values.key, io.env);
  const validityMs = durationOpt(values, 'valid-for', 60_000, 'drill schedule') ?? DEFAULT_SCHEDULE_VALIDITY_MS;
  if (validityMs > MAX_SCHEDULE_VALIDITY_MS)
    throw new UserError(`drill schedule: --valid-for must be at most 400d, got ${String(values['valid-for'])}`);
  if (values['valid-for'] !== undefined && !key)
    throw new UserError(
      'drill schedule: --valid-for is the validity of a signature, and nothing is signed without a key',
      `pass --key or set ${SIGNING_KEY_ENV}`,
    );
  // With a key, one standing signature for every run of this schedule (the worker checks that the schedule started it).
  const request = key
    ? await signRequest(input, { schedule: scheduleId, kind: 'drill', key, env: io.env, validityMs })
    : input;
  const signedUntil = key ? new Date(Date.now() + validityMs).toISOString() : undefined;
  return withClient(io.env, async (client, target) => {
    const action = {
      type: 'startWorkflow' as const,
      workflowType: 'restoreDrill',
      taskQueue: target.taskQueue,
      // Temporal appends the scheduled time: drill-shop-production-2025-01-06T03:00:00Z
      workflowId: scheduleId,
      args: [request],
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false };
    const note = `restore drill of ${plan.service}/${plan.environment}, ${what}; set up by ${by} with runbook drill schedule`;
    let verb: 'created' | 'updated' = 'created';
    try {
      await client.schedule.create({ scheduleId, spec, action, policies, state: { note }, memo: { setUpBy: by } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      verb = 'updated';
      // A pause set by someone (e.g. in the Web UI) stays: a new plan is not a reason to resume.
      await client.schedule
        .getHandle(scheduleId)
        .update((previous) => ({ ...previous, spec, action, policies, state: { ...previous.state, note } }));
    }
    const described = describeSchedule(await client.schedule.getHandle(scheduleId).describe());
    if (values.json) io.out(JSON.stringify({ ...described, [verb]: true, signedUntil: signedUntil ?? null }));
    else {
      io.out(
        `${verb} the schedule ${scheduleId}: ${what}, overlap SKIP, catch-up window ${CATCHUP_WINDOW}${described.paused ? ' (PAUSED)' : ''}`,
      );
      io.out(`  next runs: ${(described.nextRuns as string[]).join(', ') || 'none'}`);
      io.out(
        signedUntil
          ? `  signed:    with ${key}, for this schedule's runs until ${signedUntil}; then sign again (this command with --key)`
          : `  signed:    no (no --key or ${SIGNING_KEY_ENV}): its runs are requested by unverified:schedule:${scheduleId}`,
      );
      io.out(`  Web UI:    ${scheduleLink(target, scheduleId)}  (pause, trigger, see its runs)`);
      io.out(
        `  its runs send the digest of the plan as it is now: after the worker's runbook.yaml changes, they are refused until you run this command again`,
      );
    }
    return 0;
  });
}

/** A schedule signature that expires sooner than this is reported by doctor, so that nobody finds out on a Monday. */
export const RENEW_SIGNATURE_WITHIN_MS = 14 * 24 * 3_600_000;

/**
 * Doctor's checks of the drill schedules of `config`: for each service and environment whose schedule exists (or
 * whose `drill.schedule` asks for one), whether its runs will be taken: the digest they send is the plan's as it is
 * now (else every run is refused as PlanDigestMismatch), and its standing signature has not expired and is not about
 * to. Changes nothing.
 */
export async function drillScheduleChecks(
  config: RunbookConfig,
  env: NodeJS.ProcessEnv,
  nowMs = Date.now(),
): Promise<Check[]> {
  const targets = Object.entries(config.services).flatMap(([service, s]) =>
    Object.keys(s.environments ?? {}).map((environment) => ({ service, environment })),
  );
  return withClient(env, async (client) => {
    const checks: Check[] = [];
    for (const { service, environment } of targets) {
      const plan = resolveService(config, service, environment);
      if (!plan.database) continue;
      const scheduleId = drillScheduleId(service, environment);
      const check = (ok: boolean, detail: string, fix?: string): Check => ({
        component: 'drills',
        check: `${service}/${environment}`,
        ok,
        detail,
        ...(fix ? { fix } : {}),
      });
      const again = `runbook drill schedule ${service} --env ${environment} --key <your key>`;
      const described = await describeScheduleIfAny(client, scheduleId);
      if (!described) {
        if (plan.drill?.schedule)
          checks.push(check(true, `drill.schedule "${plan.drill.schedule}" is not set up yet: ${again}`));
        continue;
      }
      const input = (described.action.type === 'startWorkflow' ? described.action.args?.[0] : undefined) as
        { configDigest?: string; signed?: { expiresAtMs?: number; schedule?: string } } | undefined;
      const { configDigest } = previewed(plan);
      if (input?.configDigest !== configDigest) {
        checks.push(
          check(
            false,
            `schedule ${scheduleId} sends the digest of an older plan: the worker refuses its runs (PlanDigestMismatch)`,
            again,
          ),
        );
        continue;
      }
      const expires = input.signed?.schedule === scheduleId ? input.signed.expiresAtMs : undefined;
      const paused = described.state.paused ? ', PAUSED' : '';
      if (expires === undefined) {
        checks.push(
          check(true, `schedule ${scheduleId} is current${paused}; unsigned: its runs are unverified:schedule:…`),
        );
      } else if (expires <= nowMs + RENEW_SIGNATURE_WITHIN_MS) {
        const when = new Date(expires).toISOString();
        checks.push(
          check(
            false,
            expires <= nowMs
              ? `schedule ${scheduleId}'s signature expired at ${when}: the worker refuses its runs`
              : `schedule ${scheduleId}'s signature expires at ${when}: sign it again before then`,
            again,
          ),
        );
      } else {
        checks.push(
          check(true, `schedule ${scheduleId} is current${paused}, signed until ${new Date(expires).toISOString()}`),
        );
      }
    }
    return checks;
  });
}
