import { backupCommand } from './cli/backup-command';
import { codecServerCommand } from './cli/codec-command';
import { commandHelp, parseCommandArgs, type Command, type Io } from './cli/command';
import { approveCommand, rejectCommand, signoffCommand } from './cli/decision-commands';
import { demoCommand } from './cli/demo-command';
import { deployCommand, rollbackCommand } from './cli/deploy-commands';
import { drillCommand } from './cli/drill/command';
import { doctorCommand, downCommand, setupCommand, upCommand } from './cli/stack-commands';
import { snapshotsCommand } from './cli/snapshots-command';
import { cancelCommand, listCommand, reportCommand, statusCommand, watchCommand } from './cli/workflow-commands';
import { UserError, errorMessage } from './errors';
import { scrubSecrets } from './shared/redact';

/** The verbs of the `runbook` CLI, in the order `runbook --help` lists them. */
const commands: Command[] = [
  setupCommand,
  upCommand,
  downCommand,
  doctorCommand,
  deployCommand,
  approveCommand,
  rejectCommand,
  signoffCommand,
  statusCommand,
  watchCommand,
  reportCommand,
  cancelCommand,
  listCommand,
  rollbackCommand,
  drillCommand,
  backupCommand,
  snapshotsCommand,
  codecServerCommand,
  demoCommand,
];

function overview(): string {
  return [
    'runbook: production runbooks (deploy, rollback, restore drill) as durable Temporal workflows',
    '',
    'Usage: runbook <command> [options]      runbook <command> --help for details and examples',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary.split('\n')[0]}`),
  ].join('\n');
}

/**
 * Runs the CLI and returns its exit code. The one error boundary: operator mistakes (UserError) print as one
 * clear line with the fix; anything unexpected prints its message (the stack trace only with RUNBOOK_DEBUG=1).
 */
export async function main(
  argv: string[],
  io: Io = { out: console.log, err: console.error, env: process.env },
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview());
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command)
      throw new UserError(
        `unknown command "${name}"`,
        `runbook --help lists the commands: ${commands.map((c) => c.name).join(', ')}`,
      );
    const args = parseCommandArgs(command, rest);
    if (args.values.help) {
      io.out(commandHelp(command));
      return 0;
    }
    return await command.run(args, io);
  } catch (err) {
    // Errors may quote logs and servers' answers: what they show is scrubbed of credentials.
    if (err instanceof UserError) {
      io.err(`runbook: ${scrubSecrets(err.message)}`);
      if (err.fix) io.err(`  fix: ${scrubSecrets(err.fix)}`);
      return err.exitCode;
    }
    io.err(`runbook: ${scrubSecrets(errorMessage(err))}`);
    if (io.env.RUNBOOK_DEBUG) io.err(scrubSecrets((err as Error).stack ?? ''));
    else io.err('  (set RUNBOOK_DEBUG=1 to see the stack trace)');
    return 1;
  }
}
