import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DescribeServicesCommand, DescribeTaskDefinitionCommand, ECSClient } from '@aws-sdk/client-ecs';
import {
  DescribeListenersCommand,
  ElasticLoadBalancingV2Client,
  type Action,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { freePort, portOpen } from '../../src/system/processes';
import type { MotoShop } from './moto-shop';

type Colour = 'blue' | 'green';

/** One request the stand-in load balancer answered: on which listener port, by which colour, with what. */
export interface BalancedRequest {
  listenerPort: number;
  path: string;
  /** The colour whose task answered; `fixed-response` for a listener's fixed response (maintenance). */
  answeredBy: Colour | 'fixed-response' | 'no healthy target';
  /** The release that answered (its x-app-version header). */
  version?: string;
  status: number;
  atMs: number;
}

/** The ECS tasks and the load balancer moto does not run, played by local processes from moto's own state. */
export interface MotoTasks {
  /** Where the worker reaches the load balancer's listener on `port` (for resolveAwsAddress). */
  addressOf(port: number): { host: string; port: number };
  /** Every request the stand-in load balancer answered, in order. */
  readonly requests: BalancedRequest[];
  /** The version each colour's task runs now (none when its service has no task). */
  running(): Partial<Record<Colour, string>>;
  /**
   * Whether `service` runs what it asks for: one task of `taskDefinition` up, or none at a desired count of 0 (for
   * motoDeploymentSeam: the rollout completes when its task runs, as on ECS).
   */
  settled(service: string, taskDefinition: string, desiredCount: number): boolean;
  /** A request through the listener on `port`, as a client of the load balancer would send it. */
  get(port: number, path: string): Promise<BalancedRequest>;
  stop(): Promise<void>;
}

/** The header through which the stand-in says who answered (a colour, or itself). */
const ANSWERED_BY = 'x-stand-in-answered-by';

interface Task {
  version: string;
  taskDefinition: string;
  child: ChildProcess;
  port: number;
  ready: boolean;
}

/**
 * Runs, for each colour, the task its ECS service asks for, as moto keeps it: while the service's desired count is
 * above 0, one process of the sample app with its task definition's environment (APP_VERSION and the rest), started
 * again when the task definition changes (the new one first, as a rolling update does); none at a desired count of
 * 0. In front of them, one HTTP server per listener plays the load balancer from the listener's actions in moto: a
 * fixed response is answered as configured, a forward goes to one of its target groups by weight, and a target
 * group whose colour has no running task answers 503, as an ALB without a healthy target does. So a request routed to
 * the wrong colour, or to a colour runbook scaled to 0, meets the wrong release or a 503: the test sees it.
 * Polls ECS every 250 ms.
 */
export async function startMotoTasks(opts: {
  endpoint: string;
  region: string;
  shop: MotoShop;
  /** The sample app's release folder (its server.js) and the environment every task adds to its own. */
  appDir: string;
  env: NodeJS.ProcessEnv;
  /** Listener ports (as created in moto) and their listener ARNs. */
  listeners: Record<number, string>;
}): Promise<MotoTasks> {
  const config = { region: opts.region, endpoint: opts.endpoint };
  const ecs = new ECSClient(config);
  const elb = new ElasticLoadBalancingV2Client(config);
  const tasks: Partial<Record<Colour, Task>> = {};
  const requests: BalancedRequest[] = [];
  const definitions = new Map<string, { version: string; env: Record<string, string> }>();
  let stopped = false;

  const definitionOf = async (arn: string) => {
    let d = definitions.get(arn);
    if (!d) {
      const td = (await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn }))).taskDefinition;
      const container = td?.containerDefinitions?.find((c) => c.name === 'app');
      const env = Object.fromEntries((container?.environment ?? []).map((e) => [e.name ?? '', e.value ?? '']));
      d = { version: env.APP_VERSION ?? container?.image?.split(':').at(-1) ?? '?', env };
      definitions.set(arn, d);
    }
    return d;
  };

  const stopTask = (task: Task) =>
    new Promise<void>((resolve) => {
      if (task.child.exitCode !== null || task.child.signalCode !== null) return resolve();
      task.child.once('exit', () => resolve());
      task.child.kill('SIGTERM');
    });

  const start = async (taskDefinition: string): Promise<Task> => {
    const d = await definitionOf(taskDefinition);
    const port = await freePort();
    const child = spawn(process.execPath, ['server.js'], {
      cwd: opts.appDir,
      env: { ...process.env, ...opts.env, ...d.env, PORT: String(port) },
      stdio: 'ignore',
    });
    const task: Task = { version: d.version, taskDefinition, child, port, ready: false };
    for (let i = 0; i < 100 && !(await portOpen(port)); i++) await new Promise((r) => setTimeout(r, 50));
    task.ready = true;
    return task;
  };

  const reconcile = async () => {
    const { services } = await ecs.send(
      new DescribeServicesCommand({ cluster: opts.shop.cluster, services: Object.values(opts.shop.services) }),
    );
    for (const colour of ['blue', 'green'] as const) {
      const s = services?.find((x) => x.serviceName === opts.shop.services[colour]);
      const current = tasks[colour];
      if (!s?.taskDefinition || (s.desiredCount ?? 0) === 0) {
        if (current) {
          delete tasks[colour];
          void stopTask(current);
        }
      } else if (current?.taskDefinition !== s.taskDefinition) {
        const next = await start(s.taskDefinition);
        tasks[colour] = next;
        if (current) void stopTask(current);
      }
    }
  };

  await reconcile();
  const loop = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, 250));
      if (!stopped) await reconcile().catch(() => undefined);
    }
  })();

  const colourOf = (targetGroupArn?: string): Colour | undefined =>
    targetGroupArn === opts.shop.targetGroups.blue
      ? 'blue'
      : targetGroupArn === opts.shop.targetGroups.green
        ? 'green'
        : undefined;

  /** The colour a forward action sends this request to: one of its target groups, picked by weight. */
  const pick = (action: Action): Colour | undefined => {
    const groups = action.ForwardConfig?.TargetGroups ?? [{ TargetGroupArn: action.TargetGroupArn, Weight: 1 }];
    const weighted = groups.filter((g) => (g.Weight ?? 1) > 0);
    const total = weighted.reduce((sum, g) => sum + (g.Weight ?? 1), 0);
    let draw = Math.random() * total;
    for (const g of weighted) {
      draw -= g.Weight ?? 1;
      if (draw < 0) return colourOf(g.TargetGroupArn);
    }
    return colourOf(weighted.at(-1)?.TargetGroupArn);
  };

  const balancers = await Promise.all(
    Object.entries(opts.listeners).map(async ([listenerPort, arn]) => {
      const server = http.createServer((req, res) => {
        const record = (r: Omit<BalancedRequest, 'listenerPort' | 'path' | 'atMs'>) =>
          requests.push({ listenerPort: Number(listenerPort), path: req.url ?? '', atMs: Date.now(), ...r });
        const answer = (status: number, by: BalancedRequest['answeredBy'], type: string, body: string) => {
          res.writeHead(status, { 'content-type': type, [ANSWERED_BY]: by });
          res.end(body);
          record({ answeredBy: by, status });
        };
        void (async () => {
          const listener = (await elb.send(new DescribeListenersCommand({ ListenerArns: [arn] }))).Listeners?.[0];
          const action = listener?.DefaultActions?.[0];
          if (action?.Type === 'fixed-response') {
            const config = action.FixedResponseConfig;
            answer(
              Number(config?.StatusCode ?? 503),
              'fixed-response',
              config?.ContentType ?? 'text/plain',
              config?.MessageBody ?? '',
            );
            return;
          }
          const colour = action ? pick(action) : undefined;
          const task = colour ? tasks[colour] : undefined;
          if (!colour || !task?.ready) {
            answer(503, 'no healthy target', 'text/plain', '503 Service Temporarily Unavailable');
            return;
          }
          const upstream = http.request(
            { host: '127.0.0.1', port: task.port, path: req.url, method: req.method, headers: req.headers },
            (up) => {
              const version = up.headers['x-app-version'];
              record({
                answeredBy: colour,
                status: up.statusCode ?? 0,
                ...(typeof version === 'string' ? { version } : {}),
              });
              res.writeHead(up.statusCode ?? 502, { ...up.headers, [ANSWERED_BY]: colour });
              up.pipe(res);
            },
          );
          upstream.on('error', () => answer(502, colour, 'text/plain', '502 Bad Gateway'));
          req.pipe(upstream);
        })().catch(() => answer(500, 'no healthy target', 'text/plain', 'the stand-in could not read moto'));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return [Number(listenerPort), server] as const;
    }),
  );
  const local = new Map(balancers.map(([p, server]) => [p, (server.address() as AddressInfo).port]));

  const addressOf = (port: number) => {
    const to = local.get(port);
    if (to === undefined) throw new Error(`the stand-in load balancer has no listener on port ${port}`);
    return { host: '127.0.0.1', port: to };
  };

  return {
    requests,
    addressOf,
    settled(service, taskDefinition, desiredCount) {
      const colour = (['blue', 'green'] as const).find((c) => opts.shop.services[c] === service);
      if (!colour) return true;
      const task = tasks[colour];
      return desiredCount === 0 ? !task : task?.taskDefinition === taskDefinition && task.ready;
    },
    running() {
      return Object.fromEntries(
        Object.entries(tasks).flatMap(([colour, t]) => (t?.ready ? [[colour, t.version]] : [])),
      ) as Partial<Record<Colour, string>>;
    },
    async get(port, path) {
      const atMs = Date.now();
      const r = await fetch(`http://127.0.0.1:${addressOf(port).port}${path}`);
      await r.arrayBuffer();
      const version = r.headers.get('x-app-version');
      return {
        listenerPort: port,
        path,
        answeredBy: r.headers.get(ANSWERED_BY) as BalancedRequest['answeredBy'],
        status: r.status,
        atMs,
        ...(version ? { version } : {}),
      };
    },
    async stop() {
      stopped = true;
      await loop;
      for (const [, server] of balancers) await new Promise((r) => server.close(r));
      await Promise.all(Object.values(tasks).map((t) => t && stopTask(t)));
      ecs.destroy();
      elb.destroy();
    },
  };
}
