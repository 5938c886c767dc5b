import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';

/** A MockActivityEnvironment whose logger stays quiet (expected failures would otherwise print their traces). */
export function mockActivityEnv(): MockActivityEnvironment {
  return new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR', () => {}) });
}
