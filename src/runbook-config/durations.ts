/**
 * Durations in runbook.yaml: `500ms`, `10s`, `1m`, `1h`, `7d`, compounds like `1h30m`, or a number of
 * milliseconds. Parsing, the short form used in messages, and the zod schema of a duration field.
 */
import { z } from 'zod';
import { describeValue, unlessMissing } from './problems';

const DURATION_HINT = 'a duration like 500ms, 10s, 1m, 1h, 7d (or a number of milliseconds)';
const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Milliseconds of a duration: `500ms`, `10s`, `1m`, `1h`, `7d`, compounds like `1h30m`, or a number of
 * milliseconds. Undefined when it is none of these.
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const text = value.trim();
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    ms += Number(amount) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS];
  }
  return Math.round(ms);
}

/**
 * A duration for messages, exact and in the units runbook.yaml takes: 90000 -> `1m30s`, 250 -> `250ms`, so that
 * a value a message names can be written back into the file. Not formatMs (src/shared/drill.ts), which rounds for
 * people reading a drill's timeline (`1m30s`, `0.3s`, `1h00m`).
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

/** A duration field: milliseconds out; `positive` rejects 0, `minMs` (with `why` in the message) sets a floor. */
export function duration(opts: { positive?: boolean; minMs?: number; why?: string } = {}) {
  const expected = opts.positive ? `${DURATION_HINT}, more than 0` : DURATION_HINT;
  return z
    .union([z.string(), z.number()], { error: unlessMissing((v) => `must be ${expected}, got ${describeValue(v)}`) })
    .describe(DURATION_HINT)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined || (opts.positive && ms === 0)) {
        ctx.addIssue({ code: 'custom', message: `must be ${expected}, got ${describeValue(value)}` });
        return z.NEVER;
      }
      if (opts.minMs !== undefined && ms < opts.minMs) {
        ctx.addIssue({
          code: 'custom',
          message: `must be at least ${formatDuration(opts.minMs)}${opts.why ? ` (${opts.why})` : ''}, got ${describeValue(value)}`,
        });
        return z.NEVER;
      }
      return ms;
    });
}
