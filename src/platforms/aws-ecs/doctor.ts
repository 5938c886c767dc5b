import { DescribeServicesCommand, DescribeTaskDefinitionCommand, type Service } from '@aws-sdk/client-ecs';
import {
  DescribeListenersCommand,
  DescribeRulesCommand,
  DescribeTargetGroupsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  DescribeAccountAttributesCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
} from '@aws-sdk/client-rds';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { rdsLiveId } from './naming';
import { describeTargetsWith, targetWords, type ColourTargets } from './colour-scaling';
import type { AwsEcsSpec } from '../../shared/service-plan';
import { fail, pass, type Check } from '../../stack/component';
import { awsClients, TAG } from './context';
import { awslogsStream } from './ecs-commands';
import { awsErrorCode, classifyAwsError } from './errors';
import { checkRdsConnection } from './rds-connection';

/** A check's own finding about a resource, with what to do about it. */
const finding = (message: string, fix: string) => Object.assign(new Error(message), { name: 'Finding', fix });

/**
 * `runbook doctor` for one aws-ecs service and environment: the AWS credentials this machine resolves, and each
 * resource runbook.yaml names (the two ECS services, the target groups, the listener rule or listener, the test
 * listener, the RDS instance or Aurora cluster), plus the database URL variable; with `releaseCommands` (the service
 * runs commands of its releases: a migrate command, command smoke checks, a drill's integrity command), what their
 * one-off tasks need of the live task definition; with the URL variable set, a real connection to the database with
 * it (checkRdsConnection: TLS, the certificate, the password; `connectTimeoutMs`, default 10 s). Read-only; never
 * throws.
 */
export async function awsDoctorChecks(
  spec: AwsEcsSpec,
  at: { service: string; environment: string },
  env: NodeJS.ProcessEnv,
  opts: { releaseCommands?: boolean; connectTimeoutMs?: number } = {},
): Promise<Check[]> {
  const component = `aws ${at.service}/${at.environment}`;
  const c = awsClients(spec.region, spec.endpoint);
  const checks: Check[] = [];
  const probe = async (check: string, action: string, run: () => Promise<string>) => {
    try {
      checks.push(pass(component, check, await run()));
    } catch (err) {
      const kind = classifyAwsError(err);
      const own = (err as { fix?: string }).fix;
      const why = own ? (err as Error).message : `${awsErrorCode(err)}: ${(err as Error).message}`;
      checks.push(
        fail(
          component,
          check,
          why,
          // A finding of the check itself (not an AWS error) carries its own fix.
          own ??
            (kind === 'access'
              ? `grant the worker's role ${action} (docs/aws-ecs.md has the policy)`
              : kind === 'not-found'
                ? 'check the name/ARN and region in runbook.yaml'
                : 'check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, the instance/task role) and network access'),
        ),
      );
    }
  };

  await probe('credentials', 'sts:GetCallerIdentity', async () => {
    const id = await c.sts.send(new GetCallerIdentityCommand({}));
    return `${id.Arn ?? '?'} (account ${id.Account ?? '?'}, region ${spec.region}${spec.endpoint ? `, endpoint ${spec.endpoint}` : ''})`;
  });
  if (checks.some((x) => !x.ok)) return checks; // nothing else can work without credentials

  let described: Service[] = [];
  await probe('ecs services', 'ecs:DescribeServices', async () => {
    const names = [spec.services.blue, spec.services.green];
    const res = await c.ecs.send(
      new DescribeServicesCommand({ cluster: spec.cluster, services: names, include: ['TAGS'] }),
    );
    const missing = [
      ...(res.failures ?? []).map((f) => `${f.arn ?? '?'}: ${f.reason ?? '?'}`),
      ...(res.services ?? []).filter((s) => s.status !== 'ACTIVE').map((s) => `${s.serviceName}: ${s.status}`),
    ];
    if (missing.length > 0) throw Object.assign(new Error(missing.join('; ')), { name: 'ServiceNotFoundException' });
    described = res.services ?? [];
    return `${names.join(', ')} in ${spec.cluster}: ACTIVE`;
  });
  if (described.length > 0) checks.push(...deploymentChecks(component, described));
  const colours = colourPair(spec, described);
  if (colours) {
    await probe('autoscaling', 'application-autoscaling:DescribeScalableTargets', async () => {
      const targets = await describeTargetsWith(c.autoscaling, spec.cluster, {
        blue: { arn: colours.blue.serviceArn, name: spec.services.blue },
        green: { arn: colours.green.serviceArn, name: spec.services.green },
      });
      return scalingCheck(colours, targets);
    });
  }
  if (opts.releaseCommands) {
    // A one-off task runs the release's revision, made from the live one: its container, roles and log stream.
    await probe('release commands', 'ecs:DescribeTaskDefinition', async () => {
      const res = await c.ecs.send(
        new DescribeServicesCommand({ cluster: spec.cluster, services: [spec.services.blue, spec.services.green] }),
      );
      const withTd = (res.services ?? []).filter((s) => s.taskDefinition);
      const live = withTd.find((s) => (s.desiredCount ?? 0) > 0) ?? withTd[0];
      if (!live?.taskDefinition) throw new Error('neither ECS service has a task definition');
      const { taskDefinition: td } = await c.ecs.send(
        new DescribeTaskDefinitionCommand({ taskDefinition: live.taskDefinition }),
      );
      const name = td?.taskDefinitionArn?.split('/').pop() ?? live.taskDefinition;
      if (!td?.containerDefinitions?.some((d) => d.name === spec.container)) {
        throw finding(`${name} has no container "${spec.container}"`, 'correct aws.container in runbook.yaml');
      }
      if (td.networkMode === 'awsvpc' && !live.networkConfiguration) {
        throw finding(
          `${name} uses awsvpc, but ${live.serviceName ?? '?'} has no network configuration for the tasks to copy`,
          'give the ECS services their awsvpc network configuration',
        );
      }
      const logs = awslogsStream(td, spec.container, 'task/<id>');
      if ('none' in logs) {
        throw finding(
          `${logs.none}: a command's output could not be found`,
          `give container ${spec.container} the awslogs log driver with awslogs-group and awslogs-stream-prefix`,
        );
      }
      const roles = `task role ${td.taskRoleArn ?? 'none'}, execution role ${td.executionRoleArn ?? 'none'}`;
      return `one-off tasks of ${name}'s family, ${roles}; output in ${logs.group} (${logs.stream.replace(/<id>$/, '<task id>')})`;
    });
  }
  await probe('target groups', 'elasticloadbalancing:DescribeTargetGroups', async () => {
    const arns = [spec.targetGroups.blue, spec.targetGroups.green];
    const res = await c.elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns }));
    return (res.TargetGroups ?? []).map((t) => t.TargetGroupName ?? '?').join(', ');
  });
  await probe('traffic', 'elasticloadbalancing:DescribeRules', async () => {
    if (spec.listenerRule) {
      const res = await c.elb.send(new DescribeRulesCommand({ RuleArns: [spec.listenerRule] }));
      const forward = res.Rules?.[0]?.Actions?.find((a) => a.Type === 'forward');
      if (!forward) throw new Error(`listener rule ${spec.listenerRule} has no forward action`);
      return `listener rule forwards to ${forward.ForwardConfig?.TargetGroups?.length ?? 1} target group(s)`;
    }
    await c.elb.send(new DescribeListenersCommand({ ListenerArns: [spec.listener!] }));
    return `listener ${spec.listener}`;
  });
  await probe('test listener', 'elasticloadbalancing:DescribeListeners', async () => {
    const res = await c.elb.send(new DescribeListenersCommand({ ListenerArns: [spec.testListener] }));
    return `port ${res.Listeners?.[0]?.Port ?? '?'}`;
  });
  if (spec.rds) {
    const rds = spec.rds;
    const live = rdsLiveId(rds);
    const cluster = rds.cluster !== undefined;
    await probe(
      cluster ? 'rds cluster' : 'rds instance',
      cluster ? 'rds:DescribeDBClusters' : 'rds:DescribeDBInstances',
      async () => {
        const db = cluster
          ? (await c.rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: live }))).DBClusters?.map((d) => ({
              ...d,
              status: d.Status,
            }))[0]
          : (await c.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: live }))).DBInstances?.map(
              (d) => ({
                ...d,
                status: d.DBInstanceStatus,
              }),
            )[0];
        return `${live}: ${db?.status ?? '?'} (${db?.Engine ?? '?'} ${db?.EngineVersion ?? ''})`;
      },
    );
    // Every deploy and drill takes a manual snapshot: near the quota, deploys start failing (aws.rds.retention).
    await probe('rds snapshot quota', 'rds:DescribeAccountAttributes', async () => {
      const res = await c.rds.send(new DescribeAccountAttributesCommand({}));
      const quota = (res.AccountQuotas ?? []).find(
        (q) => q.AccountQuotaName === (cluster ? 'ManualClusterSnapshots' : 'ManualSnapshots'),
      );
      if (!quota?.Max) return 'no manual-snapshot quota reported';
      const used = quota.Used ?? 0;
      const detail = `${used} of ${quota.Max} manual ${cluster ? 'cluster ' : ''}snapshots used in ${spec.region}`;
      if (used >= quota.Max * 0.9) {
        throw Object.assign(
          new Error(
            `${detail}: deploys fail at the quota; set aws.rds.retention (docs/aws-ecs.md), delete old snapshots ` +
              'or raise the quota',
          ),
          { name: 'SnapshotQuotaNearlyExceeded' },
        );
      }
      return detail;
    });
    const url = env[rds.urlEnv];
    checks.push(
      url
        ? pass(component, 'database url', `${rds.urlEnv} is set`)
        : fail(
            component,
            'database url',
            `${rds.urlEnv} is not set in this environment`,
            `set ${rds.urlEnv} on the worker to postgres://<user>:<password>@<endpoint>:5432/${rds.database}` +
              '?sslmode=verify-full&sslrootcert=/path/to/the-rds-ca-bundle.pem',
          ),
    );
    if (url) {
      // A real connection with the worker's URL: TLS, the certificate against the RDS CA bundle, the password.
      const outcome = await checkRdsConnection(url, { region: spec.region, timeoutMs: opts.connectTimeoutMs });
      checks.push(
        outcome.ok
          ? pass(component, 'database connection', outcome.detail)
          : fail(component, 'database connection', outcome.message, outcome.fix),
      );
    }
  }
  return checks;
}

/**
 * What the blue/green rollouts need of the two ECS services, from their DescribeServices answer: the ECS deployment
 * controller (runbook's UpdateService rollouts; CODE_DEPLOY and EXTERNAL services refuse them), the deployment
 * circuit breaker (without it a release whose tasks never start is seen failing only at aws.rolloutTimeout), and the
 * long ARN format (cluster name in the service ARN), without which ECS cannot tag a service and runbook finds its
 * releases by tags.
 */
export function deploymentChecks(component: string, services: Service[]): Check[] {
  const each = (problem: (s: Service) => string | undefined) =>
    services.flatMap((s) => {
      const p = problem(s);
      return p ? [`${s.serviceName ?? '?'}: ${p}`] : [];
    });
  const names = services.map((s) => s.serviceName ?? '?').join(', ');
  const controller = each((s) => {
    const type = s.deploymentController?.type ?? 'ECS';
    return type === 'ECS' ? undefined : `deployment controller ${type}`;
  });
  const breaker = each((s) => {
    const b = s.deploymentConfiguration?.deploymentCircuitBreaker;
    return !b?.enable ? 'circuit breaker off' : !b.rollback ? 'circuit breaker without rollback' : undefined;
  });
  // arn:aws:ecs:<region>:<account>:service/<cluster>/<name> (long) or service/<name> (the old format)
  const longArn = each((s) =>
    s.serviceArn && !/:service\/[^/]+\/[^/]+$/.test(s.serviceArn) ? `old ARN format ${s.serviceArn}` : undefined,
  );
  return [
    controller.length > 0
      ? fail(
          component,
          'ecs deployment controller',
          `${controller.join('; ')}: runbook rolls releases out with UpdateService, which needs the ECS controller`,
          'use deploymentController ECS on both services (a CodeDeploy blue/green service cannot be driven by runbook)',
        )
      : pass(component, 'ecs deployment controller', `${names}: ECS`),
    breaker.length > 0
      ? fail(
          component,
          'ecs circuit breaker',
          `${breaker.join('; ')}: a release whose tasks fail to start is then seen failing only at aws.rolloutTimeout, ` +
            'and ECS does not roll it back',
          'set deploymentConfiguration.deploymentCircuitBreaker { enable: true, rollback: true } on both services',
        )
      : pass(component, 'ecs circuit breaker', `${names}: enabled, with rollback`),
    longArn.length > 0
      ? fail(
          component,
          'ecs long arn format',
          `${longArn.join('; ')}: ECS cannot tag such a service, and runbook finds its releases by the services' tags`,
          'enable serviceLongArnFormat for the account (aws ecs put-account-setting-default --name serviceLongArnFormat ' +
            '--value enabled) and recreate the services',
        )
      : pass(component, 'ecs long arn format', `${names}: long ARN format (taggable)`),
  ];
}

/** The described services as blue and green (by name or ARN), when both were found. */
function colourPair(spec: AwsEcsSpec, described: Service[]): { blue: Service; green: Service } | undefined {
  const find = (name: string) => described.find((s) => s.serviceName === name || s.serviceArn === name);
  const blue = find(spec.services.blue);
  const green = find(spec.services.green);
  return blue && green ? { blue, green } : undefined;
}

/**
 * The `autoscaling` line of doctor: each colour's Application Auto Scaling target (none: nothing is managed). Throws a
 * finding when the idle colour (no runbook:release tag while the other colour has one) has a minimum above 0: its
 * scalable target scales it back up after runbook stopped it (runbook sets it to 0 from the next deploy on).
 */
export function scalingCheck(services: { blue: Service; green: Service }, targets: ColourTargets): string {
  const colours = ['blue', 'green'] as const;
  const words = colours.map((c) => {
    const t = targets[c];
    return `${services[c].serviceName ?? c} (${c}): ${t ? targetWords(t) : 'no scalable target'}`;
  });
  if (!targets.blue && !targets.green) return `${words.join('; ')}: Application Auto Scaling not used`;
  const released = (c: 'blue' | 'green') => (services[c].tags ?? []).some((t) => t.key === TAG.release);
  const idle = colours.find((c) => !released(c) && released(c === 'blue' ? 'green' : 'blue'));
  const idleTarget = idle ? targets[idle] : undefined;
  if (idle && idleTarget && (idleTarget.MinCapacity ?? 0) > 0) {
    const name = services[idle].serviceName ?? idle;
    throw finding(
      `${words.join('; ')}: the idle colour ${name} has MinCapacity ${idleTarget.MinCapacity}, so Application Auto ` +
        'Scaling keeps it running (and scales it back up after it is stopped)',
      `set its minimum and maximum to 0 (aws application-autoscaling register-scalable-target --service-namespace ecs ` +
        `--scalable-dimension ecs:service:DesiredCount --resource-id service/<cluster>/${name} --min-capacity 0 ` +
        '--max-capacity 0); runbook does it itself when it stops a colour. With Terraform, see ignore_changes in ' +
        'docs/aws-ecs.md',
    );
  }
  return words.join('; ');
}
