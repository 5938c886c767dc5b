import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';

/**
 * The worker's logger: one JSON object per line on stdout, with the SDK's metadata (workflowId, runId,
 * activityType, taskQueue...) as fields, so that every line of a runbook carries its workflow id.
 */
export function jsonLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
) {
  return new DefaultLogger(level, (entry: LogEntry) => {
    const { message, level: lvl, timestampNanos, meta } = entry;
    const fields: Record<string, unknown> = {
      ts: new Date(Number(timestampNanos / 1_000_000n)).toISOString(),
      level: lvl.toLowerCase(),
      msg: message,
    };
    for (const [k, v] of Object.entries(meta ?? {}))
      fields[k] = v instanceof Error ? { name: v.name, message: v.message } : v;
    try {
      write(JSON.stringify(fields));
    } catch {
      write(JSON.stringify({ ts: fields.ts, level: fields.level, msg: message, meta: 'unserialisable' }));
    }
  });
}
