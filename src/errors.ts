/**
 * An operator-facing error: what went wrong and the exact thing to do about it.
 * The CLI's error boundary prints these as one or two clear lines, never a stack trace.
 */
export class UserError extends Error {
  constructor(
    message: string,
    /** What the operator should do, e.g. the command that fixes it. */
    readonly fix?: string,
    /** Process exit code for the CLI. */
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** The message of anything thrown, without a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
