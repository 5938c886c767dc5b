import {
  DefaultPayloadConverter,
  type ConverterHint,
  type Payload,
  type PayloadConverter,
  type SerializationContext,
} from '@temporalio/common';

/**
 * What a payload that cannot be read decodes to (data that is not JSON, an encoding no converter knows), instead
 * of the converter's error. Anyone who may signal a workflow can send such a payload (`temporal workflow signal
 * --input-meta encoding=...`, a raw gRPC call); decoding a signal's arguments happens before any handler runs, so
 * the error would fail the workflow task on every attempt, for good: the workflow could be neither approved nor
 * cancelled. The gates refuse an UnreadablePayload like any malformed decision.
 */
export class UnreadablePayload {
  constructor(
    /** What the converter said, cut short. */
    readonly problem: string,
  ) {}
}

/**
 * The payload converter of the worker (workflow bundle and activities): the SDK's default, except that a payload
 * it cannot read becomes an UnreadablePayload. Encoding is unchanged, so clients keep the default converter.
 * What the workflows and activities send each other is always readable; only a message from outside can be
 * unreadable. Anywhere but a gate (a forged start input, say) the workflow fails where it uses the value, as the
 * converter's error made it fail before.
 */
class TolerantPayloadConverter implements PayloadConverter {
  private readonly inner = new DefaultPayloadConverter();

  toPayload<T>(value: T, context?: SerializationContext, hint?: ConverterHint<T>): Payload {
    return this.inner.toPayload(value, context, hint);
  }

  fromPayload<T>(payload: Payload, context?: SerializationContext, hint?: ConverterHint<T>): T {
    try {
      return this.inner.fromPayload<T>(payload, context, hint);
    } catch (err) {
      const problem = err instanceof Error ? err.message : String(err);
      return new UnreadablePayload(problem.length > 200 ? `${problem.slice(0, 199)}…` : problem) as T;
    }
  }
}

export const payloadConverter: PayloadConverter = new TolerantPayloadConverter();
