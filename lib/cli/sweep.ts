/**
 * `sessionlock sweep --timeout <s>`: removes idle sessions and left-over lock and temporary
 * files with {@link sweep}, printing each removal and a summary.
 * @module
 */
import path from 'node:path';
import { MIN_FILE_LOCK_STALE } from '../lock/file-lock.js';
import { dbmEnvironments } from '../namespace/dbm.js';
import { MAX_TIMER_DELAY } from '../options.js';
import { type SweepResult, type SweptEntry, sweep } from '../sweep.js';
import {
  COMMON_HELP,
  type Command,
  dataDirOf,
  EXIT,
  type Invocation,
  storageTypeOf,
  stringOption,
  UsageError,
} from './args.js';
import { formatDuration, messageOf, plural, printableName } from './output.js';

const HELP = `Usage: sessionlock sweep --timeout <seconds> --data-dir <dir> [options]

Removes the sessions whose file was not written for longer than the timeout (a save, or
the access time a load records), each with its lock files, and what killed processes left
behind: lock files and temporary files older than --lock-stale, and LMDB lock files
whose data file is gone. A session is removed only if it is still idle under its own
write lock; one that another process has locked is skipped, never waited for.
The directory is read as a stream: memory stays small with any number of sessions.

Options:
  --timeout <time>      idle time after which a session is removed: seconds, or a number
                        with a unit s, m, h or d (1800, 30m, 12h); use the sessions' timeout
  --lock-stale <ms>     age after which a lock or temporary file is left over: the
                        sessions' lockStale (default 10000; 2000 to 2147483647); a
                        longer one that a lock's holder recorded in it is honoured
  --dry-run             print what would be removed, remove nothing
  --json                one JSON object per line: each removal, then {"summary": …}

${COMMON_HELP}

Example:
  $ sessionlock sweep --timeout 30m --data-dir ./sessions
  removed session mz2x7rq6b4ht5vkw3ynp2gd7c4sfje6a (dbm, 12288 bytes, idle 2 h 5 min)
  removed lock q3v7k2m4t5yxw6r2cz4hj7nb5fa2dkep.json.lock (file, idle 3 h 0 min)
  swept /srv/app/sessions: removed 1 of 2 sessions (0 locked, 1 recent kept); left-overs removed: 1 lock, 0 temporary files, 0 LMDB lock files

Exit status: 0 when everything could be swept, 1 when an entry failed (reported on
stderr) or the data directory cannot be read, 2 for a usage error.`;

const UNITS: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

export const sweepCommand: Command = {
  name: 'sweep',
  synopsis: 'sweep --timeout <s>',
  summary: 'remove sessions idle longer than the timeout, and left-over lock and temporary files',
  help: HELP,
  options: {
    timeout: { type: 'string' },
    'lock-stale': { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run(invocation) {
    const timeout = timeoutOf(invocation);
    const lockStale = lockStaleOf(invocation);
    const dataDir = dataDirOf(invocation);
    const type = storageTypeOf(invocation);
    const dryRun = invocation.values['dry-run'] === true;
    const json = invocation.values.json === true;
    const { out, err } = invocation;
    let result: SweepResult;
    try {
      result = await sweep({
        dataDir,
        timeout,
        dryRun,
        ...(type === undefined ? {} : { type }),
        ...(lockStale === undefined ? {} : { lockStale }),
        onRemove: (entry) => (json ? out.json({ removed: entry }) : out.line(describeRemoval(entry, dryRun))),
        onError: (error, file) => err.line(`sessionlock sweep: cannot sweep ${file}: ${messageOf(error)}`),
      });
    } finally {
      await dbmEnvironments.closeAll();
    }
    await (json ? out.json({ summary: { dataDir, ...result } }) : out.line(summarize(dataDir, result)));
    return result.failed > 0 ? EXIT.failure : EXIT.ok;
  },
};

function timeoutOf({ values }: Invocation): number {
  const text = stringOption(values, 'timeout');
  if (text === undefined) throw new UsageError('--timeout <seconds> is required');
  const match = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim());
  if (!match) {
    throw new UsageError(`--timeout must be seconds, or a number with s, m, h or d; received ${JSON.stringify(text)}`);
  }
  const seconds = Number(match[1]) * (UNITS[match[2] as string] as number);
  if (!Number.isFinite(seconds * 1000)) {
    throw new UsageError(`--timeout is too large to be a time; received ${JSON.stringify(text)}`);
  }
  return seconds;
}

function lockStaleOf({ values }: Invocation): number | undefined {
  const text = stringOption(values, 'lock-stale');
  if (text === undefined) return undefined;
  const ms = Number(text);
  if (!/^\d+$/.test(text) || ms < MIN_FILE_LOCK_STALE || ms > MAX_TIMER_DELAY) {
    throw new UsageError(
      `--lock-stale must be a number of milliseconds >= ${MIN_FILE_LOCK_STALE} and <= ${MAX_TIMER_DELAY}, received ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

function describeRemoval(entry: SweptEntry, dryRun: boolean): string {
  const verb = dryRun ? 'would remove' : 'removed';
  const idle = `idle ${formatDuration(Date.now() - entry.modified.getTime())}`;
  if (entry.kind !== 'session') return `${verb} ${entry.kind} ${path.basename(entry.path)} (${entry.type}, ${idle})`;
  const name = entry.id === undefined ? path.basename(entry.path) : printableName(entry.id);
  const corrupt = entry.corrupt ? ', corrupt' : '';
  return `${verb} session ${name} (${entry.type}, ${plural(entry.size, 'byte')}, ${idle}${corrupt})`;
}

/** One line for the result; the sessions not removed add up to the sessions scanned, failures included. */
function summarize(dataDir: string, result: SweepResult): string {
  const { removed, scanned, skippedForeign, orphans, failed, failedSessions } = result;
  const parts = [
    `${result.dryRun ? 'dry run of' : 'swept'} ${dataDir}: ${result.dryRun ? 'would remove' : 'removed'} ${removed} of ${plural(scanned, 'session')}`,
    ` (${keptSessions(result)})`,
    skippedForeign
      ? `; ${plural(skippedForeign, 'file')} that ${skippedForeign === 1 ? 'is' : 'are'} not sessionlock's left alone`
      : '',
    `; left-overs ${result.dryRun ? 'to remove' : 'removed'}: ${plural(orphans.locks, 'lock')}, ${plural(orphans.temps, 'temporary file')}, ${plural(orphans.lmdbLocks, 'LMDB lock file')}`,
    failed > failedSessions ? `, ${failed - failedSessions} failed` : '',
  ];
  return parts.join('');
}

function keptSessions({
  skippedLocked,
  skippedRecent,
  skippedUnnamed,
  skippedGone,
  failedSessions,
}: SweepResult): string {
  const parts = [`${skippedLocked} locked`, `${skippedRecent} recent kept`];
  if (skippedUnnamed) parts.push(`${skippedUnnamed} with hashed names kept`);
  if (skippedGone) parts.push(`${skippedGone} gone meanwhile`);
  if (failedSessions) parts.push(`${failedSessions} failed`);
  return parts.join(', ');
}
