import { parseArgs } from 'node:util';
import { UserError } from '../errors';
import { CONNECTION_ENV_HELP } from '../temporal-connection';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  description: string;
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
}
/** A verb's options by flag name, in the order its --help lists them. */
export type Options = Record<string, OptionSpec>;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** One verb of the `runbook` CLI. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Shown under `--help`: at least one example invocation. */
  examples: string[];
  /** Longer help: environment variables, what it starts, exit codes. */
  details?: string;
  /** It talks to Temporal: --help lists the connection's environment variables (profiles, TLS, API key, codec). */
  connectsToTemporal?: boolean;
  options: Options;
  run(args: ParsedArgs, io: Io): Promise<number>;
}

/** Parses a verb's arguments; unknown flags and missing values become a UserError that names them. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs {
  try {
    const options = Object.fromEntries(
      Object.entries(command.options).map(([name, o]) => [
        name,
        { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
      ]),
    );
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (err) {
    throw new UserError(
      `${command.name}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`,
      `runbook ${command.name} --help`,
    );
  }
}

export function commandHelp(command: Command): string {
  const lines = [`runbook ${command.usage}`, '', command.summary];
  const opts = Object.entries(command.options);
  if (opts.length > 0) {
    lines.push('', 'Options:');
    for (const [name, spec] of opts) {
      const flag = `--${name}${spec.type === 'string' ? ' <value>' : ''}`;
      lines.push(`  ${flag.padEnd(26)} ${spec.description}${spec.env ? ` (env ${spec.env})` : ''}`);
    }
  }
  if (command.details) lines.push('', command.details);
  if (command.connectsToTemporal) lines.push('', CONNECTION_ENV_HELP);
  lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}
