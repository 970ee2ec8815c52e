/**
 * Sweeping: removes file and dbm sessions idle longer than a timeout, and what killed
 * processes left behind (stale lock files, temporary files, LMDB lock files without
 * their data file). The data directory is streamed, so memory stays bounded whatever the
 * number of sessions; each removal is decided again under the session's own write lock, and
 * a locked session is skipped, never waited for.
 * @module
 */
import type fs from 'node:fs';
import { type DataDirEntry, isForeignDataFile, scanDataDir } from './data-dir.js';
import { LockTimeoutError, StorageError } from './errors.js';
import { lstatOrUndefined, removeFile } from './files.js';
import { FileLock, isStaleLockEntry, MIN_FILE_LOCK_STALE, removeStaleLockEntry } from './lock/file-lock.js';
import { DBMNamespaceManager } from './namespace/dbm.js';
import { FileNamespaceManager } from './namespace/file.js';
import { lmdbLockFile } from './namespace/lmdb-environments.js';
import { DEFAULT_LOCK_STALE } from './namespace/namespace-options.js';
import {
  checkBoolean,
  checkFunction,
  checkMilliseconds,
  checkOptionsObject,
  checkString,
  MAX_TIMER_DELAY,
} from './options.js';

/** The backends whose sessions {@link sweep} handles: those that keep each session in a file of a data directory. */
export type SweepType = 'file' | 'dbm';

/** Options of {@link sweep}. */
export interface SweepOptions {
  /** The directory of the file or dbm sessions: the sessions' `dataDir` option. */
  dataDir: string;
  /**
   * Seconds: a session whose data file was not written for longer is removed. Give the
   * sessions' `timeout`; the access time they record refreshes the file's time.
   */
  timeout: number;
  /**
   * Which sessions to sweep.
   * @default both kinds found
   */
  type?: SweepType | undefined;
  /**
   * Milliseconds after which a lock whose holder stopped renewing it is abandoned: the
   * sessions' `lockStale` (2000 to 2147483647); a longer one that the holder recorded in its
   * lock file is honoured. Also the age at which temporary files count as left over.
   * @default 10000
   */
  lockStale?: number | undefined;
  /**
   * Report what would be removed, and remove nothing (no lock is taken).
   * @default false
   */
  dryRun?: boolean | undefined;
  /**
   * Called for each session or left-over file removed (with `dryRun`: that would be). The
   * sweep waits for a promise it returns before it goes on.
   * @default none
   */
  onRemove?: ((entry: SweptEntry) => void | Promise<void>) | undefined;
  /**
   * Called for each entry that could not be swept; the entry is counted in `failed` and the
   * sweep goes on (after a promise it returns has settled).
   * @default none: the entry is only counted
   */
  onError?: ((error: Error, path: string) => void | Promise<void>) | undefined;
}

/** What {@link sweep} removed: an idle session, or a left-over lock or temporary file. */
export interface SweptEntry {
  /** `'session'`, `'lock'` (a lock file or directory, a takeover mutex, or one set aside by a takeover), `'temp'` (a temporary file) or `'lmdb-lock'`. */
  kind: 'session' | 'lock' | 'temp' | 'lmdb-lock';
  /** The backend the file belongs to. */
  type: SweepType;
  /** The session id (namespace), or `undefined` when the file name is a hash. */
  id: string | undefined;
  /** The absolute path removed. */
  path: string;
  /** Its size in bytes (0 for a directory). */
  size: number;
  /** When it was last written; for a session, its last write or recorded access. */
  modified: Date;
  /** Whether the session's file was damaged as a whole (no intact version; not an LMDB file). Values are not decoded; an idle damaged session is removed too. */
  corrupt: boolean;
}

/**
 * What {@link sweep} did. Every session examined is counted once more: `scanned` is
 * `removed + skippedLocked + skippedRecent + skippedUnnamed + skippedGone + failedSessions`.
 */
export interface SweepResult {
  /** Sessions examined. */
  scanned: number;
  /** Sessions removed (with `dryRun`: that would be). */
  removed: number;
  /** Idle sessions kept because a live holder has them locked. */
  skippedLocked: number;
  /** Sessions kept because they were written within the timeout. */
  skippedRecent: number;
  /** Idle sessions kept because their file name is a hash of a long namespace name, which cannot be mapped back. */
  skippedUnnamed: number;
  /** Sessions that disappeared while the sweep looked at them (removed meanwhile by their application or another sweep). */
  skippedGone: number;
  /**
   * Files with a session's name that are not sessionlock files (neither in the file backend's
   * format nor LMDB files: another program's `.json`), left alone and not counted in `scanned`.
   */
  skippedForeign: number;
  /** Left-over files removed (with `dryRun`: that would be). */
  orphans: {
    /** Lock files and directories, takeover mutexes and entries a takeover set aside, whose holder stopped renewing them. */
    locks: number;
    /** Temporary files of interrupted writes. */
    temps: number;
    /** LMDB `-lock` files whose data file is gone. */
    lmdbLocks: number;
  };
  /** Entries that could not be swept (see `onError`): sessions and left-over files. */
  failed: number;
  /** The sessions among `failed`. */
  failedSessions: number;
  /** Whether this was a dry run. */
  dryRun: boolean;
}

interface SweepConfig {
  dataDir: string;
  timeout: number;
  type: SweepType | undefined;
  lockStale: number;
  dryRun: boolean;
  onRemove: ((entry: SweptEntry) => void | Promise<void>) | undefined;
  onError: ((error: Error, path: string) => void | Promise<void>) | undefined;
}

/** What became of an entry: `ignored` entries (not what their name says, or not abandoned) are not counted. */
type Verdict = 'removed' | 'corrupt' | 'locked' | 'recent' | 'gone' | 'unnamed' | 'failed' | 'foreign' | 'ignored';
type NamespaceFiles = FileNamespaceManager | DBMNamespaceManager;

/**
 * Removes the file and dbm sessions in `dataDir` that were not written for longer than
 * `timeout` seconds, each with its lock files, and the lock, temporary and LMDB lock files
 * that killed processes left behind. For applications that prefer a timer to the
 * `sessionlock sweep` command:
 *
 * ```ts
 * setInterval(() => sweep({ dataDir: './sessions', timeout: 1800 }).catch(console.error), 600_000).unref();
 * ```
 *
 * A session is removed only when, under its own write lock (taken without waiting), its
 * file is still idle; a session locked by a live holder is skipped. Throws
 * {@link StorageError} naming the path when the directory cannot be read; a failure on one
 * entry is counted in `failed` and reported to `onError`, and the sweep goes on.
 */
export async function sweep(options: SweepOptions): Promise<SweepResult> {
  const config = sweepConfig(options);
  const result: SweepResult = {
    scanned: 0,
    removed: 0,
    skippedLocked: 0,
    skippedRecent: 0,
    skippedUnnamed: 0,
    skippedGone: 0,
    skippedForeign: 0,
    orphans: { locks: 0, temps: 0, lmdbLocks: 0 },
    failed: 0,
    failedSessions: 0,
    dryRun: config.dryRun,
  };
  for await (const entry of scanDataDir(config.dataDir, config.type)) {
    try {
      await sweepEntry(entry, config, result);
    } catch (error) {
      result.failed++;
      await config.onError?.(error as Error, entry.path);
    }
  }
  return result;
}

function sweepConfig(options: SweepOptions): SweepConfig {
  checkOptionsObject(options);
  const type = options.type;
  if (type !== undefined && type !== 'file' && type !== 'dbm') {
    throw new TypeError(`type must be 'file' or 'dbm', received ${JSON.stringify(type)}`);
  }
  return {
    dataDir: checkString('dataDir', options.dataDir) as string,
    timeout: checkMilliseconds('timeout', options.timeout ?? missing('timeout'), 0) * 1000,
    type,
    lockStale: checkMilliseconds('lockStale', options.lockStale, DEFAULT_LOCK_STALE, {
      min: MIN_FILE_LOCK_STALE,
      max: MAX_TIMER_DELAY,
    }),
    dryRun: checkBoolean('dryRun', options.dryRun, false),
    onRemove: checkFunction('onRemove', options.onRemove),
    onError: checkFunction('onError', options.onError),
  };
}

function missing(name: string): never {
  throw new TypeError(`${name} must be a number of seconds >= 0, received undefined`);
}

async function sweepEntry(entry: DataDirEntry, config: SweepConfig, result: SweepResult): Promise<void> {
  const stat = lstatOrUndefined(entry.path);
  if (!stat) return;
  const verdict = await judge(entry, stat, config).catch((error: unknown) => {
    tally(result, entry.kind, 'failed');
    throw error;
  });
  tally(result, entry.kind, verdict);
  if (verdict !== 'removed' && verdict !== 'corrupt') return;
  await config.onRemove?.({
    kind: entry.kind === 'data' ? 'session' : entry.kind === 'takeover' ? 'lock' : entry.kind,
    type: entry.type,
    id: entry.id,
    path: entry.path,
    size: stat.isFile() ? stat.size : 0,
    modified: stat.mtime,
    corrupt: verdict === 'corrupt',
  });
}

/** Decides about one entry and acts on it (unless `dryRun`). */
async function judge(entry: DataDirEntry, stat: fs.Stats, config: SweepConfig): Promise<Verdict> {
  const abandoned = Date.now() - stat.mtimeMs >= config.lockStale;
  switch (entry.kind) {
    case 'data':
      return judgeSession(entry, stat, config);
    case 'lock':
      return isAbandonedLock(entry, stat, config) ? clearStaleLock(entry, config) : 'ignored';
    case 'takeover':
      if (!isAbandonedLock(entry, stat, config)) return 'ignored';
      return config.dryRun || removeStaleLockEntry(entry.path, config.lockStale) ? 'removed' : 'ignored';
    case 'temp':
      return stat.isFile() && abandoned ? removeUnlessDry(config, () => removeFile(entry.path)) : 'ignored';
    case 'lmdb-lock':
      return stat.isFile() && abandoned && !lstatOrUndefined(entry.dataFile)
        ? removeLmdbLockFile(entry, config)
        : 'ignored';
  }
}

function judgeSession(entry: DataDirEntry, stat: fs.Stats, config: SweepConfig): Verdict | Promise<Verdict> {
  if (!stat.isFile()) return 'ignored';
  if (isForeignDataFile(entry)) return 'foreign';
  return idle(stat, config) ? sweepSession(entry, config) : 'recent';
}

/**
 * Whether a lock entry is stale by the longer of `lockStale` and the lease its holder
 * recorded. A lock is a file, or a directory as older versions made it (never a symlink: the
 * sweep does not follow them).
 */
function isAbandonedLock(entry: DataDirEntry, stat: fs.Stats, config: SweepConfig): boolean {
  return (stat.isFile() || stat.isDirectory()) && isStaleLockEntry(entry.path, stat, config.lockStale);
}

const ORPHANS = { lock: 'locks', takeover: 'locks', temp: 'temps', 'lmdb-lock': 'lmdbLocks' } as const;
const SESSION_COUNTS = {
  removed: 'removed',
  corrupt: 'removed',
  locked: 'skippedLocked',
  recent: 'skippedRecent',
  unnamed: 'skippedUnnamed',
  gone: 'skippedGone',
  failed: 'failedSessions',
} as const;

function tally(result: SweepResult, kind: DataDirEntry['kind'], verdict: Verdict): void {
  if (verdict === 'ignored') return;
  if (verdict === 'foreign') return void result.skippedForeign++;
  if (kind !== 'data') {
    if (verdict === 'removed') result.orphans[ORPHANS[kind]]++;
    return;
  }
  result.scanned++;
  result[SESSION_COUNTS[verdict]]++;
}

function removeUnlessDry(config: SweepConfig, remove: () => void): Verdict {
  if (!config.dryRun) remove();
  return 'removed';
}

/** Removes an idle session through its manager, deciding again under its write lock. */
async function sweepSession(entry: DataDirEntry, config: SweepConfig): Promise<Verdict> {
  const manager = managerFor(entry, config);
  if (!manager) return 'unnamed';
  if (config.dryRun) return lockFor(entry, config).heldElsewhere() ? 'locked' : 'removed';
  return removeUnderLock(manager, () => {
    const now = lstatOrUndefined(manager.file);
    if (!now) return 'gone';
    if (!idle(now, config)) return 'recent';
    if (isForeignDataFile(entry)) return 'foreign';
    return manager.fileProblem() ? 'corrupt' : 'removed';
  });
}

/**
 * Removes the namespace if `decide()`, called under its write lock, says `'removed'` or
 * `'corrupt'`. The lock is taken without waiting and without reading the namespace (so
 * encrypted sessions need no key, and corrupt ones go the same way).
 */
async function removeUnderLock(manager: NamespaceFiles, decide: () => Verdict): Promise<Verdict> {
  let verdict: Verdict = 'locked';
  try {
    await manager.removeIf(() => {
      verdict = decide();
      return verdict === 'removed' || verdict === 'corrupt';
    });
  } catch (error) {
    if (error instanceof LockTimeoutError) return 'locked';
    throw error;
  }
  return verdict;
}

/** Removes a stale lock file (and thereby the claim of a dead holder) under FileLock's takeover mutex. */
async function clearStaleLock(entry: DataDirEntry, config: SweepConfig): Promise<Verdict> {
  if (config.dryRun) return 'removed';
  const lock = lockFor(entry, config);
  if (!(await lock.tryAcquire())) return 'locked';
  await lock.release();
  return 'removed';
}

/** Removes an LMDB lock file whose data file is gone, through the manager under the write lock. */
async function removeLmdbLockFile(entry: DataDirEntry, config: SweepConfig): Promise<Verdict> {
  const manager = managerFor(entry, config);
  if (!manager) return 'unnamed';
  if (config.dryRun) return 'removed';
  return removeUnderLock(manager, () =>
    lstatOrUndefined(manager.file) || !lstatOrUndefined(lmdbLockFile(manager.file)) ? 'gone' : 'removed',
  );
}

function managerFor(entry: DataDirEntry, config: SweepConfig): NamespaceFiles | undefined {
  if (entry.id === undefined) return undefined;
  const options = { dataDir: config.dataDir, lockStale: config.lockStale, lockTimeout: 0 };
  return entry.type === 'file'
    ? new FileNamespaceManager(entry.id, options)
    : new DBMNamespaceManager(entry.id, options);
}

function lockFor(entry: DataDirEntry, config: SweepConfig): FileLock {
  return new FileLock(entry.dataFile, { stale: config.lockStale, name: entry.id ?? entry.name });
}

function idle(stat: fs.Stats, config: SweepConfig): boolean {
  return Date.now() - stat.mtimeMs > config.timeout;
}

/** lstat (never follows a symbolic link), or `undefined` when the entry is gone. */
