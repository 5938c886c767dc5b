/**
 * The validation of one merged service: its schema, then the checks that relate several fields (what a platform
 * requires, ports outside the release range, timeouts, traffic steps and bakes, approvers), which run even when the
 * schema finds problems.
 */
import { z } from 'zod';
import type { ApprovalGate, JsonValue, Platform } from '../shared/service-plan';
import { AWS_MIN_INTERVAL_MS } from './aws-ecs-schema';
import { duration, formatDuration } from './durations';
import { asObject, isPlainObject, type Path } from './json';
import { Problems, errorMap, formatPath, type Problem } from './problems';
import {
  analysisSchema,
  gateSchema,
  healthSchema,
  platformSchema,
  releaseSchema,
  serviceSchema,
  trafficSchema,
} from './schema';
import { portSchema, weightSchema } from './values';

/** Problems of one merged service, with paths relative to the service block. */
export function validateService(merged: JsonValue): Problem[] {
  const problems = new Problems();
  const parsed = serviceSchema.safeParse(merged, { error: errorMap(problems) });
  if (!parsed.success) problems.addZod(parsed.error.issues, []);
  if (isPlainObject(merged)) problems.list.push(...serviceCrossChecks(merged));
  return problems.list;
}

/** The checks that relate several fields. They read each field through its own schema, so they run regardless. */
function serviceCrossChecks(s: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  const add = (path: Path, message: string) => out.push({ path, message, kind: 'relation' });

  const platform = valid(platformSchema, s.platform);
  const onlyFor = (key: string, p: Platform) =>
    add([key], `is only used by platform ${p}; remove it (in an environment override, \`${key}: null\` removes it)`);
  if (platform === 'single-host') {
    if (s.listen === undefined) {
      add(['listen'], 'is required for platform single-host: the stable frontend port, e.g. { port: 18080 }');
    }
    if (s.release === undefined) {
      add(
        ['release'],
        'is required for platform single-host: how to start a release { command, cwd, env, portRange, drain }',
      );
    }
    if (s.aws !== undefined) onlyFor('aws', 'aws-ecs');
  } else if (platform === 'aws-ecs') {
    if (s.aws === undefined) {
      add(['aws'], 'is required for platform aws-ecs: the ECS cluster, service and task settings');
    }
    if (s.listen !== undefined) onlyFor('listen', 'single-host');
    if (s.release !== undefined) onlyFor('release', 'single-host');
    const aws = asObject(s.aws);
    if (s.aws !== undefined && (aws.listenerRule === undefined) === (aws.listener === undefined)) {
      add(
        ['aws'],
        'needs exactly one of listenerRule (the production listener rule whose forward action splits traffic) or listener (its default action)',
      );
    }
    const database = asObject(s.database);
    if (s.database !== undefined && s.aws !== undefined && aws.rds === undefined) {
      add(['aws', 'rds'], 'is required with database: the RDS instance, e.g. { instance: shop-db }');
    }
    const rds = asObject(aws.rds);
    if (isPlainObject(aws.rds) && (rds.instance === undefined) === (rds.cluster === undefined)) {
      add(
        ['aws', 'rds'],
        'needs exactly one of instance (the RDS DB instance identifier) or cluster (the Aurora PostgreSQL DB cluster identifier)',
      );
    }
    if (rds.cluster !== undefined && asObject(rds.drill).instanceClass === undefined) {
      add(
        ['aws', 'rds', 'drill', 'instanceClass'],
        'is required with cluster: the class of the writer instance that a restore of the Aurora cluster creates ' +
          '(Aurora restores have no default), e.g. db.r6g.large',
      );
    }
    restoreOverridesOfTheWrongKind(rds, add);
    if (s.database !== undefined && database.urlEnv === undefined) {
      add(
        ['database', 'urlEnv'],
        'is required for platform aws-ecs: the worker environment variable holding the URL (with credentials) of the RDS instance',
      );
    }
    if (s.backup !== undefined) {
      add(
        ['backup'],
        'is for single-host (pgBackRest on the stack PostgreSQL); on aws-ecs set the RDS automated backups ' +
          '(BackupRetentionPeriod, the backup window) on the instance: they are its continuous backups',
      );
    }
    if (asObject(s.drill).integrityCommand !== undefined) {
      add(
        ['drill', 'integrityCommand'],
        'is not supported on aws-ecs yet: a one-off task of the service reads its database from the task definition, ' +
          "so it would check the live database instead of the drill's copy; check the copy with the drill's own integrity step",
      );
    }
    if (asObject(asObject(s.analysis).compare).baseline === 'on') {
      add(
        ['analysis', 'compare', 'baseline'],
        'is "on", but aws-ecs runs no baseline: the canary is compared with the stable release (its tasks share the ' +
          'load per task alike); use auto or off',
      );
    }
    const interval = valid(duration(), asObject(s.analysis).interval);
    if (interval !== undefined && interval < AWS_MIN_INTERVAL_MS) {
      add(
        ['analysis', 'interval'],
        `${formatDuration(interval)} is shorter than CloudWatch's 1-minute period of load balancer metrics; use at least 1m on aws-ecs`,
      );
    }
  }

  const db = asObject(s.database);
  if (s.platform === 'single-host' && s.backup !== undefined && s.database === undefined) {
    add(
      ['backup'],
      "needs database: the backups are of the stack PostgreSQL cluster that holds the service's database; " +
        'add database: { name: <db> }, or remove backup:',
    );
  }
  if (s.platform === 'single-host' && s.backup !== undefined && db.urlEnv !== undefined) {
    add(
      ['backup'],
      "cannot be used with database.urlEnv: the worker can only archive the WAL of the stack's own PostgreSQL; " +
        'back up that server where it runs, and keep the pg_dump snapshots the deploys take here',
    );
  }
  if (db.migrate !== undefined && db.migrations !== undefined) {
    add(
      ['database', 'migrate'],
      'is an alternative to database.migrations: either the release migrates with its own command, or the worker applies a folder of SQL migrations; keep one',
    );
  }

  const release = asObject(s.release);
  const port = valid(portSchema, asObject(s.listen).port);
  const range = valid(releaseSchema.shape.portRange, release.portRange);
  if (port !== undefined && range && port >= range.min && port <= range.max) {
    add(
      ['listen', 'port'],
      `${port} is inside release.portRange ${range.min}..${range.max}; the frontend port must be outside the ports releases listen on`,
    );
  }
  const command = valid(releaseSchema.shape.command, release.command);
  const env = valid(releaseSchema.shape.env, release.env);
  if (
    platform === 'single-host' &&
    command &&
    env &&
    ![...command, ...Object.values(env)].some((v) => v.includes('{port}'))
  ) {
    add(
      ['release'],
      'neither release.command nor release.env uses {port}, so a release could not know which port it was given; add e.g. PORT: "{port}"',
    );
  }

  const health = asObject(s.health);
  const timeout = valid(healthSchema.shape.timeout, health.timeout);
  const deadline = valid(healthSchema.shape.deadline, health.deadline);
  if (timeout !== undefined && deadline !== undefined && timeout >= deadline) {
    add(
      ['health', 'timeout'],
      `${formatDuration(timeout)} must be shorter than health.deadline (${formatDuration(deadline)})`,
    );
  }

  if (Array.isArray(s.smoke)) {
    const names = new Map<string, number>();
    s.smoke.forEach((check, i) => {
      const name = asObject(check).name;
      if (typeof name !== 'string') return;
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else
        add(['smoke', i, 'name'], `${JSON.stringify(name)} is already the name of smoke[${first}]; names are unique`);
    });
  }

  const steps = asObject(s.traffic).steps;
  if (Array.isArray(steps) && steps.length > 0) {
    let previous: number | undefined;
    steps.forEach((step, i) => {
      const weight = valid(weightSchema, asObject(step).weight);
      if (weight === undefined) return;
      if (previous !== undefined && weight <= previous) {
        add(
          ['traffic', 'steps', i, 'weight'],
          `must be more than the previous step's weight ${previous}: weights increase strictly and the last is 100`,
        );
      }
      previous = Math.max(previous ?? 0, weight);
    });
    const last = steps.length - 1;
    const lastWeight = valid(weightSchema, asObject(steps[last]).weight);
    if (lastWeight !== undefined && lastWeight !== 100) {
      add(
        ['traffic', 'steps', last, 'weight'],
        `the last step must be 100 (all traffic on the new release), got ${lastWeight}`,
      );
    }
    const analysis = asObject(s.analysis);
    const given = valid(analysisSchema.in.shape.interval, analysis.interval);
    // aws-ecs windows are at least CloudWatch's period (toResolved raises the interval to it).
    const interval = platform === 'aws-ecs' && given !== undefined ? Math.max(given, AWS_MIN_INTERVAL_MS) : given;
    const conclusive = valid(analysisSchema.in.shape.minConclusiveWindows, analysis.minConclusiveWindows) ?? 1;
    steps.forEach((step, i) => {
      const bake = valid(trafficSchema.shape.steps.element.in.shape.bake, asObject(step).bake);
      if (interval !== undefined && bake !== undefined && bake > 0 && bake < interval) {
        add(
          ['traffic', 'steps', i, 'bake'],
          `${formatDuration(bake)} is shorter than analysis.interval (${formatDuration(interval)}), so no analysis window would complete; use 0 or at least ${formatDuration(interval)}`,
        );
      } else if (interval !== undefined && bake !== undefined && bake > 0 && Math.floor(bake / interval) < conclusive) {
        add(
          ['traffic', 'steps', i, 'bake'],
          `${formatDuration(bake)} holds ${Math.floor(bake / interval)} analysis window(s) of ${formatDuration(interval)}, fewer than analysis.minConclusiveWindows (${conclusive}), so the step could never be judged; use 0 or at least ${formatDuration(conclusive * interval)}, or lower minConclusiveWindows`,
        );
      }
    });
  }

  checkApprovals(s.approvals, ['approvals'], add);
  const onInconclusive = asObject(s.analysis).onInconclusive;
  const approvers = asObject(s.approvals).approvers;
  if (onInconclusive === 'pause' && (approvers === undefined || (Array.isArray(approvers) && approvers.length === 0))) {
    add(
      ['analysis', 'onInconclusive'],
      'is pause, but approvals.approvers is empty: nobody could decide about a step without evidence; list approvers, or choose extend, fail or proceed',
    );
  }
  const rollback = asObject(s.rollback);
  checkApprovals(rollback.approvals, ['rollback', 'approvals'], add);
  uniqueItems(rollback.dbRestoreApprovers, ['rollback', 'dbRestoreApprovers'], add);
  return out;
}

function checkApprovals(raw: unknown, at: Path, add: (path: Path, message: string) => void): void {
  const approvals = asObject(raw);
  const gates = Array.isArray(approvals.gates)
    ? approvals.gates.filter((g): g is ApprovalGate => valid(gateSchema, g) !== undefined)
    : [];
  uniqueItems(approvals.gates, [...at, 'gates'], add);
  uniqueItems(approvals.approvers, [...at, 'approvers'], add);
  const approvers = approvals.approvers;
  if (gates.length > 0 && (approvers === undefined || (Array.isArray(approvers) && approvers.length === 0))) {
    add(
      [...at, 'approvers'],
      `must list at least one approver while ${formatPath([...at, 'gates'])} is not empty (${[...new Set(gates)].join(', ')}); nobody could approve otherwise`,
    );
  }
}

function uniqueItems(list: unknown, at: Path, add: (path: Path, message: string) => void): void {
  if (!Array.isArray(list)) return;
  list.forEach((item, i) => {
    if (typeof item === 'string' && list.indexOf(item) < i) {
      add([...at, i], `${JSON.stringify(item)} is listed twice; list each once`);
    }
  });
}

/** The value parsed by `schema`, or undefined when it is not valid (its own problem is reported elsewhere). */
function valid<S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined {
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

/** Storage types of an RDS DB instance, and of an Aurora cluster (Standard, I/O-Optimized). */
const INSTANCE_STORAGE = new Set(['gp2', 'gp3', 'io1', 'io2', 'standard']);
const CLUSTER_STORAGE = new Set(['aurora', 'aurora-iopt1']);

/**
 * aws.rds.restore's overrides that the restore of the service's kind of database cannot apply: refused, instead of
 * a restore into production that silently lacks them.
 */
function restoreOverridesOfTheWrongKind(
  rds: Record<string, unknown>,
  add: (path: Path, message: string) => void,
): void {
  const restore = asObject(rds.restore);
  const at = (key: string) => ['aws', 'rds', 'restore', key];
  const storage = typeof restore.storageType === 'string' ? restore.storageType : undefined;
  if (rds.instance !== undefined && rds.cluster === undefined) {
    if (restore.kmsKeyId !== undefined) {
      add(
        at('kmsKeyId'),
        "does not apply to an instance: a restored DB instance is encrypted with its snapshot's KMS key " +
          '(RestoreDBInstanceFromDBSnapshot takes none); remove it (to change the key, copy the snapshot with ' +
          'CopyDBSnapshot and that KmsKeyId)',
      );
    }
    if (restore.clusterParameterGroup !== undefined) {
      add(
        at('clusterParameterGroup'),
        'is for an Aurora cluster (aws.rds.cluster); an instance takes parameterGroup: remove it or use parameterGroup',
      );
    }
    if (storage !== undefined && CLUSTER_STORAGE.has(storage)) {
      add(
        at('storageType'),
        `${storage} is an Aurora cluster's storage; an instance takes gp2, gp3, io1, io2 or standard: ` +
          "use one of those or remove it (the source instance's is copied)",
      );
    }
  } else if (rds.cluster !== undefined && rds.instance === undefined) {
    if (restore.multiAz !== undefined) {
      add(
        at('multiAz'),
        'does not apply to an Aurora cluster: its availability comes from its reader instances in other zones, ' +
          'which a restore creates again as the service\'s cluster has them (see "Aurora PostgreSQL clusters" in ' +
          'docs/aws-ecs.md); remove it',
      );
    }
    if (restore.optionGroup !== undefined) {
      add(at('optionGroup'), 'does not apply to an Aurora PostgreSQL cluster (it has no option groups); remove it');
    }
    if (storage !== undefined && INSTANCE_STORAGE.has(storage)) {
      add(
        at('storageType'),
        `${storage} is an instance's storage; an Aurora cluster takes aurora (Standard) or aurora-iopt1 ` +
          "(I/O-Optimized): use one of those or remove it (the source cluster's is copied)",
      );
    }
  }
}
