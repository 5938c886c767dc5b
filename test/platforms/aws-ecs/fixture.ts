import assert from 'node:assert/strict';
import { currentActivityScope } from '../../../src/activities/scope';
import { awsClients, type AwsContext } from '../../../src/platforms/aws-ecs/context';
import type { AwsEcsSpec } from '../../../src/shared/service-plan';

/** The ARN prefix of the account's ECS resources (services, task definitions). */
export const ECS_ARN = 'arn:aws:ecs:us-east-1:123456789012';
export const ELB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012';
export const LB = `${ELB}:loadbalancer/app/shop/50dc6c495c0c9188`;
export const PROD_LISTENER = `${ELB}:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2`;
export const TEST_LISTENER = `${ELB}:listener/app/shop/50dc6c495c0c9188/7e1c0a9d3b2f4e10`;
export const RULE = `${PROD_LISTENER}/9683b2d02a6cabee`;
export const BLUE_TG = `${ELB}:targetgroup/shop-blue/aaaa1111aaaa1111`;
export const GREEN_TG = `${ELB}:targetgroup/shop-green/bbbb2222bbbb2222`;

/** The aws settings of service shop in prod: blue/green ECS services behind the rule of one ALB, plain http. */
export function testSpec(overrides: Partial<AwsEcsSpec> = {}): AwsEcsSpec {
  return {
    region: 'us-east-1',
    cluster: 'prod',
    services: { blue: 'shop-blue', green: 'shop-green' },
    container: 'app',
    image: 'registry.example/shop:{version}',
    env: {},
    targetGroups: { blue: BLUE_TG, green: GREEN_TG },
    listenerRule: RULE,
    testListener: TEST_LISTENER,
    scheme: 'http',
    drainMs: 30_000,
    rolloutTimeoutMs: 60_000,
    pollIntervalMs: 5_000,
    metricsDelayMs: 120_000,
    ...overrides,
  };
}

export interface FakeAwsContextOptions {
  spec?: AwsEcsSpec;
  /** Default: the identity, as in production. */
  resolveAddress?: AwsContext['resolveAddress'];
  /** Whether sleep moves the fake clock on (for code that polls until a deadline); default false. */
  sleepAdvancesClock?: boolean;
  /** The fake clock's start; default 2025-01-01T12:00:00Z. */
  startMs?: number;
  env?: AwsContext['env'];
  /** Default: every workflow still runs. */
  isRunning?: AwsContext['isRunning'];
}

export interface FakeAwsContext {
  ctx: AwsContext;
  /** Every sleep the code under test asked for, in order. */
  sleeps: number[];
  /** Every address passed to resolveAddress, in order. */
  resolved: Array<[host: string, port: number]>;
  now(): number;
}

/**
 * An AwsContext for tests: the real SDK clients (mock them with aws-sdk-client-mock's `mockClient(XClient)`),
 * a fake clock and sleeps that are recorded instead of waited.
 */
export function fakeAwsContext(opts: FakeAwsContextOptions = {}): FakeAwsContext {
  let now = opts.startMs ?? Date.UTC(2025, 0, 1, 12, 0, 0);
  const sleeps: number[] = [];
  const resolved: Array<[string, number]> = [];
  const resolveAddress = opts.resolveAddress ?? ((host, port) => ({ host, port }));
  const ctx: AwsContext = {
    spec: opts.spec ?? testSpec(),
    clients: awsClients('us-east-1'),
    resolveAddress: (host, port) => {
      resolved.push([host, port]);
      return resolveAddress(host, port);
    },
    env: opts.env ?? {},
    pgBinDir: '',
    isRunning: opts.isRunning ?? (async () => true),
    sleep: async (ms) => {
      sleeps.push(ms);
      if (opts.sleepAdvancesClock) now += ms;
    },
    now: () => now,
    // As the worker wires it: tests that run the code in a MockActivityEnvironment give it an activity.
    activity: currentActivityScope,
  };
  return { ctx, sleeps, resolved, now: () => now };
}

/** Awaits a promise that must reject and returns its error. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}
