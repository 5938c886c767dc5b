/** How platform errors leave an activity: the one translation of a PlatformError into Temporal's ApplicationFailure. */
import { ApplicationFailure } from '@temporalio/activity';
import { PlatformError } from '../platforms/types';
import { scrubSecrets } from '../shared/redact';

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
 * Masks credentials in the message and stack of an error and of its causes, in place (they go into the workflow
 * history and the Web UI). Returns the error.
 */
export function scrubFailure(err: unknown, scrub: (text: string) => string = scrubSecrets): unknown {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 10; depth++) {
    e.message = scrub(e.message);
    if (e.stack) e.stack = scrub(e.stack);
    e = e.cause;
  }
  return err;
}

/**
 * The same activities, each translating what it throws with {@link toActivityFailure}, so that no PlatformError
 * leaves an activity untranslated, and scrubbing it with `scrub` (default {@link scrubSecrets}; the worker adds the
 * secret values it holds), so that no failure carries a credential into the history. Catch blocks that translate on
 * their own (to look at the error first) are unaffected: an ApplicationFailure passes as it is, scrubbed.
 */
export function withActivityFailures<T extends Record<string, (...args: never[]) => Promise<unknown>>>(
  activities: T,
  scrub: (text: string) => string = scrubSecrets,
): T {
  const wrapped: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (...args) => {
      try {
        return await activity(...args);
      } catch (err) {
        throw scrubFailure(toActivityFailure(err), scrub);
      }
    };
  }
  return wrapped as T;
}
