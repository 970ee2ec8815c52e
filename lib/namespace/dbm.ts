/**
 * The dbm backend: Myghty's "each user's session in its own DBM file", on LMDB. One LMDB
 * file per namespace under `dataDir`, each key an LMDB entry, so a commit writes only the
 * keys that changed, in one synced LMDB transaction. The cross-process write lock is the same
 * proper-lockfile lock the file backend uses; reads take no lock (but to open a file): LMDB
 * gives each read a consistent snapshot.
 * @module
 */
import { LockCompromisedError, SessionlockError, StorageError } from '../errors.js';
import { removeFile } from '../files.js';
import { retryWithBackoff } from '../lock/backoff.js';
import { checkCount } from '../options.js';
import { FileLockedNamespaceManager, type FileLockedNamespaceManagerOptions } from './file-locked.js';
import {
  type EnvironmentHandle,
  type LmdbDatabase,
  LmdbEnvironments,
  lmdbCorruption,
  lmdbLockFile,
  NOT_OPEN,
  outOfDescriptors,
} from './lmdb-environments.js';
import { lmdbFileProblem } from './lmdb-file-check.js';
import { readNewest, StaleStartError, stampCommit, writeTransaction } from './lmdb-transactions.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  HELD_ELSEWHERE,
  NAMESPACE_MANAGER_OPTIONS,
} from './namespace-options.js';

/** Options of {@link DBMNamespaceManager}. */
export interface DBMNamespaceManagerOptions extends FileLockedNamespaceManagerOptions {
  /**
   * How many LMDB files this process keeps open between uses: 3 file descriptors and about
   * 0.2 MB each, but on glibc 2.5 to 4 MB each once the cache has started evicting (LMDB's
   * 2 MB dirty-page list of each file then comes from the heap, zeroed): 1.25 to 2 GB at the
   * default. Start Node with `MALLOC_MMAP_THRESHOLD_=131072` to keep those lists out of the
   * heap (~0.5 MB each, and opening a file is cheaper: no 2 MB to zero), or lower this when
   * memory matters more than the millisecond or more that opening a file costs. When the
   * cache first evicts without the threshold pinned, a process warning says so (code
   * `SESSIONLOCK_DBM_MMAP_THRESHOLD`, once). The cache is one per thread (each worker thread
   * has its own): the last value given in the thread applies. Each file opened also leaves
   * about 1.3 KB of native memory behind (inside lmdb-js), so give this room for the sessions
   * in use where a process runs for long.
   * @default 512
   */
  maxOpenFiles?: number | undefined;
}

/** The extension of namespace files. */
export const DBM_EXTENSION = '.mdb';
const DEFAULT_MAX_OPEN_FILES = 512;
/**
 * How many times an operation runs on its file: again after LMDB began a write transaction
 * from an older commit (the file is reopened), or when the file it opened under the lock was
 * replaced before it ran.
 */
const ATTEMPTS = 5;

/** The cache of open LMDB files (one per thread). */
export const dbmEnvironments = new LmdbEnvironments(DEFAULT_MAX_OPEN_FILES);

/**
 * Keeps each namespace in its own LMDB file under `dataDir`. Exclusive across processes on
 * one machine; reads never wait for a lock unless a writer holds it. Every write transaction
 * first checks that LMDB began it from the newest commit, and every read that its snapshot
 * holds it, which the LMDB in lmdb-js 3.5.6 does not always ensure when another process opens
 * the file at the same moment (README, "Backends"); when it did not, the file is reopened and
 * the transaction tried again.
 */
export class DBMNamespaceManager extends FileLockedNamespaceManager {
  static override readonly optionNames: readonly string[] = [...NAMESPACE_MANAGER_OPTIONS, 'maxOpenFiles'];
  /**
   * Whether this instance holds the cross-process write lock, and whether it has checked,
   * under it, that its open LMDB file is the one at the path. Files are only removed or
   * replaced under that lock, so one check per hold is enough.
   */
  #hold: 'none' | 'held' | 'checked' = 'none';

  constructor(namespace: string, options: DBMNamespaceManagerOptions) {
    super(namespace, options, { backend: 'dbm', extension: DBM_EXTENSION });
    if (options.maxOpenFiles !== undefined) {
      dbmEnvironments.capacity = checkCount('maxOpenFiles', options.maxOpenFiles, { min: 1 });
    }
  }

  /**
   * Closes the LMDB files this process keeps open between uses (those not in use right
   * now). Call it at shutdown; a later use opens them again.
   */
  static closeFiles(): Promise<void> {
    return dbmEnvironments.closeAll();
  }

  /**
   * A reader takes a snapshot of the newest commit. The lock holder reads inside a write
   * transaction instead, which waits for any commit already under way, so it sees every change
   * made before it took the lock.
   */
  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (!asOwner) {
      if (this.fileLock.heldElsewhere()) return HELD_ELSEWHERE;
      const entries = await this.#withEnvironment(false, 'read', (handle) =>
        readNewest(handle, () => readEntries(handle.db)),
      );
      return entries ?? new Map();
    }
    return (await this.#heldTransaction(false, 'read', readEntries)) ?? new Map();
  }

  protected override async writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    if (entries.size === 0) return this.removeCommitted();
    const lost = await this.#heldTransaction(true, 'write', (db) => {
      const compromised = this.fileLock.compromised();
      if (!compromised) applyTo(db, changes);
      return compromised;
    });
    if (lost) throw lost;
  }

  /**
   * One LMDB transaction, exclusive across processes; no lock file, no view. A removal (which
   * takes the lock file, not LMDB's write lock) can unlink the file while the commit is under
   * way, or just before it on a file this process had open: the commit then went to a file
   * that is gone. So a commit counts once the file at the path is still the one it went to,
   * after any holder of the lock that came meanwhile has finished; otherwise it is made again.
   */
  protected override async applyAtomically(changes: EncodedChanges, requireKey: string | undefined) {
    for (let attempt = 1; ; attempt++) {
      let committedTo: EnvironmentHandle | undefined;
      const outcome = await this.#withEnvironment(requireKey === undefined, 'write', (handle) =>
        writeTransaction(handle, () => {
          if (this.fileLock.heldElsewhere()) return HELD_ELSEWHERE;
          if (requireKey !== undefined && handle.db.get(requireKey) === undefined) return 'missing' as const;
          applyTo(handle.db, changes);
          committedTo = handle;
          return 'applied' as const;
        }),
      );
      if (!committedTo || attempt === ATTEMPTS || (await this.#stillStored(committedTo))) return outcome ?? 'missing';
    }
  }

  /** Whether the file `handle` committed to is still the namespace's, once no other process holds its lock. */
  async #stillStored(handle: EnvironmentHandle): Promise<boolean> {
    if (this.fileLock.heldElsewhere()) {
      await retryWithBackoff(() => (this.fileLock.heldElsewhere() ? undefined : true), {
        deadline: Date.now() + this.lockTimeout,
      });
    }
    return dbmEnvironments.isCurrent(handle);
  }

  /**
   * Deletes the LMDB lock file, then the data file, under the write lock. A process that
   * opens the path in between gets a fresh lock file beside the old data file, which it can
   * only read until it takes the write lock, and by then it sees that the files changed.
   */
  protected override async removeCommitted(): Promise<void> {
    this.fileLock.verify();
    dbmEnvironments.forget(this.file);
    removeFile(lmdbLockFile(this.file));
    removeFile(this.file);
  }

  /** @internal */
  override fileProblem(): string | undefined {
    return lmdbFileProblem(this.file);
  }

  protected override async tryLockStorage(): Promise<boolean> {
    const locked = await super.tryLockStorage();
    this.#hold = locked ? 'held' : 'none';
    return locked;
  }

  protected override unlockStorage(): Promise<void> {
    this.#hold = 'none';
    return super.unlockStorage();
  }

  /**
   * Runs `work` in one write transaction of this namespace's file (created if `create`);
   * `undefined` when the file does not exist and may not be created. Transactions are
   * synchronous: lmdb-js's asynchronous ones were slower here, above all on a freshly opened file.
   */
  #transaction<T>(create: boolean, operation: 'read' | 'write', work: (db: LmdbDatabase) => T) {
    return this.#withEnvironment(create, operation, (handle) => writeTransaction(handle, () => work(handle.db)));
  }

  /**
   * {@link #transaction} for the holder of the write lock, which opens its file itself and so
   * never finds it held elsewhere; if it did, the lock was lost.
   */
  async #heldTransaction<T>(create: boolean, operation: 'read' | 'write', work: (db: LmdbDatabase) => T) {
    const result = await this.#transaction(create, operation, work);
    if (result === HELD_ELSEWHERE) throw new LockCompromisedError(this.namespace, 'another process holds the lock');
    return result;
  }

  /**
   * Runs `work` on this namespace's open file, again on the reopened file when LMDB began a
   * write transaction from an older commit (see `writeTransaction`). A file is only opened
   * under its write lock, which every removal holds: lmdb-js 3.5.6 corrupts its own memory
   * (and the process crashes) when a file disappears while LMDB opens it. Without the lock,
   * `work` runs on the file {@link #openUnderLock} opens, or `HELD_ELSEWHERE` is returned when
   * another process holds the lock. When the file could not be opened for want of file
   * descriptors, the files open but unused are closed and it is tried once more. LMDB errors
   * saying the file is damaged become SessionCorruptError, others StorageError.
   */
  async #withEnvironment<T>(
    create: boolean,
    operation: 'read' | 'write',
    work: (handle: EnvironmentHandle) => T,
  ): Promise<T | undefined | typeof HELD_ELSEWHERE> {
    let closedIdle = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = this.#attempt(create, work);
        const outcome = result === NOT_OPEN ? await this.#openUnderLock(create, work) : result;
        if (outcome !== NOT_OPEN) return outcome;
        if (attempt === ATTEMPTS) {
          throw new StorageError(this.file, 'open', {
            cause: new Error(`it was replaced or reopened each time it was opened, ${attempt} times`),
          });
        }
      } catch (error) {
        if (error instanceof StaleStartError && attempt < ATTEMPTS) {
          await dbmEnvironments.reopen(this.file);
          continue;
        }
        if (outOfDescriptors(error) && !closedIdle) {
          closedIdle = true;
          await dbmEnvironments.closeAll();
          continue;
        }
        throw this.#libraryError(error, operation);
      }
    }
  }

  /** `error` as this library's: SessionCorruptError when LMDB says the file is damaged, StorageError otherwise. */
  #libraryError(error: unknown, operation: 'read' | 'write'): SessionlockError {
    if (error instanceof SessionlockError) return error;
    return lmdbCorruption(error, this.namespace, this.file) ?? new StorageError(this.file, operation, { cause: error });
  }

  /**
   * Opens the file while holding its write lock, then, the lock released, runs `work` on the
   * handle it got, which stays in use meanwhile so that the cache cannot close it; `NOT_OPEN`
   * when the file was replaced or removed in between, `HELD_ELSEWHERE` when another process
   * holds the lock.
   */
  async #openUnderLock<T>(
    create: boolean,
    work: (handle: EnvironmentHandle) => T,
  ): Promise<T | undefined | typeof NOT_OPEN | typeof HELD_ELSEWHERE> {
    if (!(await this.fileLock.tryAcquire())) return HELD_ELSEWHERE;
    let handle: EnvironmentHandle | undefined;
    try {
      try {
        handle = dbmEnvironments.acquire(this.file, { create, namespace: this.namespace });
      } finally {
        await this.fileLock.release();
      }
      if (!handle) return undefined;
      return dbmEnvironments.isCurrent(handle) ? work(handle) : NOT_OPEN;
    } finally {
      if (handle) dbmEnvironments.release(handle);
    }
  }

  #attempt<T>(create: boolean, work: (handle: EnvironmentHandle) => T): T | undefined | typeof NOT_OPEN {
    const handle = dbmEnvironments.acquire(this.file, {
      create,
      namespace: this.namespace,
      checked: this.#hold === 'checked',
      open: this.#hold !== 'none',
    });
    if (handle === NOT_OPEN) return NOT_OPEN;
    if (this.#hold !== 'none') this.#hold = handle ? 'checked' : 'held';
    if (!handle) return undefined;
    try {
      return work(handle);
    } finally {
      dbmEnvironments.release(handle);
    }
  }
}

function readEntries(db: LmdbDatabase): EncodedEntries {
  const entries = new Map<string, string>();
  for (const { key, value } of db.getRange({ start: '' })) entries.set(key as string, value);
  return entries;
}

function applyTo(db: LmdbDatabase, changes: EncodedChanges): void {
  if (changes.size === 0) return;
  stampCommit(db);
  for (const [key, raw] of changes) {
    if (raw === undefined) db.removeSync(key);
    else db.putSync(key, raw);
  }
}
