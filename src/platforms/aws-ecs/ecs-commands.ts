import { createHash } from 'node:crypto';
import {
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  RunTaskCommand,
  StopTaskCommand,
  type RunTaskCommandInput,
  type Task,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { formatDuration } from '../../runbook-config/durations';
import { scrubSecrets } from '../../shared/redact';
import {
  COMMAND_TAIL_CHARS,
  PlatformError,
  type CommandProgress,
  type ReleaseCommandRequest,
  type ReleaseCommandResult,
  type ReleaseCommandRunner,
} from '../types';
import {
  checkReleaseId,
  describeColours,
  effectiveWeights,
  idleColour,
  readTraffic,
  taggedColour,
  type TaskLaunch,
} from './blue-green';
import type { AwsContext } from './context';
import { baseRevision, releaseRevision, TASK_DEFINITION_TAG } from './ecs-releases';
import { awsCall, awsErrorCode, awsPermanent } from './errors';

/**
 * CloudWatch Logs' GetLogEvents, as far as the runner reads a command's output: the shape of the SDK's
 * `GetLogEventsCommand` input and output, so that `{ getLogEvents: (region, input) => logsClient(region).send(new
 * GetLogEventsCommand(input)) }` is the whole adapter.
 */
export interface LogEventsReader {
  getLogEvents(
    region: string,
    input: { logGroupName: string; logStreamName: string; startFromHead: false; limit: number },
  ): Promise<{ events?: Array<{ message?: string }> }>;
}

export interface EcsCommandRunnerOptions {
  /**
   * Reads the end of a task's CloudWatch Logs stream (the worker passes cloudWatchLogsReader). Absent: results carry
   * no tail, and logLocation names the stream.
   */
  logs?: LogEventsReader;
}

/** What ECS allows in startedBy: up to 36 letters, digits, '-' and '_'. */
const STARTED_BY = /^[a-zA-Z0-9_-]{1,36}$/;
const RUN_ID = /^[a-z0-9-]{1,64}$/;
/** How long a stopped task is waited for after StopTask (ECS's stop timeout is at most 120 s, then SIGKILL). */
const STOP_GRACE_MS = 150_000;
/** DescribeTasks answers MISSING for a task it does not know yet (eventual consistency) or any more. */
const MISSING_POLLS = 5;
/** How many of the last log events are read for the tail (GetLogEvents returns at most 10,000 or 1 MB). */
const TAIL_EVENTS = 500;
const TIMEOUT_REASON = 'runbook: timed out after';
const CANCEL_REASON = 'runbook: the step was cancelled';

/**
 * The startedBy of a run: the runId when ECS takes it as it is, else its first characters and a hash of it (36 at
 * most), so that different runIds never share one.
 */
export function startedByFor(runId: string): string {
  if (STARTED_BY.test(runId)) return runId;
  const hash = createHash('sha256').update(runId).digest('hex').slice(0, 12);
  const head = runId
    .replace(/[^a-zA-Z0-9_-]/g, '-')
    .slice(0, 36 - hash.length - 1)
    .replace(/-+$/, '');
  return head ? `${head}-${hash}` : hash;
}

/** Where a container's awslogs output goes, or why it cannot be found. */
export type AwsLogsStream = { group: string; stream: string; region?: string } | { none: string };

/**
 * The CloudWatch Logs stream of a task's container under the awslogs driver: `<awslogs-stream-prefix>/<container>/
 * <task id>` in `awslogs-group`. Without the driver, or without a prefix (the stream is then named after the Docker
 * container id, which ECS does not report), `none` says why.
 */
export function awslogsStream(td: TaskDefinition | undefined, container: string, taskArn: string): AwsLogsStream {
  const c = td?.containerDefinitions?.find((d) => d.name === container);
  const log = c?.logConfiguration;
  if (!log) return { none: `container ${container} has no logConfiguration (its output is not kept)` };
  if (log.logDriver !== 'awslogs') return { none: `container ${container} logs through ${log.logDriver}` };
  const group = log.options?.['awslogs-group'];
  const prefix = log.options?.['awslogs-stream-prefix'];
  if (!group) return { none: `container ${container}'s awslogs configuration names no awslogs-group` };
  if (!prefix) {
    return { none: `container ${container} logs to ${group} without awslogs-stream-prefix (stream of its Docker id)` };
  }
  const region = log.options?.['awslogs-region'];
  const stream = `${prefix}/${container}/${taskArn.split('/').pop() ?? ''}`;
  return region ? { group, stream, region } : { group, stream };
}

/**
 * A ReleaseCommandRunner on ECS: a command is a one-off task (RunTask) of the release's task definition revision
 * (registered, or adopted when start() or an earlier command registered it: see releaseRevision), with aws.container's
 * command overridden, placed as the colour's ECS service places its tasks (network configuration, capacity provider
 * strategy or launch type, platform version, placement) and run with the revision's own task role, execution role and
 * secrets: the worker passes no credentials, and `req.database` is the one the task definition names.
 *
 * The colour is the one tagged with the release (a command after start()), else the idle one (a migration before
 * it). The task's startedBy is derived from the runId, and a retried run first lists the tasks started by it
 * (running, then stopped) and adopts the newest instead of starting a second one. It polls DescribeTasks every
 * aws.pollInterval until the task is STOPPED, reporting its lastStatus; past req.timeoutMs (counted from the task's
 * creation) it sends StopTask and the result is timedOut; an aborted signal sends StopTask and rethrows the abort.
 *
 * Throws PlatformError ReleaseCommandFailed (permanent) for a request it cannot run (empty command, invalid runId, a
 * workerCwd, a database other than the service's), EcsRunTaskFailed (ECS placed no task: retryable for want of
 * capacity, else permanent), EcsNoIdleService, EcsContainerNotFound, InvalidReleaseId, and the AWS failures of
 * awsCall (AccessDenied permanent, naming the IAM action; throttling rethrown for the activity's retry).
 */
export function createEcsCommandRunner(ctx: AwsContext, opts: EcsCommandRunnerOptions = {}): ReleaseCommandRunner {
  const { spec } = ctx;
  const where = `cluster ${spec.cluster}`;

  function refuse(message: string): PlatformError {
    return new PlatformError(message, { type: 'ReleaseCommandFailed', permanent: true });
  }

  function checkRequest(req: ReleaseCommandRequest): void {
    checkReleaseId(req.releaseId);
    if (!RUN_ID.test(req.runId)) throw refuse(`run id "${req.runId}" must be 1 to 64 characters of [a-z0-9-]`);
    if (req.command.length === 0) throw refuse(`the ${req.purpose} command of ${req.version} is empty`);
    if (req.workerCwd !== undefined) {
      throw refuse(`a ${req.purpose} command on the worker (${req.workerCwd}) is not run by the ECS runner`);
    }
    const own = spec.rds?.database;
    if (req.database && own !== undefined && req.database.name !== own) {
      throw refuse(
        `a one-off ECS task reaches the database its task definition names (${own}), not ${req.database.name}: ` +
          `the ${req.purpose} command cannot be pointed at another database on aws-ecs`,
      );
    }
  }

  async function describeTaskDefinition(arn: string): Promise<TaskDefinition> {
    const res = await awsCall('ecs:DescribeTaskDefinition', `task definition ${arn}`, () =>
      ctx.clients.ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn })),
    );
    if (!res.taskDefinition) throw awsPermanent('AwsNotFound', `task definition ${arn} was not returned`);
    return res.taskDefinition;
  }

  async function describeTasks(arns: string[]): Promise<Task[]> {
    if (arns.length === 0) return [];
    const res = await awsCall('ecs:DescribeTasks', `tasks in ${where}`, () =>
      ctx.clients.ecs.send(new DescribeTasksCommand({ cluster: spec.cluster, tasks: arns })),
    );
    return res?.tasks ?? [];
  }

  /** The newest task started for this run: a running one first, else the last that stopped. */
  async function startedTask(startedBy: string): Promise<Task | undefined> {
    const arns: string[] = [];
    for (const desiredStatus of ['RUNNING', 'STOPPED'] as const) {
      const res = await awsCall('ecs:ListTasks', `tasks started by ${startedBy} in ${where}`, () =>
        ctx.clients.ecs.send(new ListTasksCommand({ cluster: spec.cluster, startedBy, desiredStatus })),
      );
      arns.push(...(res?.taskArns ?? []));
    }
    const tasks = await describeTasks([...new Set(arns)].slice(0, 100));
    const created = (t: Task) => t.createdAt?.getTime() ?? 0;
    const newest = (list: Task[]) => list.sort((a, b) => created(b) - created(a))[0];
    return newest(tasks.filter((t) => t.desiredStatus !== 'STOPPED')) ?? newest(tasks);
  }

  /** The revision of req.version and the placement of the colour it goes (or went) to. */
  async function launchFor(req: ReleaseCommandRequest): Promise<{ revision: TaskDefinition; launch: TaskLaunch }> {
    const services = await describeColours(ctx);
    const tagged = taggedColour(services, req.releaseId);
    const colour = tagged?.colour ?? idleColour(services, effectiveWeights(await readTraffic(ctx), services));
    const taggedRevision = tagged?.version === req.version ? tagged.tags[TASK_DEFINITION_TAG] : undefined;
    const revision = taggedRevision
      ? await describeTaskDefinition(taggedRevision)
      : (await releaseRevision(ctx, baseRevision(services, colour), req)).taskDefinition;
    if (!revision.containerDefinitions?.some((c) => c.name === spec.container)) {
      throw awsPermanent(
        'EcsContainerNotFound',
        `task definition ${revision.taskDefinitionArn ?? '?'} has no container "${spec.container}"; fix aws.container`,
      );
    }
    return { revision, launch: services[colour].launch };
  }

  async function runTask(
    req: ReleaseCommandRequest,
    startedBy: string,
    revision: TaskDefinition,
    launch: TaskLaunch,
  ): Promise<Task> {
    const arn = revision.taskDefinitionArn ?? '';
    const input: RunTaskCommandInput = {
      cluster: spec.cluster,
      taskDefinition: arn,
      count: 1,
      startedBy,
      // ECS's own idempotency for the instant between RunTask and ListTasks seeing the task.
      clientToken: req.runId,
      overrides: { containerOverrides: [{ name: spec.container, command: req.command }] },
      ...placement(launch),
    };
    const res = await awsCall('ecs:RunTask', `task definition ${arn} in ${where}`, () =>
      ctx.clients.ecs.send(new RunTaskCommand(input)),
    );
    const task = res?.tasks?.[0];
    if (task?.taskArn) return task;
    const failures = (res?.failures ?? []).map((f) => `${f.reason ?? '?'}${f.detail ? ` (${f.detail})` : ''}`);
    const why = failures.join('; ') || 'no task and no failure returned';
    // No capacity (RESOURCE:*, AGENT, Fargate's "Capacity is unavailable") may pass; anything else will not.
    const retryable = (res?.failures ?? []).some((f) => /^(RESOURCE:|AGENT)|capacity/i.test(f.reason ?? ''));
    throw new PlatformError(`ecs:RunTask of ${arn} in ${where} placed no task: ${why}`, {
      type: 'EcsRunTaskFailed',
      permanent: !retryable,
      details: [{ action: 'ecs:RunTask', resource: arn, failures }],
    });
  }

  async function stopTask(task: Task, reason: string): Promise<void> {
    await awsCall('ecs:StopTask', `task ${task.taskArn ?? '?'} in ${where}`, () =>
      ctx.clients.ecs.send(new StopTaskCommand({ cluster: spec.cluster, task: task.taskArn, reason })),
    );
  }

  /** Sends StopTask for an aborted run, then rethrows the abort (a StopTask that fails is logged, not thrown). */
  async function abandon(task: Task, signal: AbortSignal): Promise<never> {
    try {
      await stopTask(task, CANCEL_REASON);
    } catch (err) {
      ctx.activity()?.log(`StopTask of ${task.taskArn ?? '?'} after the abort failed: ${awsErrorCode(err)}`);
    }
    throw signal.reason instanceof Error ? signal.reason : new Error(`aborted: ${String(signal.reason)}`);
  }

  /** The last COMMAND_TAIL_CHARS of the container's output, scrubbed whole before it is cut, and where it is. */
  async function tailOf(revision: TaskDefinition, task: Task): Promise<{ tail: string; logLocation: string }> {
    const logs = awslogsStream(revision, spec.container, task.taskArn ?? '');
    if ('none' in logs) return { tail: '', logLocation: `task ${task.taskArn ?? '?'} in ${where}: ${logs.none}` };
    const region = logs.region ?? spec.region;
    const logLocation = `CloudWatch Logs group ${logs.group}, stream ${logs.stream} (${region})`;
    if (!opts.logs)
      return { tail: '', logLocation: `${logLocation}; not read: the worker has no CloudWatch Logs client` };
    try {
      const res = await opts.logs.getLogEvents(region, {
        logGroupName: logs.group,
        logStreamName: logs.stream,
        startFromHead: false,
        limit: TAIL_EVENTS,
      });
      const text = scrubSecrets((res.events ?? []).map((e) => (e.message ?? '').replace(/\n$/, '')).join('\n'));
      return { tail: text.slice(-COMMAND_TAIL_CHARS), logLocation };
    } catch (err) {
      // The exit code decides the run; a tail that cannot be read (no stream: the task never started) only says so.
      const code = awsErrorCode(err);
      const fix = code.startsWith('AccessDenied') ? ": grant the worker's role logs:GetLogEvents on the group" : '';
      return { tail: '', logLocation: `${logLocation}; not read: ${code}${fix}` };
    }
  }

  return {
    async run(req, progress, signal) {
      checkRequest(req);
      const say = (p: CommandProgress) => progress?.(p);
      const startedBy = startedByFor(req.runId);
      say({ phase: 'starting', detail: `tasks started by ${startedBy}` });
      const found = await startedTask(startedBy);
      const adopted = found !== undefined;
      let task: Task;
      let revision: TaskDefinition;
      if (found) {
        task = found;
        revision = await describeTaskDefinition(found.taskDefinitionArn ?? '');
      } else {
        const launch = await launchFor(req);
        revision = launch.revision;
        signal?.throwIfAborted();
        task = await runTask(req, startedBy, revision, launch.launch);
      }
      const taskId = task.taskArn?.split('/').pop() ?? '?';
      const scheduledMs = ctx.activity()?.scheduledTimestampMs;
      const startedAtMs =
        task.createdAt?.getTime() ?? (scheduledMs !== undefined && scheduledMs > 0 ? scheduledMs : ctx.now());
      const deadline = startedAtMs + req.timeoutMs;
      let timedOut = task.stoppedReason?.startsWith(TIMEOUT_REASON) ?? false;
      let stopDeadline = timedOut ? ctx.now() + STOP_GRACE_MS : Number.POSITIVE_INFINITY;
      let missing = 0;
      say({ phase: 'running', detail: `task ${taskId}: ${task.lastStatus ?? 'PROVISIONING'}` });
      while (task.lastStatus !== 'STOPPED') {
        if (signal?.aborted) return abandon(task, signal);
        if (!timedOut && ctx.now() >= deadline) {
          timedOut = true;
          stopDeadline = ctx.now() + STOP_GRACE_MS;
          say({ phase: 'stopping', detail: `task ${taskId}: timed out after ${formatDuration(req.timeoutMs)}` });
          await stopTask(task, `${TIMEOUT_REASON} ${formatDuration(req.timeoutMs)}`);
        } else if (timedOut && ctx.now() >= stopDeadline) {
          break;
        }
        try {
          await ctx.sleep(spec.pollIntervalMs, signal);
        } catch (err) {
          if (signal?.aborted) return abandon(task, signal);
          throw err;
        }
        const seen: Task | undefined = (await describeTasks([task.taskArn ?? '']))[0];
        if (!seen) {
          if (++missing >= MISSING_POLLS) {
            throw refuse(`task ${task.taskArn ?? '?'} in ${where} is not known to ECS any more (DescribeTasks)`);
          }
          continue;
        }
        missing = 0;
        task = seen;
        say({ phase: timedOut ? 'stopping' : 'running', detail: `task ${taskId}: ${task.lastStatus ?? '?'}` });
      }
      const container = task.containers?.find((c) => c.name === spec.container);
      const reasons = [task.stoppedReason, container?.reason && `${spec.container}: ${container.reason}`];
      if (task.lastStatus !== 'STOPPED') reasons.push(`still ${task.lastStatus ?? '?'} after StopTask`);
      const stoppedReason = scrubSecrets(reasons.filter(Boolean).join('; '));
      const { tail, logLocation } = await tailOf(revision, task);
      say({ phase: 'done', detail: `task ${taskId}: exit code ${container?.exitCode ?? 'none'}` });
      return {
        runId: req.runId,
        exitCode: timedOut ? null : (container?.exitCode ?? null),
        timedOut,
        ...(stoppedReason ? { stoppedReason } : {}),
        tail,
        logLocation,
        startedAtMs: task.startedAt?.getTime() ?? startedAtMs,
        endedAtMs: task.stoppedAt?.getTime() ?? ctx.now(),
        adopted,
      } satisfies ReleaseCommandResult;
    },
  };
}

/** RunTask's placement fields from a service's: a capacity provider strategy excludes a launch type. */
function placement(l: TaskLaunch): Partial<RunTaskCommandInput> {
  return {
    ...(l.capacityProviderStrategy?.length
      ? { capacityProviderStrategy: l.capacityProviderStrategy }
      : l.launchType
        ? { launchType: l.launchType }
        : {}),
    ...(l.networkConfiguration ? { networkConfiguration: l.networkConfiguration } : {}),
    ...(l.platformVersion ? { platformVersion: l.platformVersion } : {}),
    ...(l.placementConstraints?.length ? { placementConstraints: l.placementConstraints } : {}),
    ...(l.placementStrategy?.length ? { placementStrategy: l.placementStrategy } : {}),
  };
}
