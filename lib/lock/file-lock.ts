/**
 * The cross-process lock of one file, on proper-lockfile (a `<file>.lock` entry whose mtime
 * is refreshed while held). Five things are added around it:
 * - the entry is a file created with `O_EXCL` rather than proper-lockfile's directory:
 *   both are atomic, but on ext4 a directory costs many times more to create and delete
 *   (bench/raw.ts), and the lock is taken and released on every save. Either kind excludes
 *   the other (each fails with `EEXIST` on the other), and a lock directory left by an older
 *   version is honoured and, once stale, removed like a file;
 * - the lock file and the takeover mutex record their holder's lease (`stale` in ms, a few
 *   ASCII digits written when the file is created), and an entry is stale only once older
 *   than the longer of the judge's own `stale` and the recorded one: a process (or the sweep)
 *   with a shorter `lockStale` than the holder's never takes over a live lock. An empty entry
 *   (an older version's), a directory or an unreadable record counts as no record;
 * - stale takeover happens here, under a `<file>.lock.takeover` mutex, so two processes that
 *   see the same stale lock cannot both remove it and both get in (proper-lockfile's own
 *   takeover is switched off); a stale lock or mutex is removed only after it was renamed
 *   aside and found stale there (by its record too), so a takeover that comes too late puts
 *   back the fresh lock it moved instead of removing it;
 * - {@link FileLock.verify} checks, synchronously and right before a commit, that the lock
 *   file is still the one we created (its inode and mtime) and its lease unexpired (a fence:
 *   a holder that lost it writes nothing);
 * - proper-lockfile runs on a file-system adapter that performs each call synchronously:
 *   one small metadata call costs microseconds, far less than a trip through libuv's
 *   thread pool, and its mtime bookkeeping cannot interleave with `verify()`.
 * @module
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { LockCompromisedError, StorageError } from '../errors.js';
import { ensureDirectory, lstatOrUndefined, readFileHead } from '../files.js';
import { MAX_TIMER_DELAY } from '../options.js';

interface HeldLockRecord {
  mtime: Date;
  released?: boolean;
}

const require = createRequire(import.meta.url);
/**
 * proper-lockfile keeps the mtime it last wrote for each held lock in this registry; it is
 * what its own compromise check compares against, and what `verify()` compares against.
 */
const { getLocks } = require('proper-lockfile/lib/lockfile.js') as { getLocks(): Record<string, HeldLockRecord> };

/**
 * Node ignores SIGXFSZ, so a write past the file size limit (`ulimit -f`) fails with `EFBIG`
 * (a StorageError). proper-lockfile's signal-exit listens for it and, while its listeners are
 * the only ones, re-raises it, which ends the process; one more listener keeps Node's way.
 */
if (process.platform !== 'win32') process.on('SIGXFSZ', () => {});

type Callback = (error: NodeJS.ErrnoException | null, result?: unknown) => void;

function viaSync<A extends unknown[]>(call: (...args: A) => unknown) {
  return (...args: [...A, Callback]) => {
    const callback = args.pop() as Callback;
    let result: unknown;
    try {
      result = call(...(args as unknown as A));
    } catch (error) {
      process.nextTick(callback, error as NodeJS.ErrnoException);
      return;
    }
    process.nextTick(callback, null, result);
  };
}

/** The inode of each lock file proper-lockfile created here, until the FileLock that asked takes it. */
const createdInodes = new Map<string, number>();

/** proper-lockfile's file-system calls, performed synchronously; `rmdir` removes a lock file. */
const syncFs = {
  rmdir: viaSync(deleteLockEntry),
  stat: viaSync(fs.statSync),
  utimes: viaSync(fs.utimesSync),
  realpath: viaSync(fs.realpathSync),
  rmdirSync: deleteLockEntry,
};
/** Used to let proper-lockfile forget a lock we lost without deleting what is now someone else's. */
const forgetfulFs = { ...syncFs, rmdir: (_path: string, callback: Callback) => process.nextTick(callback, null) };

type LockFs = typeof syncFs & { mkdir: (file: string, callback: Callback) => void };

/** The file systems of {@link lockFsFor}, by the lease record their lock files get. */
const lockFsByLease = new Map<string, LockFs>();

/**
 * {@link syncFs} with a `mkdir` that creates a lock file recording `stale`. One object per
 * lease: proper-lockfile caches the file system's mtime precision on it (otherwise each lock
 * taken would cost a `utimes` to find it out again).
 */
function lockFsFor(stale: number): LockFs {
  const lease = leaseRecord(stale);
  const known = lockFsByLease.get(lease);
  if (known) return known;
  const lockFs = {
    ...syncFs,
    mkdir: viaSync((file: string) => void createdInodes.set(file, createLockFile(file, lease))),
  };
  lockFsByLease.set(lease, lockFs);
  return lockFs;
}

/**
 * The smallest `stale` a FileLock accepts: its holder refreshes the lock file's mtime
 * every `stale / 4` ms (at most once a second), and a shorter lease is taken over on
 * ordinary scheduling delays.
 */
export const MIN_FILE_LOCK_STALE = 2000;

export interface FileLockOptions {
  /** Milliseconds after which an unrefreshed lock is taken over. */
  stale: number;
  /** Called after a stale lock was taken over, to clean up what its dead holder left. */
  onTakeover?: () => void;
  /** Names the lock in errors (the namespace). */
  name: string;
  log?: (line: string) => void;
}

export class FileLock {
  readonly #target: string;
  readonly #lockPath: string;
  readonly #options: FileLockOptions;
  #release: (() => Promise<void>) | undefined;
  #lost: string | undefined;
  /** The inode of the lock file we created: another with the same mtime is still not ours. */
  #ino: number | undefined;

  /** A lock for `target` (an absolute path; the file need not exist). */
  constructor(target: string, options: FileLockOptions) {
    this.#target = path.resolve(target);
    this.#lockPath = `${this.#target}.lock`;
    this.#options = options;
  }

  /** The lock file's path. */
  get path(): string {
    return this.#lockPath;
  }

  /** Tries once to take the lock; takes over a stale one. Creates the parent directory when missing. */
  async tryAcquire(retryMissingDirectory = true): Promise<boolean> {
    try {
      this.#release = await lockfile.lock(this.#target, {
        realpath: false,
        stale: Number.POSITIVE_INFINITY,
        update: Math.max(1000, this.#options.stale / 4),
        retries: 0,
        fs: lockFsFor(this.#options.stale),
        onCompromised: (error: Error) => {
          this.#lost = error.message;
          this.#options.log?.(`lock of ${this.#options.name} compromised: ${error.message}`);
        },
      } as lockfile.LockOptions);
      this.#lost = undefined;
      this.#ino = createdInodes.get(this.#lockPath);
      createdInodes.delete(this.#lockPath);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOCKED') return this.#takeOverIfStale() && this.tryAcquire();
      if (code === 'ENOENT' && retryMissingDirectory) {
        ensureDirectory(path.dirname(this.#target));
        return this.tryAcquire(false);
      }
      throw new StorageError(this.#lockPath, 'create the lock', { cause: error });
    }
  }

  /** Throws {@link LockCompromisedError} unless the lock is held by us with an unexpired lease. */
  verify(): void {
    const compromised = this.compromised();
    if (compromised) throw compromised;
  }

  /** The error {@link FileLock.verify} would throw, or `undefined` while the lock is ours. */
  compromised(): LockCompromisedError | undefined {
    const lost = this.#lostReason();
    return lost ? new LockCompromisedError(this.#options.name, lost) : undefined;
  }

  /** Releases the lock. If it had been lost, leaves the lock file alone and throws {@link LockCompromisedError}. */
  async release(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    if (!release) return;
    const lost = this.#lostReason();
    if (lost) {
      await lockfile
        .unlock(this.#target, { realpath: false, fs: forgetfulFs } as lockfile.UnlockOptions)
        .catch(() => {});
      throw new LockCompromisedError(this.#options.name, lost);
    }
    try {
      await release();
    } catch (error) {
      throw new StorageError(this.#lockPath, 'remove the lock', { cause: error });
    }
  }

  /** Whether a live holder (another process) holds the lock now, by the longer of our lease and the one it recorded. */
  heldElsewhere(): boolean {
    const stat = lstatOrUndefined(this.#lockPath);
    return stat !== undefined && !isStaleLockEntry(this.#lockPath, stat, this.#options.stale);
  }

  #lostReason(): string | undefined {
    if (this.#lost) return this.#lost;
    const record = getLocks()[this.#target];
    if (!record || record.released) return 'it was released or taken over';
    const age = Date.now() - record.mtime.getTime();
    if (age >= this.#options.stale) {
      return `its lease was not renewed for ${age} ms (lockStale is ${this.#options.stale} ms; was the event loop blocked?)`;
    }
    const stat = lstatOrUndefined(this.#lockPath);
    if (!stat) return 'its lock file was removed';
    if (stat.ino !== this.#ino || stat.mtime.getTime() !== record.mtime.getTime()) {
      return 'another process took it over';
    }
    return undefined;
  }

  /**
   * Removes the lock if its holder stopped refreshing it, under a mutex so only one process
   * does; returns whether it did (then `onTakeover` has cleaned up after the dead holder).
   */
  #takeOverIfStale(): boolean {
    const seen = lstatOrUndefined(this.#lockPath);
    if (!seen || !isStaleLockEntry(this.#lockPath, seen, this.#options.stale)) return false;
    const guard = `${this.#lockPath}.takeover`;
    if (!this.#takeGuard(guard)) return false;
    try {
      const removed = removeStaleLockEntry(this.#lockPath, this.#options.stale);
      if (!removed) return false;
      this.#options.log?.(
        `took over the stale lock of ${this.#options.name} (${Math.round(Date.now() - removed.mtimeMs)} ms old)`,
      );
      this.#options.onTakeover?.();
      return true;
    } finally {
      removeLockEntry(guard);
    }
  }

  /** Takes the takeover mutex; one left by a process that died during a takeover is removed once it is stale. */
  #takeGuard(guard: string): boolean {
    const lease = leaseRecord(this.#options.stale);
    if (tryCreateLockFile(guard, lease)) return true;
    return removeStaleLockEntry(guard, this.#options.stale) !== undefined && tryCreateLockFile(guard, lease);
  }
}

/** What a lock file records: its holder's lease in ms (at most {@link MAX_TIMER_DELAY}), as ASCII digits. */
function leaseRecord(stale: number): string {
  return String(Math.min(Math.ceil(stale), MAX_TIMER_DELAY));
}

/** The longest record {@link leaseRecord} makes. */
const LEASE_RECORD_LENGTH = String(MAX_TIMER_DELAY).length;
const LEASE_RECORD = new RegExp(`^[0-9]{1,${LEASE_RECORD_LENGTH}}$`);

/**
 * The lease the holder of a lock entry recorded in it (at most {@link MAX_TIMER_DELAY}), or 0
 * when there is none: an empty file (an older version's), a directory, a symbolic link, or
 * content that is not a record.
 */
function recordedLease(entry: string, stat: fs.Stats): number {
  if (!stat.isFile() || stat.size === 0) return 0;
  let text: string;
  try {
    text = readFileHead(entry, LEASE_RECORD_LENGTH + 1)?.toString('latin1') ?? '';
  } catch {
    return 0;
  }
  return LEASE_RECORD.test(text) ? Math.min(Number(text), MAX_TIMER_DELAY) : 0;
}

/**
 * Whether the lock entry `entry` (a lock file, a takeover mutex, or an older version's lock
 * directory) whose stats are `stat` is stale: not refreshed for the longer of `stale` and
 * the lease its holder recorded in it.
 */
export function isStaleLockEntry(entry: string, stat: fs.Stats, stale: number): boolean {
  const age = Date.now() - stat.mtimeMs;
  return age >= stale && age >= recordedLease(entry, stat);
}

/** The suffix of a lock entry renamed aside by {@link removeStaleLockEntry}, for the sweep to recognise. */
export const ASIDE_SUFFIX = '.aside';

/**
 * Removes the lock entry (a lock file, a takeover mutex, or an older version's lock
 * directory) if it is stale (see {@link isStaleLockEntry}), and returns the stats of what it
 * removed. A file is first renamed aside and judged there, by its own mtime and record, so
 * one that a faster process created in place of the stale entry the caller saw is never
 * removed: it is linked back (if yet another process made a new entry meanwhile, that one
 * stays, and the fence of the holder whose entry was moved refuses its commits).
 * Directories, which only older versions make, are judged and removed in place.
 */
export function removeStaleLockEntry(entry: string, stale: number): fs.Stats | undefined {
  const seen = lstatOrUndefined(entry);
  if (!seen || !isStaleLockEntry(entry, seen, stale)) return undefined;
  if (seen.isDirectory()) {
    removeLockEntry(entry);
    return seen;
  }
  const aside = `${entry}.${randomBytes(6).toString('hex')}${ASIDE_SUFFIX}`;
  try {
    fs.renameSync(entry, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StorageError(entry, 'move aside', { cause: error });
  }
  const moved = lstatOrUndefined(aside);
  if (!moved) return undefined;
  if (isStaleLockEntry(aside, moved, stale)) {
    removeLockEntry(aside);
    return moved;
  }
  putBack(aside, entry);
  return undefined;
}

/**
 * Links an entry moved aside back to its place and drops the aside name; if a new entry is
 * there by now, that one stays. Where links are not possible (a directory, some file
 * systems), renames it back instead.
 */
function putBack(aside: string, entry: string): void {
  try {
    fs.linkSync(aside, entry);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      try {
        fs.renameSync(aside, entry);
        return;
      } catch (renameError) {
        throw new StorageError(entry, 'put back', { cause: renameError });
      }
    }
  }
  removeLockEntry(aside);
}

/**
 * Creates the lock file `file` recording `lease` and returns its inode; throws `EEXIST` when a
 * lock (file or directory) is there. A record that cannot be written (a full disk) leaves the
 * file empty, judged by others' own lease, rather than fail the lock.
 */
function createLockFile(file: string, lease: string): number {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    try {
      fs.writeSync(fd, lease);
    } catch {}
    return fs.fstatSync(fd).ino;
  } finally {
    fs.closeSync(fd);
  }
}

function tryCreateLockFile(file: string, lease: string): boolean {
  try {
    createLockFile(file, lease);
    return true;
  } catch {
    return false;
  }
}

/** Deletes a lock file, or the lock directory an older version made; throws like `fs` (`ENOENT` when missing). */
function deleteLockEntry(entry: string): void {
  try {
    fs.unlinkSync(entry);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM') throw error;
    fs.rmdirSync(entry);
  }
}

/** Removes a lock file or an older version's lock directory; a missing one is fine. */
export function removeLockEntry(entry: string): void {
  try {
    deleteLockEntry(entry);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(entry, 'remove', { cause: error });
  }
}
