/**
 * The zod schemas of single values that several blocks of runbook.yaml use: rates, templates with `{placeholders}`,
 * whole numbers in a range (ports, weights, HTTP statuses), names, environment variable names, and the checks that
 * keep secrets out of the file.
 */
import { z } from 'zod';
import { SECRET_WHY, describeValue, didYouMean, unlessMissing } from './problems';

const RATE_HINT = 'a rate like 2% or 0.02 (a fraction 0..1)';

export const rate = z
  .union([z.string(), z.number()], { error: unlessMissing((v) => `must be ${RATE_HINT}, got ${describeValue(v)}`) })
  .describe(RATE_HINT)
  .transform((value, ctx) => {
    if (typeof value === 'number') {
      if (value >= 0 && value <= 1) return value;
      ctx.addIssue({
        code: 'custom',
        message:
          value > 1 && value <= 100
            ? `must be a fraction 0..1, got ${value}; write ${value}% for ${value} percent`
            : `must be ${RATE_HINT}, got ${value}`,
      });
      return z.NEVER;
    }
    const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    if (percent && Number(percent[1]) <= 100) return Number(percent[1]) / 100;
    ctx.addIssue({ code: 'custom', message: `must be ${RATE_HINT}, got ${describeValue(value)}` });
    return z.NEVER;
  });

/** A `{name}` placeholder in a template string. */
export const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A string that may hold only the given placeholders (an unknown `{name}` is an error with a hint). */
export function template(allowed: readonly string[]) {
  return z.string().superRefine((value, ctx) => {
    for (const [, name] of value.matchAll(PLACEHOLDER)) {
      if (name !== undefined && !allowed.includes(name)) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown placeholder {${name}}${didYouMean(name, allowed, (s) => `{${s}}`)}; allowed here: ${allowed.map((a) => `{${a}}`).join(', ')}`,
        });
      }
    }
    if (hasCredentials(value)) ctx.addIssue({ code: 'custom', message: SECRET_VALUE });
  });
}

const SECRET_VALUE = `holds a URL with a password; ${SECRET_WHY}: keep the secret on the worker`;
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$/i;

function hasCredentials(value: string): boolean {
  return /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i.test(value);
}

/** A whole number in min..max; `note` says what it is in the message, e.g. ` (an HTTP status)`. */
export function intIn(min: number, max: number, note = '') {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
  const message = (whole: boolean) =>
    unlessMissing((v) => `must be ${range}${note}${whole ? ' (a whole number)' : ''}, got ${describeValue(v)}`);
  return z
    .number({ error: message(false) })
    .int({ error: message(true) })
    .min(min, { error: message(false) })
    .max(max, { error: message(false) });
}

export const portSchema = intIn(1024, 65535, ' (an unprivileged TCP port)');
export const weightSchema = intIn(1, 100, '');
export const statusSchema = intIn(100, 599, ' (an HTTP status)').default(200);

export const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** An approver's name: one that a decision's `by` may carry (shared/deploy.ts NAME_PATTERN, MAX_NAME_LENGTH). */
const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export const urlPath = z.string().regex(/^\/\S*$/, {
  error: (iss) => `must be a URL path starting with /, e.g. /health, got ${describeValue(iss.input)}`,
});

export const envVarName = z.string().regex(ENV_VAR, {
  error: (iss) => `must be an environment variable name (A-Z, 0-9, _), got ${describeValue(iss.input)}`,
});

export const userName = z.string().regex(USER, {
  error: (iss) =>
    `must be a user name (letters, digits, '.', '_', '@', '-'; at most 64 characters), got ${describeValue(iss.input)}`,
});

/** An approver: a user name, or `group:<name>` of a group defined under the file's `groups:`. */
export const approverName = z.string().regex(/^(group:[a-z][a-z0-9-]{0,62}|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$/, {
  error: (iss) =>
    `must be a user name (letters, digits, '.', '_', '@', '-'; at most 64 characters) or group:<name>, got ${describeValue(iss.input)}`,
});

/** A key of a release's env: an environment variable name that does not look like a secret. */
export const releaseEnvKey = envVarName.superRefine((name, ctx) => {
  if (name === 'DATABASE_URL') {
    ctx.addIssue({
      code: 'custom',
      message: `must not be set here: ${SECRET_WHY}; the worker passes the release its database URL (see database.urlEnv)`,
    });
  } else if (SECRET_NAME.test(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `looks like a secret; ${SECRET_WHY}: keep it in the worker's environment instead`,
    });
  }
});
