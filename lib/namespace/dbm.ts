/**
 * The dbm backend: Myghty's "each user's session in its own DBM file", on LMDB. One LMDB
 * file per namespace under `dataDir`, each key an LMDB entry, so a commit writes only the
 * keys that changed. The write lock is a lease record in the same file ({@link LmdbLeaseLock});
 * reads take no lock: LMDB gives each read a consistent snapshot.
 * @module
 */
import type { SessionCorruptError } from '../errors.js';
import { removeFile } from '../files.js';
import { LmdbLeaseLock } from '../lock/lmdb-lease-lock.js';
import { checkBoolean, checkCount, checkString } from '../options.js';
import { type EnvironmentHandle, LmdbEnvironments, lmdbLockFile } from './lmdb-environments.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  HELD_ELSEWHERE,
  NamespaceManager,
  type NamespaceManagerOptions,
} from './namespace-manager.js';
import { storagePath } from './storage-path.js';

/** Options of {@link DBMNamespaceManager}. */
export interface DBMNamespaceManagerOptions extends NamespaceManagerOptions {
  /** Directory of the namespace files; created when missing. */
  dataDir: string;
  /**
   * `true`: fsync each commit. `false`: a commit survives the process being killed but may
   * be lost if the machine crashes, as with most session stores.
   * @default false
   */
  durable?: boolean;
  /**
   * How many LMDB files this process keeps open between uses (3 file descriptors each).
   * The cache is process-wide: the last value given applies.
   * @default 512
   */
  maxOpenFiles?: number;
}

/** The extension of namespace files. */
export const DBM_EXTENSION = '.mdb';
const DEFAULT_MAX_OPEN_FILES = 512;

/** The process-wide cache of open LMDB files. */
export const dbmEnvironments = new LmdbEnvironments(DEFAULT_MAX_OPEN_FILES);

interface HeldLock {
  handle: EnvironmentHandle;
  lease: LmdbLeaseLock;
}

/**
 * Keeps each namespace in its own LMDB file under `dataDir`. Exclusive across processes on
 * one machine; reads never wait for a lock unless a writer holds it.
 */
export class DBMNamespaceManager extends NamespaceManager {
  /** The path of this namespace's LMDB file. */
  readonly file: string;
  readonly #durable: boolean;
  readonly #environments: LmdbEnvironments;
  #held: HeldLock | undefined;

  constructor(namespace: string, options: DBMNamespaceManagerOptions) {
    super(namespace, options);
    const dataDir = checkString('dataDir', options.dataDir) as string;
    this.#durable = checkBoolean('durable', options.durable, false);
    if (options.maxOpenFiles !== undefined) {
      dbmEnvironments.capacity = checkCount('maxOpenFiles', options.maxOpenFiles, { min: 1 });
    }
    this.#environments = dbmEnvironments;
    this.file = storagePath(dataDir, namespace, DBM_EXTENSION);
  }

  protected override get lockKey(): string {
    return `dbm:${this.file}`;
  }

  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (asOwner) return readEntries(this.#heldLock().handle);
    const handle = this.#environments.acquire(this.file, this.#openOptions(false));
    if (!handle) return new Map();
    try {
      if (LmdbLeaseLock.heldBySomeone(handle.db)) return HELD_ELSEWHERE;
      return readEntries(handle);
    } finally {
      this.#environments.release(handle);
    }
  }

  protected override async tryLockStorage(): Promise<boolean> {
    const handle = this.#environments.acquire(this.file, this.#openOptions(true)) as EnvironmentHandle;
    const lease = new LmdbLeaseLock(handle.db, {
      stale: this.lockStale,
      name: this.namespace,
      log: (l) => this.log(l),
    });
    let acquired = false;
    try {
      acquired = await lease.tryAcquire();
      if (acquired && this.#environments.isCurrent(handle)) {
        this.#held = { handle, lease };
        return true;
      }
      if (acquired) await lease.release().catch(() => {});
      return false;
    } finally {
      if (!this.#held) this.#environments.release(handle);
    }
  }

  protected override async unlockStorage(): Promise<void> {
    const { handle, lease } = this.#heldLock();
    this.#held = undefined;
    try {
      if (lease.isHeld() && isEmpty(handle)) {
        lease.abandon();
        this.#unlinkFiles(handle);
        return;
      }
      await lease.release();
    } finally {
      this.#environments.release(handle);
    }
  }

  protected override async writeCommitted(changes: EncodedChanges): Promise<void> {
    const { handle, lease } = this.#heldLock();
    lease.writeFenced(() => {
      for (const [key, raw] of changes) {
        if (raw === undefined) handle.db.remove(key);
        else handle.db.put(key, raw);
      }
    });
  }

  protected override async removeCommitted(): Promise<void> {
    const { handle, lease } = this.#heldLock();
    lease.writeFenced(() => {
      for (const key of handle.db.getKeys({ start: '' })) handle.db.remove(key);
    });
  }

  /** A file that is not LMDB cannot hold a lease: delete it directly. */
  protected override async removeCorrupt(error: SessionCorruptError): Promise<void> {
    this.log(`deleting ${this.file}: ${error.message}`);
    removeFile(lmdbLockFile(this.file));
    removeFile(this.file);
  }

  #openOptions(create: boolean) {
    return { create, durable: this.#durable, namespace: this.namespace };
  }

  #heldLock(): HeldLock {
    if (!this.#held) throw new Error('the dbm backend was asked to use a lock it does not hold');
    return this.#held;
  }

  /**
   * Deletes the namespace's files while still holding the lease, so no other process can
   * write to them in between: the lock file first (a process that opens the path meanwhile
   * gets a fresh lock file with the still-present data file, whose lease it sees held),
   * then the data file.
   */
  #unlinkFiles(handle: EnvironmentHandle): void {
    removeFile(lmdbLockFile(this.file));
    removeFile(this.file);
    this.#environments.retire(handle);
  }
}

function readEntries(handle: EnvironmentHandle): Map<string, string> {
  handle.db.resetReadTxn();
  const entries = new Map<string, string>();
  for (const { key, value } of handle.db.getRange({ start: '' })) entries.set(key as string, value);
  return entries;
}

function isEmpty(handle: EnvironmentHandle): boolean {
  handle.db.resetReadTxn();
  for (const _ of handle.db.getKeys({ start: '', limit: 1 })) return false;
  return true;
}
