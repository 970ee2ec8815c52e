/**
 * What every `sessionlock` command shares: the Command shape, argument parsing with
 * node:util's parseArgs, the common options, and usage errors (exit status 2).
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { StorageError } from '../errors.js';
import type { SweepType } from '../sweep.js';
import type { Output } from './output.js';

/** A mistake in the command line: reported in one line, exit status 2. */
export class UsageError extends Error {}

/** A failure the user can act on (no such session, …): reported in one line, exit status 1. */
export class CliError extends Error {}

/** Exit statuses. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** What a command receives. */
export interface Invocation {
  /** Parsed options (common ones included). */
  values: Values;
  /** Positional arguments after the command name. */
  positionals: string[];
  /** The arguments after the command name, unparsed. */
  args: string[];
  out: Output;
  err: Output;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  readonly name: string;
  /** The synopsis shown in `sessionlock --help`, e.g. `inspect <id>`. */
  readonly synopsis: string;
  /** One line for `sessionlock --help`. */
  readonly summary: string;
  /** The full text of `sessionlock <name> --help`. */
  readonly help: string;
  /** Options besides the common ones. */
  readonly options?: Options;
  /** Names of the positional arguments it requires, in order. */
  readonly positionals?: readonly string[];
  /** Whether it parses its own arguments (they are passed on untouched, `--help` included). */
  readonly raw?: boolean;
  /** Runs the command; resolves its exit status. */
  run(invocation: Invocation): Promise<number>;
}

/** The options every command that reads a data directory takes. */
export const COMMON_OPTIONS: Options = {
  'data-dir': { type: 'string', short: 'd' },
  type: { type: 'string', short: 't' },
  help: { type: 'boolean', short: 'h' },
};

/** The help lines of {@link COMMON_OPTIONS}. */
export const COMMON_HELP = `Common options:
  -d, --data-dir <dir>  the sessions' data directory (default: $SESSIONLOCK_DATA_DIR)
  -t, --type <type>     file or dbm (default: both kinds found)
  -h, --help            show this help`;

/** Parses a command's arguments; throws {@link UsageError} for unknown options, bad values and missing arguments. */
export function parseCommandArgs(command: Command, args: string[]): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(describeParseError(error as NodeJS.ErrnoException));
  }
  if (parsed.values.help) return parsed;
  const expected = command.positionals ?? [];
  const missing = expected[parsed.positionals.length];
  if (missing !== undefined) throw new UsageError(`missing <${missing}>`);
  const extra = parsed.positionals[expected.length];
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  return parsed;
}

/**
 * parseArgs' error in one line: `--json=true` does not take a value, `-d` needs one, and
 * `--timeout -1` keeps parseArgs' hint (`--timeout=-1` for a value starting with a dash).
 */
function describeParseError(error: NodeJS.ErrnoException): string {
  const option = /'(-[^']*)'/.exec(error.message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? error.message}`;
  if (error.code !== 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || !option) return oneLine(error.message);
  if (/does not take an argument/.test(error.message)) return `option ${option} does not take a value`;
  if (/argument missing/.test(error.message)) return `option ${option} needs a value`;
  const dashHint = /starting with a dash use (.+)\.$/m.exec(error.message)?.[1];
  if (dashHint) return `option ${option} needs a value; for one starting with a dash use ${dashHint}`;
  return oneLine(error.message);
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}

/** A string option's value, or `undefined`. */
export function stringOption(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The data directory from `--data-dir` or `$SESSIONLOCK_DATA_DIR`, resolved. Throws
 * {@link UsageError} when neither is given, and {@link StorageError} naming the path when
 * it is missing, not a directory or unreadable.
 */
export function dataDirOf({ values, env }: Invocation): string {
  const given = stringOption(values, 'data-dir') ?? env.SESSIONLOCK_DATA_DIR;
  if (!given) throw new UsageError('--data-dir <dir> is required (or set SESSIONLOCK_DATA_DIR)');
  const dir = path.resolve(given);
  let problem: string | undefined;
  try {
    if (!fs.statSync(dir).isDirectory()) problem = 'it is not a directory';
    else fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    problem =
      code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
  }
  if (problem) throw new StorageError(dir, 'read the data directory', { cause: new Error(problem) });
  return dir;
}

/** The `--type` option: `'file'`, `'dbm'`, or `undefined` for both. */
export function storageTypeOf({ values }: Invocation): SweepType | undefined {
  const type = stringOption(values, 'type');
  if (type === undefined || type === 'file' || type === 'dbm') return type;
  throw new UsageError(`--type must be file or dbm, received ${JSON.stringify(type)}`);
}
