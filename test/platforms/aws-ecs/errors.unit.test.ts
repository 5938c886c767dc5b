import assert from 'node:assert/strict';
import {
  AccessDeniedException,
  ClientException,
  InvalidParameterException,
  LimitExceededException,
  ServerException,
  ServiceNotFoundException,
} from '@aws-sdk/client-ecs';
import { DuplicateListenerException } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DBSnapshotAlreadyExistsFault, SnapshotQuotaExceededFault } from '@aws-sdk/client-rds';
import { PlatformError } from '../../../src/platforms/types';
import { awsCall, classifyAwsError, type AwsErrorKind } from '../../../src/platforms/aws-ecs/errors';
import { rejection } from './fixture';

const meta = (httpStatusCode: number) => ({ $metadata: { httpStatusCode } });

/** An error as the SDK v3 raises it for a code it has no class for (name = the AWS error code). */
function coded(name: string, message: string, fields: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { name }, fields);
}

const PASS_ROLE_MESSAGE =
  'User: arn:aws:sts::123456789012:assumed-role/worker/i-0abc is not authorized to perform: iam:PassRole on ' +
  'resource: arn:aws:iam::123456789012:role/shop-exec';

/** One error of every kind, as AWS and the SDK raise them. */
const cases: Array<[string, unknown, AwsErrorKind]> = [
  ['throttling (query protocol)', coded('Throttling', 'Rate exceeded', meta(400)), 'retry'],
  ['throttling (json protocol)', coded('ThrottlingException', 'Rate exceeded', meta(400)), 'retry'],
  ['HTTP 429', coded('SomethingNew', 'slow down', meta(429)), 'retry'],
  ['ECS server error (5xx)', new ServerException({ message: 'internal failure', ...meta(500) }), 'retry'],
  ['an unknown 503', coded('ServiceUnavailable', 'try later', { $fault: 'server', ...meta(503) }), 'retry'],
  ['network: ECONNRESET', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'retry'],
  ['network: TimeoutError', coded('TimeoutError', 'Connection timed out after 1000 ms'), 'retry'],
  [
    'ECS "Too many concurrent attempts" (a ClientException)',
    new ClientException({
      message: 'Too many concurrent attempts to create a new revision of the specified family.',
      ...meta(400),
    }),
    'retry',
  ],
  ['credentials provider did not answer', coded('CredentialsProviderError', 'Could not load credentials'), 'retry'],
  ['expired session token (query protocol)', coded('ExpiredToken', 'The security token expired', meta(403)), 'retry'],
  [
    'expired session token (json protocol)',
    coded('ExpiredTokenException', 'The security token included in the request is expired', meta(400)),
    'retry',
  ],
  [
    'AccessDenied',
    new AccessDeniedException({ message: 'not authorized to perform: ecs:UpdateService', ...meta(400) }),
    'access',
  ],
  ['an unknown 403', coded('Forbidden', 'no', meta(403)), 'access'],
  ['iam:PassRole in a ClientException', new ClientException({ message: PASS_ROLE_MESSAGE, ...meta(400) }), 'access'],
  [
    'validation (ECS InvalidParameterException)',
    new InvalidParameterException({ message: 'Invalid revision number', ...meta(400) }),
    'validation',
  ],
  ['validation (plain ClientException)', new ClientException({ message: 'bad input', ...meta(400) }), 'validation'],
  ['not found', new ServiceNotFoundException({ message: 'Service not found.', ...meta(400) }), 'not-found'],
  ['an unknown 404', coded('NoSuchThing', 'gone', meta(404)), 'not-found'],
  ['quota (ECS LimitExceeded)', new LimitExceededException({ message: 'limit', ...meta(400) }), 'quota'],
  ['quota (RDS SnapshotQuotaExceeded)', new SnapshotQuotaExceededFault({ message: 'quota', ...meta(400) }), 'quota'],
  ['conflict (RDS AlreadyExists)', new DBSnapshotAlreadyExistsFault({ message: 'exists', ...meta(400) }), 'conflict'],
  ['conflict (ELB Duplicate)', new DuplicateListenerException({ message: 'duplicate', ...meta(400) }), 'conflict'],
];

describe('AWS error classification (classifyAwsError, awsCall)', () => {
  for (const [what, err, kind] of cases) {
    it(`${what} -> ${kind}`, () => {
      assert.equal(classifyAwsError(err), kind);
    });
  }

  it('awsCall rethrows retryable errors as they are (the activity retries with backoff)', async () => {
    for (const [what, err, kind] of cases.filter(([, , k]) => k === 'retry')) {
      const thrown = await rejection(awsCall('ecs:UpdateService', 'ECS service shop-green', () => Promise.reject(err)));
      assert.equal(thrown, err, `${what} (${kind})`);
      assert.ok(!(thrown instanceof PlatformError));
    }
  });

  it('awsCall turns AccessDenied into a non-retryable AwsAccessDenied naming the action, the resource and the fix', async () => {
    const denied = new AccessDeniedException({
      message: 'User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: ecs:UpdateService',
      ...meta(400),
    });
    const err = await rejection(
      awsCall('ecs:UpdateService', 'ECS service shop-green in cluster prod', () => Promise.reject(denied)),
    );
    assert.ok(err instanceof PlatformError, String(err));
    assert.equal(err.type, 'AwsAccessDenied');
    assert.equal(err.permanent, true);
    assert.equal(
      err.message,
      'ecs:UpdateService on ECS service shop-green in cluster prod: AccessDeniedException: User: ' +
        'arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: ecs:UpdateService; fix: grant ' +
        "the worker's IAM role ecs:UpdateService on this resource (docs/aws-ecs.md lists the least-privilege " +
        'policy), or check its credentials',
    );
    assert.deepEqual(err.details, [
      {
        code: 'AccessDeniedException',
        resource: 'ECS service shop-green in cluster prod',
        action: 'ecs:UpdateService',
      },
    ]);
  });

  it('awsCall names iam:PassRole in the fix when ECS refuses to be handed a role', async () => {
    for (const refusal of [
      new ClientException({ message: PASS_ROLE_MESSAGE, ...meta(400) }),
      new AccessDeniedException({ message: PASS_ROLE_MESSAGE, ...meta(400) }),
    ]) {
      const err = await rejection(
        awsCall('ecs:RegisterTaskDefinition', 'task definition family shop', () => Promise.reject(refusal)),
      );
      assert.ok(err instanceof PlatformError, String(err));
      assert.equal(err.type, 'AwsAccessDenied');
      assert.equal(err.permanent, true);
      assert.match(err.message, /^ecs:RegisterTaskDefinition on task definition family shop: \w+: User: /);
      assert.match(err.message, /; fix: grant the worker's IAM role iam:PassRole on the task definition's task and/);
      assert.doesNotMatch(err.message, /IAM role ecs:RegisterTaskDefinition/);
    }
  });

  it('awsCall makes validation, not-found, quota and conflict errors non-retryable with their failure type and fix', async () => {
    const expected: Array<[AwsErrorKind, string, RegExp]> = [
      ['validation', 'AwsInvalidRequest', /fix: correct the aws settings of this service in runbook\.yaml/],
      ['not-found', 'AwsNotFound', /fix: check the name\/ARN in runbook\.yaml, the region/],
      ['quota', 'AwsQuotaExceeded', /fix: raise the AWS service quota/],
      ['conflict', 'AwsConflict', /fix: wait for the resource to leave its current state/],
    ];
    for (const [kind, type, fix] of expected) {
      const [what, source] = cases.find(([, , k]) => k === kind)!;
      const err = await rejection(awsCall('ecs:Action', 'resource r-1', () => Promise.reject(source)));
      assert.ok(err instanceof PlatformError, `${what}: ${String(err)}`);
      assert.equal(err.type, type, what);
      assert.equal(err.permanent, true, what);
      assert.match(err.message, /^ecs:Action on resource r-1: \w+: /, what);
      assert.match(err.message, fix, what);
    }
  });

  it('awsCall rethrows a kind the caller handles itself (allow) and returns the result otherwise', async () => {
    const exists = new DBSnapshotAlreadyExistsFault({ message: 'exists', ...meta(400) });
    const err = await rejection(awsCall('rds:CreateDBSnapshot', 'snap-1', () => Promise.reject(exists), ['conflict']));
    assert.equal(err, exists);
    assert.equal(await awsCall('rds:CreateDBSnapshot', 'snap-1', async () => 42), 42);
  });
});
