import { PlatformError } from '../types';

/**
 * How an AWS error is handled. Throttling (including ECS's "Too many concurrent attempts" ClientException), 5xx,
 * network errors and expired or unavailable credentials (the SDK refreshes them; the activity's retry policy caps
 * the attempts) are left to the activity's retry policy (backoff); access, validation, not-found and quota errors
 * fail at once, non-retryable, naming the AWS error code, the resource and what to fix: retrying cannot change the
 * answer.
 */
export type AwsErrorKind = 'retry' | 'access' | 'validation' | 'not-found' | 'quota' | 'conflict';

interface AwsLikeError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

const THROTTLING =
  /^(Throttling|ThrottlingException|ThrottledException|RequestLimitExceeded|TooManyRequestsException|RequestThrottled|SlowDown|PriorRequestNotComplete|ProvisionedThroughputExceededException|TransactionInProgressException|EC2ThrottledException)$/;
const ACCESS =
  /^(AccessDenied|AccessDeniedException|UnauthorizedOperation|UnrecognizedClientException|InvalidClientTokenId|AuthFailure|SignatureDoesNotMatch|MissingAuthenticationToken|IncompleteSignature|InvalidSignatureException)$/;
/** Credentials that the SDK's provider chain refreshes (an expired session, a provider that did not answer in time). */
const REFRESHABLE_CREDENTIALS = /^(CredentialsProviderError|ExpiredToken|ExpiredTokenException)$/;
/** ECS answers concurrent RegisterTaskDefinition calls of one family with a ClientException: throttling in effect. */
const ECS_CONCURRENT = /Too many concurrent attempts/i;
/**
 * Application Auto Scaling checks the caller's own permissions on the target service and CloudWatch (ecs:UpdateService,
 * cloudwatch:PutMetricAlarm...) and answers a missing one with a ValidationException naming it: access, not input.
 */
const TARGET_PERMISSION = /not authorized|AccessDenied|missing permission/i;
/** Application Auto Scaling refuses a change while another one to the same target is in progress: retry later. */
const CONCURRENT_UPDATE = /^ConcurrentUpdateException$/;
/** A caller that may not hand a role to ECS: ECS answers ClientException or AccessDenied naming iam:PassRole. */
const PASS_ROLE = /iam:PassRole/i;
const NOT_FOUND =
  /(NotFound|NotFoundException|NotFoundFault|DoesNotExist|ServiceNotActiveException|ClusterNotFoundException|ParameterNotFound)$/;
const QUOTA =
  /(LimitExceeded|QuotaExceeded|QuotaExceededFault|TooMany[A-Za-z]+(?<!Requests)Exception|InsufficientDBInstanceCapacity|StorageQuotaExceeded|SnapshotQuotaExceeded|InstanceQuotaExceeded)/;
const CONFLICT =
  /(AlreadyExists|AlreadyExistsFault|Duplicate[A-Za-z]*|InvalidDBInstanceState|InvalidDBSnapshotState|ResourceInUse)/;
const NETWORK =
  /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|TimeoutError|RequestTimeout|RequestTimeoutException|NetworkingError)$/;

/** The AWS error code of an SDK v3 exception (its `name`), or the Node.js error code. */
export function awsErrorCode(err: unknown): string {
  const e = err as AwsLikeError & { code?: string };
  return e?.name && e.name !== 'Error' ? e.name : (e?.Code ?? e?.code ?? 'Error');
}

export function classifyAwsError(err: unknown): AwsErrorKind {
  const e = err as AwsLikeError;
  const code = awsErrorCode(err);
  const status = e?.$metadata?.httpStatusCode;
  const message = typeof e?.message === 'string' ? e.message : '';
  if (THROTTLING.test(code) || status === 429) return 'retry';
  if (code === 'ClientException' && ECS_CONCURRENT.test(message)) return 'retry';
  if (CONCURRENT_UPDATE.test(code)) return 'retry';
  if (REFRESHABLE_CREDENTIALS.test(code)) return 'retry';
  if ((code === 'ClientException' || ACCESS.test(code)) && PASS_ROLE.test(message)) return 'access';
  if (code === 'ValidationException' && TARGET_PERMISSION.test(message)) return 'access';
  if (NETWORK.test(code) || (e as { code?: string })?.code === 'ECONNREFUSED') return 'retry';
  if (e?.$fault === 'server' || (status !== undefined && status >= 500)) return 'retry';
  if (ACCESS.test(code) || status === 403) return 'access';
  if (QUOTA.test(code)) return 'quota';
  if (NOT_FOUND.test(code) || status === 404) return 'not-found';
  if (CONFLICT.test(code)) return 'conflict';
  if (e?.$fault === 'client' || (status !== undefined && status >= 400)) return 'validation';
  return 'retry';
}

const FIX: Record<Exclude<AwsErrorKind, 'retry'>, (action: string) => string> = {
  access: (action) =>
    `grant the worker's IAM role ${action} on this resource (docs/aws-ecs.md lists the least-privilege policy), or check its credentials`,
  validation: () => 'correct the aws settings of this service in runbook.yaml (or the resource in AWS)',
  'not-found': () => 'check the name/ARN in runbook.yaml, the region, and that the resource exists in this account',
  quota: () => 'raise the AWS service quota or remove unused resources (Service Quotas console)',
  conflict: () => 'wait for the resource to leave its current state, or remove the conflicting resource',
};

/** The non-retryable failure type for a kind, e.g. AwsAccessDenied. */
const awsFailureType = (kind: AwsErrorKind) =>
  ({
    retry: 'AwsTransient',
    access: 'AwsAccessDenied',
    validation: 'AwsInvalidRequest',
    'not-found': 'AwsNotFound',
    quota: 'AwsQuotaExceeded',
    conflict: 'AwsConflict',
  })[kind];

/**
 * Runs one AWS call. A transient error is rethrown as it is (the activity retries with backoff); any other
 * becomes a permanent PlatformError: "<action> on <resource>: <Code>: <message>; fix: <what to do>".
 * `allow` lists error kinds the caller handles itself (e.g. 'conflict' to adopt a snapshot that already exists).
 */
export async function awsCall<T>(
  action: string,
  resource: string,
  call: () => Promise<T>,
  allow: AwsErrorKind[] = [],
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const kind = classifyAwsError(err);
    if (kind === 'retry' || allow.includes(kind)) throw err;
    throw awsFailure(action, resource, err, kind);
  }
}

/** The PlatformError of a failed AWS call that retrying cannot fix (see awsCall), typed by its kind, naming the fix. */
function awsFailure(action: string, resource: string, err: unknown, kind: Exclude<AwsErrorKind, 'retry'>) {
  const code = awsErrorCode(err);
  const message = (err as Error)?.message ?? String(err);
  const passRole = kind === 'access' && PASS_ROLE.test(message);
  const fix = passRole
    ? "grant the worker's IAM role iam:PassRole on the task definition's task and execution roles " +
      '(condition iam:PassedToService ecs-tasks.amazonaws.com; docs/aws-ecs.md lists the policy)'
    : kind === 'access' && code === 'ValidationException'
      ? `grant the worker's IAM role the permission the message names: ${action} checks the caller's own ` +
        'ecs:DescribeServices, ecs:UpdateService and cloudwatch:DescribeAlarms/PutMetricAlarm/DeleteAlarms ' +
        '(docs/aws-ecs.md lists the policy)'
      : FIX[kind](action);
  return new PlatformError(`${action} on ${resource}: ${code}: ${message}`, {
    type: awsFailureType(kind),
    permanent: true,
    fix,
    details: [{ code, resource, action }],
  });
}

/** A failure that is not an AWS error but has the same meaning (e.g. an ECS deployment the circuit breaker failed). */
export function awsPermanent(type: string, message: string): PlatformError {
  return new PlatformError(message, { type, permanent: true });
}
