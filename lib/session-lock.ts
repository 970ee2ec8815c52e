/**
 * Who holds a session's lock within one Session object: `lock()` pins it until `unlock()`,
 * `withLock()` bodies hold it while any of them runs, and calls made while the lock is being
 * taken share that taking.
 * @module
 */
import { LockStateError } from './errors.js';
import type { NamespaceManager } from './namespace/namespace-manager.js';
import type { SessionLockOptions } from './session-options.js';

/** Where a Session's debug lines go (its `log` option). */
export type LogLine = ((line: string) => void) | undefined;

/**
 * Runs `cleanup` after `error` ended an operation, and returns `error` to rethrow: a cleanup
 * that fails too (`what`, e.g. releasing a lock on a storage that went down) is logged, not
 * thrown, so the caller sees what went wrong first.
 */
export async function afterFailure<E>(
  error: E,
  what: string,
  cleanup: () => Promise<unknown>,
  log: LogLine,
): Promise<E> {
  try {
    await cleanup();
  } catch (cleanupError) {
    log?.(`could not ${what} after an error (${messageOf(error)}): ${messageOf(cleanupError)}`);
  }
  return error;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SessionLock {
  /** Takes the manager's write lock and reloads the session under it, calling {@link held}. */
  readonly #take: (options: SessionLockOptions) => Promise<void>;
  readonly #log: LogLine;
  /** The manager whose write lock is held, while one is. */
  #holder: NamespaceManager | undefined;
  #taking: Promise<void> | undefined;
  #pinned = false;
  #bodies = 0;

  constructor(take: (options: SessionLockOptions) => Promise<void>, log: LogLine) {
    this.#take = take;
    this.#log = log;
  }

  /** Whether the lock is held. */
  get locked(): boolean {
    return this.#holder !== undefined;
  }

  /** Whether {@link pin} holds the lock until {@link unpin}. */
  get pinned(): boolean {
    return this.#pinned;
  }

  /** Whether the lock is being taken right now. */
  get taking(): boolean {
    return this.#taking !== undefined;
  }

  /** Records that `manager` now holds the write lock (and, `pinned`, until {@link unpin}). */
  held(manager: NamespaceManager, pinned = false): void {
    this.#holder = manager;
    if (pinned) this.#pinned = true;
  }

  /** Takes the lock unless held, sharing a taking under way. */
  acquire(options: SessionLockOptions): Promise<void> {
    if (this.locked) return Promise.resolve();
    this.#taking ??= this.#take(options).finally(() => {
      this.#taking = undefined;
    });
    return this.#taking;
  }

  /** Takes the lock and keeps it until {@link unpin}. */
  async pin(options: SessionLockOptions): Promise<void> {
    this.#pinned = true; // already while taking, so a body ending meanwhile keeps the lock
    try {
      await this.acquire(options);
    } catch (error) {
      if (!this.locked) this.#pinned = false;
      throw error;
    }
    this.#pinned = true; // again: a session started over while taking (removed elsewhere) unpinned it
  }

  /** Releases a pinned lock now, or once the body running under it ends. */
  async unpin(): Promise<void> {
    if (this.#taking) await this.settled();
    if (!this.locked) throw new LockStateError('unlock() without lock()');
    this.#pinned = false;
    if (this.#bodies === 0) await this.release();
  }

  /** Waits for a taking under way to end, however it ends (its callers get its error). */
  async settled(): Promise<void> {
    await this.#taking?.catch(() => {});
  }

  /**
   * Runs `body` holding the lock, which stays held until the last body running ends (and,
   * pinned, until {@link unpin}). Bodies of overlapping calls run together under it.
   */
  async run<T>(options: SessionLockOptions, body: () => Promise<T>): Promise<T> {
    this.#bodies++;
    let result: T;
    try {
      if (!this.locked) await this.acquire(options);
      result = await body();
    } catch (error) {
      throw await this.releaseAfter(error, () => this.#bodyEnded());
    }
    await this.#bodyEnded();
    return result;
  }

  async #bodyEnded(): Promise<void> {
    this.#bodies--;
    if (this.#bodies === 0 && !this.#pinned) await this.release();
  }

  /** {@link afterFailure} for a `release` of this lock (by default {@link release}). */
  releaseAfter<E>(error: E, release: () => Promise<void> = () => this.release()): Promise<E> {
    const session = this.#holder ? ` of session ${this.#holder.namespace}` : '';
    return afterFailure(error, `release the lock${session}`, release, this.#log);
  }

  /** Releases the lock at once (not pinned any more), whatever holds it. */
  async drop(): Promise<void> {
    this.#pinned = false;
    await this.release();
  }

  /** Releases the manager's write lock, if held; a pin stays (the lock is taken again). */
  async release(): Promise<void> {
    const manager = this.#holder;
    this.#holder = undefined;
    if (manager?.lockState === 'write') await manager.releaseWriteLock();
  }
}
