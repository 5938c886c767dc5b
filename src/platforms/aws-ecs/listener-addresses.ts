/**
 * Where the checks reach a colour through the load balancer, asked of AWS once per worker: a listener's DNS name,
 * port and protocol, the Host header and TLS server name of a listener rule's host condition, the load balancers a
 * target group is attached to, and the production listener of the spec.
 */
import {
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeRulesCommand,
  DescribeTargetGroupsCommand,
  type Listener,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { AwsContext } from './context';
import { awsCall, awsPermanent } from './errors';

export async function describeListener(ctx: AwsContext, arn: string): Promise<Listener> {
  const res = await awsCall('elasticloadbalancing:DescribeListeners', `listener ${arn}`, () =>
    ctx.clients.elb.send(new DescribeListenersCommand({ ListenerArns: [arn] })),
  );
  const listener = res.Listeners?.find((l) => l.ListenerArn === arn) ?? res.Listeners?.[0];
  if (!listener) throw awsPermanent('AwsNotFound', `listener ${arn} was not returned by DescribeListeners`);
  return listener;
}

/** A listener's address as AWS states it. */
interface ListenerEndpoint {
  dns: string;
  port: number;
  protocol?: string;
}

/**
 * Per worker, what the runbook treats as fixed for the life of a resource, so that polling and analysis windows do
 * not spend the ELB API's request budget (throttling) asking again: a listener's load balancer DNS name, port and
 * protocol, and the load balancers a target group is attached to. Keyed by endpoint and ARN; only answers are kept.
 */
const listenerEndpoints = new Map<string, ListenerEndpoint>();
const targetGroupLoadBalancers = new Map<string, string[]>();
const ruleHosts = new Map<string, string[]>();

const cacheKey = (ctx: AwsContext, arn: string) => `${ctx.spec.endpoint ?? ''} ${arn}`;

/** Empties the per-worker caches of listener addresses and target group load balancers (for tests). */
export function clearAwsCaches(): void {
  listenerEndpoints.clear();
  targetGroupLoadBalancers.clear();
  ruleHosts.clear();
}

/** A listener's address as this worker reaches it, and the scheme its Protocol takes. */
export interface ListenerAddress {
  host: string;
  port: number;
  scheme: 'http' | 'https';
  /** The Host header and TLS server name the checks send (see checkHostFor); absent: the address's own. */
  checkHost?: string;
}

/**
 * Where this worker reaches a listener: its load balancer's DNS name and its port, through ctx.resolveAddress, and
 * its scheme from the listener's Protocol (HTTPS or HTTP; aws.scheme only when AWS does not say), so that a
 * production HTTPS:443 listener and an HTTP test listener are each checked with their own. Asked of AWS once per
 * worker (see listenerEndpoints).
 */
export async function listenerAddress(ctx: AwsContext, arn: string, known?: Listener): Promise<ListenerAddress> {
  const key = cacheKey(ctx, arn);
  let endpoint = listenerEndpoints.get(key);
  if (!endpoint) {
    const listener = known ?? (await describeListener(ctx, arn));
    const lbArn = listener.LoadBalancerArn ?? '';
    const res = await awsCall('elasticloadbalancing:DescribeLoadBalancers', `load balancer ${lbArn}`, () =>
      ctx.clients.elb.send(new DescribeLoadBalancersCommand({ LoadBalancerArns: [lbArn] })),
    );
    const dns = res.LoadBalancers?.[0]?.DNSName;
    if (!dns || listener.Port === undefined) {
      throw awsPermanent('AwsNotFound', `listener ${arn}: its load balancer ${lbArn} has no DNS name or port`);
    }
    endpoint = { dns, port: listener.Port, ...(listener.Protocol ? { protocol: listener.Protocol } : {}) };
    listenerEndpoints.set(key, endpoint);
  }
  const scheme = endpoint.protocol === 'HTTPS' ? 'https' : endpoint.protocol === 'HTTP' ? 'http' : ctx.spec.scheme;
  const checkHost = await checkHostFor(ctx, arn === productionListenerArn(ctx));
  return { ...ctx.resolveAddress(endpoint.dns, endpoint.port), scheme, ...(checkHost ? { checkHost } : {}) };
}

/** The values of a listener rule's host-header conditions (DescribeRules), asked of AWS once per worker. */
async function listenerRuleHosts(ctx: AwsContext, arn: string): Promise<string[]> {
  const key = cacheKey(ctx, arn);
  const cached = ruleHosts.get(key);
  if (cached) return cached;
  const res = await awsCall('elasticloadbalancing:DescribeRules', `listener rule ${arn}`, () =>
    ctx.clients.elb.send(new DescribeRulesCommand({ RuleArns: [arn] })),
  );
  const rule = res.Rules?.find((r) => r.RuleArn === arn) ?? res.Rules?.[0];
  if (!rule) throw awsPermanent('AwsNotFound', `listener rule ${arn} was not returned by DescribeRules`);
  const hosts = (rule.Conditions ?? [])
    .filter((c) => c.Field === 'host-header')
    .flatMap((c) => c.HostHeaderConfig?.Values ?? c.Values ?? []);
  ruleHosts.set(key, hosts);
  return hosts;
}

/**
 * The Host header and TLS server name (SNI) of the checks through a listener: aws.checkHost, else the production
 * rule's host-header condition when it names exactly one host without wildcards, else none (the load balancer's DNS
 * name, as before). Without it a check through a rule with a host condition gets the listener's default action, and
 * an HTTPS listener's certificate (issued for the service's name) does not match the load balancer's DNS name.
 * Throws ElbCheckHostUnknown (non-retryable) for the production listener when the rule matches several hosts or a
 * wildcard: which one the checks should send is for runbook.yaml to say.
 */
export async function checkHostFor(ctx: AwsContext, production: boolean): Promise<string | undefined> {
  const { spec } = ctx;
  if (spec.checkHost) return spec.checkHost;
  if (!spec.listenerRule) return undefined;
  const hosts = await listenerRuleHosts(ctx, spec.listenerRule);
  if (hosts.length === 0) return undefined;
  const only = hosts.length === 1 ? hosts[0] : undefined;
  if (only !== undefined && !/[*?]/.test(only)) return only.toLowerCase();
  if (!production) return undefined;
  throw awsPermanent(
    'ElbCheckHostUnknown',
    `listener rule ${spec.listenerRule} matches the host-header ${hosts.join(', ')}: set aws.checkHost in runbook.yaml ` +
      'to the host name the checks through the load balancer should send (Host header and TLS server name)',
  );
}

/**
 * The load balancers a target group is attached to (DescribeTargetGroups), asked of AWS once per worker; an
 * unattached target group is asked again next time.
 */
export async function targetGroupLoadBalancerArns(ctx: AwsContext, tgArn: string): Promise<string[]> {
  const key = cacheKey(ctx, tgArn);
  const cached = targetGroupLoadBalancers.get(key);
  if (cached) return cached;
  const res = await awsCall('elasticloadbalancing:DescribeTargetGroups', `target group ${tgArn}`, () =>
    ctx.clients.elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: [tgArn] })),
  );
  const group = res.TargetGroups?.find((t) => t.TargetGroupArn === tgArn) ?? res.TargetGroups?.[0];
  const lbs = group?.LoadBalancerArns ?? [];
  if (lbs.length > 0) targetGroupLoadBalancers.set(key, lbs);
  return lbs;
}

/** The production listener: aws.listener, or the listener of aws.listenerRule (from the rule's ARN). */
export function productionListenerArn(ctx: AwsContext): string {
  const { listener, listenerRule } = ctx.spec;
  if (listener) return listener;
  if (!listenerRule) {
    throw awsPermanent('AwsInvalidRequest', 'aws settings need listenerRule or listener (the production traffic)');
  }
  // arn:...:listener-rule/app/<lb>/<lb-id>/<listener-id>/<rule-id> -> arn:...:listener/app/<lb>/<lb-id>/<listener-id>
  return listenerRule.replace(':listener-rule/', ':listener/').replace(/\/[^/]+$/, '');
}
