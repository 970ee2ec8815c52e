/**
 * A bounded cache of open LMDB environments, one per namespace file. Opening one costs
 * about a millisecond and holds three file descriptors, so environments stay open between
 * operations, the least recently used beyond the capacity being closed.
 *
 * Other processes may delete a namespace's files while this process has them open, so
 * every use first checks that the files at the path are still the ones opened (by inode,
 * and by size: LMDB never shrinks a file, and reading a mapped file that was truncated
 * would crash the process); if not, the stale handle is retired and the path opened afresh.
 *
 * Transactions go through ./lmdb-transactions, which refuses to build on or read anything
 * but the newest commit (see there for the lmdb-js defect it guards against).
 * @module
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as lmdb from 'lmdb';
import { openAsClass, type RootDatabase } from 'lmdb';
import { SessionCorruptError, SessionlockError, StorageError } from '../errors.js';
import { ensureDirectory, statOrUndefined } from '../files.js';
import { shortenSessionIds } from '../session-id.js';
import { warnOnceIfMmapThresholdFloats } from './glibc-malloc.js';
import {
  checkOpenFile,
  checkSpaceForNewFile,
  openForCheck,
  openOrCreateForCheck,
  prepareLmdbLockFile,
} from './lmdb-file-check.js';
import { writeTransaction } from './lmdb-transactions.js';

/** Keys are data keys (strings) or reserved numbers (the commit stamp). */
export type LmdbKey = string | number;

/** An open environment. Give it back with {@link LmdbEnvironments.release}. */
export interface EnvironmentHandle {
  readonly path: string;
  readonly db: LmdbDatabase;
}

/** A namespace's open LMDB database. */
export type LmdbDatabase = RootDatabase<string, LmdbKey>;

interface Entry extends EnvironmentHandle {
  /** Resolves once the environment is closed (or abandoned). */
  readonly gone: Promise<void>;
  markGone(): void;
  dataIno: number;
  /** The largest size seen; LMDB files never shrink, so a smaller one means the file was rewritten by something else. */
  dataSize: number;
  lockIno: number;
  users: number;
  retired: boolean;
  closed: boolean;
}

/** The lock file LMDB keeps beside a data file opened without a subdirectory. */
export function lmdbLockFile(dataFile: string): string {
  return `${dataFile}-lock`;
}

const MAP_SIZE = 64 * 1024 * 1024;
/** Session data is for the server's eyes only. */
const SESSION_FILE_MODE = 0o600;
/**
 * Given by {@link LmdbEnvironments.acquire} called with `open: false` when the file would have
 * to be opened: the caller takes the file's write lock and calls again with `open: true`.
 */
export const NOT_OPEN: unique symbol = Symbol('not open');
/** Given by `#open` when another file took the path while LMDB opened it. */
const REPLACED = Symbol('replaced');
/** How many times a file replaced while being opened is opened again. */
const OPEN_ATTEMPTS = 3;
/** lmdb-js's `open()` error when LMDB could not begin the write transaction it runs (see {@link openStore}). */
const NO_WRITE_TRANSACTION = /No transaction to renew/;
/** How many times {@link openStore} opens a file whose write transactions could not begin. */
const STORE_ATTEMPTS = 3;

/**
 * Closes an environment and drops it from lmdb's `allDbs`, a registry of every store ever
 * opened (keyed by file name) that lmdb never shrinks: without this, each session file
 * opened once would stay in memory (about 80 KB) for the life of the process.
 */
async function closeStore(entry: EnvironmentHandle): Promise<void> {
  try {
    await entry.db.close();
  } catch {}
  const key = path.basename(entry.path, path.extname(entry.path));
  if (openedStores?.get(key) === entry.db) openedStores.delete(key);
}

/** lmdb's registry of opened stores: exported by lmdb 3, though not declared in its types. */
const openedStores = (lmdb as unknown as { allDbs?: Map<string, unknown> }).allDbs;
/**
 * Opens the store of `file` with lmdb's `open()`, but closes its environment when the store
 * cannot be made (lmdb-js leaves it open) and, when LMDB could not begin a write transaction,
 * opens the file again. That happens when this process opens a file just as the last other
 * process that had it open closes it: LMDB's close takes the lock file's exclusive lock and
 * destroys the mutexes in it; LMDB's open, refused the exclusive lock meanwhile, waits for a
 * shared one and then uses the lock file as it finds it, so no transaction can begin
 * (`pthread_mutex_lock` gives EINVAL). Left open, that environment would keep every process
 * from initialising the lock file again, and every later open of the file, in any process,
 * would fail the same way. Closed, the next open here takes the exclusive lock (files are
 * only opened under their write lock, so no other process opens this one meanwhile) and
 * initialises the mutexes.
 */
function openStore(file: string): LmdbDatabase {
  for (let attempt = 1; ; attempt++) {
    ensureDescriptorsForLmdb();
    const options = lmdbOpenOptions(file);
    // What `open()` does, in two steps; the class holds the environment.
    const Store = openAsClass<string, LmdbKey>({ ...options }) as unknown as StoreClass;
    try {
      return new Store(null, { ...options, isRoot: true });
    } catch (error) {
      try {
        Object.assign(Object.create(Store.prototype) as LmdbDatabase, { isRoot: true }).close();
      } catch {}
      if (attempt === STORE_ATTEMPTS || !NO_WRITE_TRANSACTION.test(String(error))) throw error;
    }
  }
}

/** What lmdb's `openAsClass` returns (its declared type has no construct signature). */
type StoreClass = { prototype: LmdbDatabase } & (new (name: null, options: object) => LmdbDatabase);

/** Descriptors LMDB's open takes: the lock file, the data file, and a synced one for meta pages. */
const LMDB_OPEN_DESCRIPTORS = 3;

/**
 * Throws (EMFILE or ENFILE) unless this process can open as many files as LMDB's open will:
 * lmdb-js 3.5.6 frees memory twice, and the process crashes, when LMDB's open fails part-way.
 * A thread that opens files at the same moment can still take the last descriptors first.
 */
function ensureDescriptorsForLmdb(): void {
  const probes: number[] = [];
  try {
    while (probes.length < LMDB_OPEN_DESCRIPTORS) probes.push(fs.openSync(os.devNull, 'r'));
  } finally {
    for (const fd of probes) fs.closeSync(fd);
  }
}

/**
 * The lmdb `open()` options for a namespace file. Every commit is synced (fdatasync) before
 * it returns, so a commit also survives the machine crashing, without lmdb-js's overlapping
 * sync: after a writer was killed mid-commit with overlapping sync on, closing the file in
 * another process spun forever in `mdb_env_sync` (spec/namespace/on-disk.spec.ts and the
 * crash soak guard both). `noSync` and `noMetaSync` once lost commits between processes
 * here too; that is what {@link writeTransaction} guards against (with it, unsynced commits
 * lost none in 180 rounds of the stress that README "Backends" describes). Files are created
 * readable by their owner only, as the file backend's are (lmdb-js would make them 0664).
 */
export function lmdbOpenOptions(file: string) {
  return {
    path: file,
    noSubdir: true,
    encoding: 'string' as const,
    mapSize: MAP_SIZE,
    overlappingSync: false,
    permissionsMode: SESSION_FILE_MODE,
  };
}

/** Whether `error` is a failure to open a file because the process or the system had no file descriptor left. */
export function outOfDescriptors(error: unknown): boolean {
  const code = ((error as Error | undefined)?.cause as NodeJS.ErrnoException | undefined)?.code;
  return error instanceof StorageError && (code === 'EMFILE' || code === 'ENFILE');
}

/** The LMDB errors that mean the file is damaged, not that something failed around it. */
const CORRUPTION = /\bMDB_(INVALID|VERSION_MISMATCH|CORRUPTED|PAGE_NOTFOUND)\b/;

/**
 * A {@link SessionCorruptError} naming `namespace` when `error` is LMDB saying that `file`
 * is damaged (not an LMDB file, another version, a page missing or of the wrong type);
 * `undefined` for other errors.
 */
export function lmdbCorruption(error: unknown, namespace: string, file: string): SessionCorruptError | undefined {
  if (!CORRUPTION.test(String(error))) return undefined;
  return new SessionCorruptError(namespace, `${file} is not a usable LMDB file`, { cause: error });
}

interface AcquireOptions {
  create: boolean;
  namespace: string;
  checked?: boolean;
}

export class LmdbEnvironments {
  readonly #entries = new Map<string, Entry>();
  /** Entries no longer handed out whose environments are not closed yet. */
  readonly #leaving = new Set<Entry>();
  #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** How many environments may stay open when unused; lowering it closes the surplus. */
  get capacity(): number {
    return this.#capacity;
  }

  set capacity(capacity: number) {
    this.#capacity = capacity;
    this.#evictUnused();
  }

  /** How many environments are open now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The open environment of `file`, opening it if needed. Without `create`, a missing file
   * gives `undefined` (nothing is created by reading). Garbage in the file throws
   * {@link SessionCorruptError} naming `namespace`. `checked`: the caller knows the files at
   * the path are still the ones it was last given (it holds the write lock and got them under
   * it), so an open environment is handed out without looking at the files again. A file just
   * opened gets an empty {@link writeTransaction} first, so that an id of the newest commit
   * its opening set back is caught at once: {@link StaleStartError} (call {@link reopen}).
   * `open: false`: a file not open yet is not opened; {@link NOT_OPEN} is returned instead.
   */
  acquire(file: string, options: AcquireOptions & { open?: true }): EnvironmentHandle | undefined;
  acquire(file: string, options: AcquireOptions & { open: boolean }): EnvironmentHandle | undefined | typeof NOT_OPEN;
  acquire(
    file: string,
    { create, namespace, checked = false, open = true }: AcquireOptions & { open?: boolean },
  ): EnvironmentHandle | undefined | typeof NOT_OPEN {
    const cached = this.#entries.get(file);
    if (checked && cached) return this.#use(cached);
    const data = statOrUndefined(file);
    if (cached) {
      const lock = data && statOrUndefined(lmdbLockFile(file));
      if (lock && cached.dataIno === data.ino && cached.lockIno === lock.ino && data.size >= cached.dataSize) {
        cached.dataSize = data.size;
        return this.#use(cached);
      }
      if (data && data.ino === cached.dataIno && data.size < cached.dataSize) this.#abandon(cached);
      else this.retire(cached);
    }
    if (!data && !create) return undefined;
    if (!open) return NOT_OPEN;
    let entry = this.#open(file, namespace, create);
    for (let attempt = 1; entry === REPLACED; attempt++) {
      if (attempt === OPEN_ATTEMPTS) {
        throw new StorageError(file, 'open', {
          cause: new Error(`it was replaced while being opened, ${attempt} times`),
        });
      }
      entry = this.#open(file, namespace, create);
    }
    if (!entry) return undefined;
    entry.users++;
    this.#entries.set(file, entry);
    this.#evictUnused();
    try {
      writeTransaction(entry, () => undefined);
    } catch (error) {
      this.release(entry);
      this.retire(entry);
      throw error;
    }
    return entry as EnvironmentHandle;
  }

  /**
   * Stops handing out the open environment of `file` and resolves once every environment this
   * process had open on that path is closed, so that the next {@link acquire} opens the file
   * afresh. Give back the handles in use first; other users give theirs back when done.
   */
  async reopen(file: string): Promise<void> {
    this.forget(file);
    await Promise.all([...this.#leaving].filter((entry) => entry.path === file).map((entry) => entry.gone));
  }

  /** Hands out an open environment, making it the most recently used. */
  #use(entry: Entry): EnvironmentHandle {
    this.#entries.delete(entry.path);
    this.#entries.set(entry.path, entry);
    entry.users++;
    return entry;
  }

  /** Whether the files at the handle's path are still the ones it opened. */
  isCurrent(handle: EnvironmentHandle): boolean {
    const entry = handle as Entry;
    if (entry.retired) return false;
    const data = statOrUndefined(entry.path);
    const lock = data && statOrUndefined(lmdbLockFile(entry.path));
    return data?.ino === entry.dataIno && lock?.ino === entry.lockIno && data.size >= entry.dataSize;
  }

  /** Gives a handle back; closes it when retired, and the least recently used ones beyond capacity. */
  release(handle: EnvironmentHandle): void {
    const entry = handle as Entry;
    entry.users--;
    if (entry.retired) this.#closeIfUnused(entry);
    else this.#evictUnused();
  }

  /** Stops handing out this handle (its files were removed or replaced); it closes once unused. */
  retire(handle: EnvironmentHandle): void {
    const entry = handle as Entry;
    entry.retired = true;
    this.#remove(entry);
    this.#closeIfUnused(entry);
  }

  /** Retires the handle of `file`, if one is open (its files are about to be deleted). */
  forget(file: string): void {
    const entry = this.#entries.get(file);
    if (entry) this.retire(entry);
  }

  /** Closes every unused environment (tests, shutdown). */
  async closeAll(): Promise<void> {
    const closing = [...this.#entries.values()].filter((entry) => entry.users === 0 && !entry.closed);
    for (const entry of closing) this.#remove(entry);
    await Promise.all(closing.map((entry) => this.#close(entry)));
  }

  /**
   * Opens `file`, or gives `undefined` when it is missing and not to be created. The data
   * file is opened (created empty if `create`), checked, and held open through a descriptor
   * of ours while LMDB opens the path. If that file is still at the path afterwards, LMDB
   * opened that very file (a removed file never comes back to its path), and its inode is the
   * one recorded; if another file took its place meanwhile, the result is {@link REPLACED}.
   */
  #open(file: string, namespace: string, create: boolean): Entry | undefined | typeof REPLACED {
    if (create) ensureDirectory(path.dirname(file));
    const fd = create ? openOrCreateForCheck(file, SESSION_FILE_MODE) : openForCheck(file);
    if (fd === undefined) return undefined;
    try {
      const problem = checkOpenFile(fd, file);
      if (problem) throw new SessionCorruptError(namespace, `${file} ${problem}`);
      let db: LmdbDatabase;
      checkSpaceForNewFile(fd, file);
      prepareLmdbLockFile(lmdbLockFile(file));
      try {
        db = openStore(file);
      } catch (error) {
        throw lmdbCorruption(error, namespace, file) ?? new StorageError(file, 'open', { cause: error });
      }
      let entry: Entry | undefined;
      try {
        const data = fs.fstatSync(fd);
        const lock = statOrUndefined(lmdbLockFile(file));
        if (lock && statOrUndefined(file)?.ino === data.ino) {
          const files = { dataIno: data.ino, dataSize: data.size, lockIno: lock.ino };
          let markGone = () => {};
          const gone = new Promise<void>((resolve) => {
            markGone = resolve;
          });
          entry = { path: file, db, gone, markGone, ...files, users: 0, retired: false, closed: false };
        }
      } finally {
        if (!entry) void closeStore({ path: file, db });
      }
      return entry ?? REPLACED;
    } catch (error) {
      if (error instanceof SessionlockError) throw error;
      throw new StorageError(file, 'open', { cause: error });
    } finally {
      fs.closeSync(fd);
    }
  }

  #evictUnused(): void {
    if (this.#entries.size <= this.#capacity) return;
    warnOnceIfMmapThresholdFloats();
    for (const entry of this.#entries.values()) {
      if (this.#entries.size <= this.#capacity) break;
      if (entry.users > 0) continue;
      this.#remove(entry);
      this.#closeIfUnused(entry);
    }
  }

  /**
   * Drops a handle whose file was truncated under it by something else, without closing it:
   * closing flushes through the memory map, and touching a truncated map kills the process.
   * The handle's descriptors stay open; this only happens when a file is tampered with.
   */
  #abandon(entry: Entry): void {
    entry.retired = true;
    entry.closed = true;
    this.#remove(entry);
    this.#leaving.delete(entry);
    entry.markGone();
    process.emitWarning(
      shortenSessionIds(`sessionlock: ${entry.path} was truncated while open; its handle is abandoned`),
    );
  }

  /** Stops handing out `entry`; it counts as leaving until its environment is closed. */
  #remove(entry: Entry): void {
    if (this.#entries.get(entry.path) === entry) this.#entries.delete(entry.path);
    if (!entry.closed) this.#leaving.add(entry);
  }

  #closeIfUnused(entry: Entry): void {
    if (entry.users > 0 || entry.closed) return;
    void this.#close(entry);
  }

  async #close(entry: Entry): Promise<void> {
    entry.closed = true;
    await closeStore(entry);
    this.#leaving.delete(entry);
    entry.markGone();
  }
}
