/**
 * What the file and dbm backends share: each namespace lives in one file under `dataDir`
 * (named by {@link storagePath}), and a {@link FileLock} beside it is the cross-process write lock.
 * @module
 */
import { FileLock, MIN_FILE_LOCK_STALE } from '../lock/file-lock.js';
import { checkString } from '../options.js';
import { NamespaceManager } from './namespace-manager.js';
import type { NamespaceManagerOptions } from './namespace-options.js';
import { storagePath } from './storage-path.js';

/** Options of the backends that keep each namespace in a file of a data directory. */
export interface FileLockedNamespaceManagerOptions extends NamespaceManagerOptions {
  /** Directory of the namespace files; created when missing. */
  dataDir: string;
}

/**
 * A backend that keeps each namespace in one file under `dataDir`, locked across processes
 * by a proper-lockfile lock file beside it.
 * @hidden
 */
export abstract class FileLockedNamespaceManager extends NamespaceManager {
  /** The path of this namespace's file. */
  readonly file: string;
  /**
   * The cross-process write lock of {@link file}.
   * @internal
   */
  protected readonly fileLock: FileLock;

  constructor(
    namespace: string,
    options: FileLockedNamespaceManagerOptions,
    { backend, extension }: { backend: string; extension: string },
  ) {
    super(namespace, options);
    const dataDir = checkString('dataDir', options.dataDir) as string;
    if (this.lockStale < MIN_FILE_LOCK_STALE) {
      throw new TypeError(
        `lockStale must be >= ${MIN_FILE_LOCK_STALE} for the ${backend} backend, received ${this.lockStale}`,
      );
    }
    this.file = storagePath(dataDir, namespace, extension);
    this.fileLock = new FileLock(this.file, {
      stale: this.lockStale,
      name: namespace,
      log: (line) => this.log(line),
      onTakeover: () => this.cleanUpAfterTakeover(),
    });
  }

  protected override get lockKey(): string {
    return `file-locked:${this.file}`;
  }

  protected override tryLockStorage(): Promise<boolean> {
    return this.fileLock.tryAcquire();
  }

  protected override unlockStorage(): Promise<void> {
    return this.fileLock.release();
  }

  /** Removes what a dead holder of a stale lock left behind, right after taking the lock over. */
  protected cleanUpAfterTakeover(): void {}

  /**
   * What makes this namespace's file unreadable as a whole (not one of its values), or
   * `undefined` when it is intact or missing. Needs no `encryptKey`; the sweep reports it.
   * @internal
   */
  abstract fileProblem(): string | undefined;
}
