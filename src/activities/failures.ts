/** How platform errors leave an activity: the one translation of a PlatformError into Temporal's ApplicationFailure. */
import { ApplicationFailure } from '@temporalio/activity';
import { PlatformError } from '../platforms/types';

/**
 * A PlatformError as the ApplicationFailure the workflow sees: its type, message and details, non-retryable when it
 * is permanent, with its stack (where the platform threw it) and cause. Anything else is returned unchanged (the SDK
 * reports it as a retryable failure typed by its class, e.g. a pg or network error).
 */
export function toActivityFailure(err: unknown): unknown {
  if (!(err instanceof PlatformError)) return err;
  const failure = ApplicationFailure.create({
    type: err.type,
    message: err.message,
    nonRetryable: err.permanent,
    ...(err.details ? { details: err.details } : {}),
    ...(err.cause instanceof Error ? { cause: err.cause } : {}),
  });
  if (err.stack) failure.stack = err.stack;
  return failure;
}

/**
 * The same activities, each translating what it throws with {@link toActivityFailure}, so that no PlatformError
 * leaves an activity untranslated. Catch blocks that translate on their own (to look at the error first) are
 * unaffected: an ApplicationFailure passes as it is.
 */
export function withActivityFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(
  activities: T,
): T {
  const wrapped: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (...args) => {
      try {
        return await activity(...args);
      } catch (err) {
        throw toActivityFailure(err);
      }
    };
  }
  return wrapped as T;
}
