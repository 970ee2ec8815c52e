#!/usr/bin/env node
/**
 * The `sessionlock` command: finds the command, parses its arguments, runs it, and turns
 * errors into one line on stderr and an exit status (1: runtime error, 2: usage error).
 * The commands live in lib/cli/.
 * @module
 */
import fs from 'node:fs';
import { CliError, type Command, EXIT, parseCommandArgs, UsageError } from './cli/args.js';
import { demo } from './cli/demo.js';
import { inspect } from './cli/inspect.js';
import { list } from './cli/list.js';
import { messageOf, Output } from './cli/output.js';
import { sweepCommand } from './cli/sweep.js';
import { SessionlockError } from './errors.js';

const COMMANDS: readonly Command[] = [list, inspect, sweepCommand, demo];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.synopsis.length)) + 2;
  const commands = COMMANDS.map((command) => `  ${command.synopsis.padEnd(width)}${command.summary}`).join('\n');
  return `Usage: sessionlock <command> [options]

Looks after the file and dbm sessions of a sessionlock data directory.

Commands:
${commands}

Options:
  -d, --data-dir <dir>  the sessions' data directory (default: $SESSIONLOCK_DATA_DIR)
  -t, --type <type>     file or dbm (default: both kinds found)
  -h, --help            show this help; sessionlock <command> --help shows a command's
  -v, --version         print the version

Exit status: 0 success, 1 runtime error (such as an unreadable data directory), 2 usage error.`;
}

interface Io {
  out: Output;
  err: Output;
  env: NodeJS.ProcessEnv;
}

/** Runs `sessionlock` with `argv` (the arguments after the program name); resolves the exit status. */
async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...args] = argv;
  let command: Command | undefined;
  try {
    if (name === undefined) throw new UsageError('missing command: list, inspect, sweep or demo');
    if (name === '-h' || name === '--help') return print(io.out, mainHelp());
    if (name === '-v' || name === '--version') return print(io.out, version());
    if (name === 'help') return print(io.out, helpOf(args[0]));
    command = commandNamed(name);
    if (!command) {
      const hint = name.startsWith('-') ? ' (the command comes first: sessionlock <command> [options])' : '';
      throw new UsageError(`unknown ${name.startsWith('-') ? 'option' : 'command'} ${JSON.stringify(name)}${hint}`);
    }
    if (command.raw) return await command.run({ values: {}, positionals: [], args, ...io });
    const { values, positionals } = parseCommandArgs(command, args);
    if (values.help) return print(io.out, command.help);
    return await command.run({ values, positionals, args, ...io });
  } catch (error) {
    return report(error, command, io.err);
  }
}

function commandNamed(name: string | undefined): Command | undefined {
  return COMMANDS.find((candidate) => candidate.name === name);
}

function helpOf(name: string | undefined): string {
  if (name === undefined) return mainHelp();
  const command = commandNamed(name);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  return command.help;
}

async function print(out: Output, text: string): Promise<number> {
  await out.line(text);
  return EXIT.ok;
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** One line for an error the user can act on; a stack trace only for what must be a bug. */
async function report(error: unknown, command: Command | undefined, err: Output): Promise<number> {
  const prefix = prefixOf(command);
  if (error instanceof UsageError) {
    await err.line(`${prefix}: ${error.message} (see ${prefix} --help)`);
    return EXIT.usage;
  }
  if (error instanceof CliError || error instanceof SessionlockError) {
    await err.line(`${prefix}: ${messageOf(error)}`);
    return EXIT.failure;
  }
  await err.line(`${prefix}: unexpected error: ${error instanceof Error ? error.stack : String(error)}`);
  return EXIT.failure;
}

function prefixOf(command: Command | undefined): string {
  return command ? `sessionlock ${command.name}` : 'sessionlock';
}

/** Which stream lost output and why: any write error on stderr, any but EPIPE on stdout (a reader that went away, `| head`, is not an error). */
function lostOutput({ out, err }: Io): string | undefined {
  if (out.failure && out.failure.code !== 'EPIPE') return `stdout: ${out.failure.message}`;
  return err.failure && `stderr: ${err.failure.message}`;
}

/** Once everything is done: output lost to a write error makes the exit status at least 1, said on stderr if it works. */
function reportLostOutput(io: Io, command: Command | undefined): void {
  const lost = lostOutput(io);
  if (lost === undefined) return;
  process.exitCode = Math.max(Number(process.exitCode ?? EXIT.ok), EXIT.failure);
  void io.err.line(`${prefixOf(command)}: cannot write to ${lost}`);
}

const io: Io = { out: new Output(process.stdout), err: new Output(process.stderr), env: process.env };
process.on('exit', () => reportLostOutput(io, commandNamed(process.argv[2])));
process.exitCode = await main(process.argv.slice(2), io);
