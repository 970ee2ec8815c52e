/**
 * The NamespaceManager protocol: take a lock, which opens a consistent view of one
 * namespace; read and write the view synchronously; release, which commits atomically
 * (write lock) and closes. Backends implement only storage primitives; ordering, nesting,
 * timeouts, change tracking and rollback live here once.
 * @module
 */
import { LockCompromisedError, LockStateError, LockTimeoutError, SessionlockError } from '../errors.js';
import { retryWithBackoff } from '../lock/backoff.js';
import { busyTurn } from '../lock/busy-turn.js';
import { type LockMode, processLocks, type Release } from '../lock/keyed-rw-lock.js';
import { SerialQueue } from '../lock/serial-queue.js';
import { checkBoolean, checkMilliseconds, checkOptionsObject, describe } from '../options.js';
import { encodeValue, type Serializer } from '../serializer.js';
import {
  type AcquireReadLockOptions,
  type AcquireWriteLockOptions,
  type ApplyChangesOptions,
  type EncodedChanges,
  type EncodedEntries,
  HELD_ELSEWHERE,
  type NamespaceLockState,
  type NamespaceManagerOptions,
  resolveNamespaceOptions,
  UNSUPPORTED,
} from './namespace-options.js';
import { checkKey, type KeyWording, NamespaceView, sealed, type ValueCodec } from './view.js';

/**
 * One namespace: a named bag of key/value pairs (one session's data, or one cache region),
 * with read and write locks. Construct a backend: {@link MemoryNamespaceManager},
 * {@link FileNamespaceManager}, {@link DBMNamespaceManager} or {@link RedisNamespaceManager}.
 *
 * To write a backend, extend this class and implement the protected storage primitives
 * (`lockKey`, `readCommitted`, `tryLockStorage`, `unlockStorage`, `writeCommitted`,
 * `removeCommitted`); the locking protocol, nesting, change tracking and rollback are
 * inherited. Register it with {@link registerNamespaceManager}.
 *
 * ```ts
 * const ns = new FileNamespaceManager('abc', { dataDir: './sessions' });
 * await ns.withWriteLock(() => ns.set('visits', ((ns.get('visits') as number) ?? 0) + 1));
 * ```
 *
 * The write lock is exclusive across instances, processes and (redis) machines; read locks
 * are shared and wait for a writer. An instance is one lock holder: re-acquiring the mode
 * already held on it nests (every `releaseWriteLock()` commits what changed, the outermost
 * one also unlocks), so give each concurrent async task its own instance (they are cheap:
 * nothing is touched until a lock is taken).
 */
export abstract class NamespaceManager {
  /**
   * Every option the backend takes. When a class declares it, an option outside it gets a
   * process warning (code `SESSIONLOCK_UNKNOWN_OPTION`, once per name) instead of being
   * ignored silently; a subclass that takes options of its own adds them.
   */
  static readonly optionNames: readonly string[] | undefined = undefined;

  /** The namespace's name, exactly as given. */
  readonly namespace: string;
  /** Milliseconds a lock wait may take by default. */
  readonly lockTimeout: number;
  /** Milliseconds after which an unrenewed lock is taken over. */
  readonly lockStale: number;
  /** Encodes each stored value. */
  readonly serializer: Serializer;
  readonly #log: ((line: string) => void) | undefined;
  readonly #codec: ValueCodec;

  readonly #holds: LockMode[] = [];
  #releaseLocal: Release | undefined;
  #storageLocked = false;
  /** Whether a commit or removal landed since the write lock was taken. */
  #wroteUnderLock = false;
  #view: NamespaceView | undefined;
  readonly #queue = new SerialQueue();
  #lockKey: string | undefined;

  constructor(namespace: string, options: NamespaceManagerOptions = {}) {
    const resolved = resolveNamespaceOptions(namespace, options, (new.target as typeof NamespaceManager).optionNames);
    this.namespace = namespace;
    this.lockTimeout = resolved.lockTimeout;
    this.lockStale = resolved.lockStale;
    this.serializer = resolved.codec.serializer;
    this.#codec = resolved.codec;
    this.#log = resolved.log;
  }

  /**
   * Words its errors about stored values with `wording` (how a Session or the CLI names the keys); returns this.
   * @internal
   */
  withKeyWording(wording: KeyWording): this {
    this.#codec.wording = wording;
    return this;
  }

  /** The lock this instance holds: `'none'`, `'read'` or `'write'` (the outermost one). */
  get lockState(): NamespaceLockState {
    return this.#holds[0] ?? 'none';
  }

  /**
   * Takes a shared lock and opens a view of the last committed state. Waits while a writer
   * holds the lock; with `{ wait: false }` resolves `false` at once instead.
   */
  acquireReadLock(options: AcquireReadLockOptions = {}): Promise<boolean> {
    const wait = waitOption(options);
    return this.#serialized(async () => {
      if (this.#holds.length > 0) {
        this.#holds.push('read');
        return true;
      }
      const deadline = Date.now() + this.lockTimeout;
      const release = await this.#lockLocally('read', deadline, wait);
      if (!release) return this.#notLocked(wait, 'read');
      try {
        const attempt = () => this.#afterTurn(() => this.readCommitted(false));
        const entries = wait ? await this.#whileHeldElsewhere(attempt, deadline) : await attempt();
        if (entries === HELD_ELSEWHERE) {
          release();
          return false;
        }
        if (!entries) throw new LockTimeoutError(this.namespace, this.lockTimeout, 'read');
        this.#view = NamespaceView.open(this.#codec, entries);
      } catch (error) {
        release();
        throw error;
      }
      this.#releaseLocal = release;
      this.#holds.push('read');
      return true;
    });
  }

  /** Releases a read lock taken by {@link acquireReadLock}. */
  releaseReadLock(): Promise<void> {
    return this.#serialized(() => this.#releaseRead());
  }

  async #releaseRead(): Promise<void> {
    if (this.#holds.at(-1) !== 'read') throw this.#misuse('releaseReadLock', 'read');
    this.#holds.pop();
    if (this.#holds.length === 0) await this.#unlockAll();
  }

  /**
   * Takes the exclusive lock and opens a fresh view of the committed state. Resolves `false`
   * only with `{ wait: false }` when the lock is held elsewhere; throws
   * {@link LockTimeoutError} when the wait exceeds its timeout.
   */
  acquireWriteLock(options: AcquireWriteLockOptions = {}): Promise<boolean> {
    const wait = waitOption(options);
    return this.#serialized(async () => {
      if (this.#holds.includes('write')) {
        this.#holds.push('write');
        return true;
      }
      if (this.#holds.length > 0) {
        throw new LockStateError(`Cannot take the write lock of ${this.namespace} while holding its read lock`);
      }
      const timeout = checkMilliseconds('timeout', options.timeout, this.lockTimeout, { infinite: true });
      const locked = await this.#lockForWrite({ deadline: Date.now() + timeout, wait, open: true });
      if (!locked && wait) throw new LockTimeoutError(this.namespace, timeout, 'write');
      return locked;
    });
  }

  /** Commits what changed since the lock was taken (or since the last release), atomically; the outermost release also unlocks. */
  releaseWriteLock(): Promise<void> {
    return this.#serialized(() => this.#releaseWrite());
  }

  async #releaseWrite(): Promise<void> {
    if (this.#holds.at(-1) !== 'write') throw this.#misuse('releaseWriteLock', 'write');
    let failure: unknown;
    try {
      await this.#commit();
    } catch (error) {
      failure = error;
    }
    this.#holds.pop();
    if (failure instanceof LockCompromisedError) this.#holds.length = 0;
    if (this.#holds.length === 0) {
      try {
        await this.#unlockAll();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Releases the hold a `with*Lock` call took at `depth` (its 1-based position among the
   * holds), together with any hold taken inside it and left unreleased, so an unbalanced
   * `fn` cannot leave the lock held.
   */
  #releaseHold(depth: number, mode: LockMode): Promise<void> {
    return this.#serialized(() => {
      if (this.#holds.length > depth) this.#holds.length = depth;
      return mode === 'read' ? this.#releaseRead() : this.#releaseWrite();
    });
  }

  /** The value stored under `key` in the open view, or `undefined`. */
  get(key: string): unknown {
    return this.#readableView('get').get(key);
  }

  /** Whether `key` is present in the open view. */
  has(key: string): boolean {
    return this.#readableView('has').has(key);
  }

  /** The keys present in the open view. */
  keys(): string[] {
    return this.#readableView('keys').keys();
  }

  /**
   * Stores `value` under `key` in the view; it is committed by the next `releaseWriteLock()`.
   * Needs the write lock. Throws {@link SerializationError} at once for a value the
   * serializer cannot represent.
   */
  set(key: string, value: unknown): void {
    this.setEncoded(key, value, encodeValue(this.serializer, key, value));
  }

  /**
   * The encoded form of `key`'s value in the open view.
   * @internal
   */
  getEncoded(key: string): string | undefined {
    return this.#readableView('getEncoded').encoded(key);
  }

  /**
   * {@link set} with the value already encoded by this manager's serializer.
   * @internal
   */
  setEncoded(key: string, value: unknown, raw: string): void {
    this.#writableView('set', key).set(key, value, raw);
  }

  /** Deletes `key` from the view; returns whether it was present. Needs the write lock. */
  delete(key: string): boolean {
    return this.#writableView('delete', key).delete(key);
  }

  /**
   * Whether values in the open view are encrypted with an older `encryptKey` than the first
   * (after a rotation): {@link reseal} would encrypt them again.
   */
  get sealedWithOlderKey(): boolean {
    return this.#readableView('sealedWithOlderKey').sealedWithOlderKey;
  }

  /**
   * Encrypts again with the first `encryptKey` the values the view holds encrypted with an
   * older one, so that one can be retired; written by the next `releaseWriteLock()`. Needs
   * the write lock. Returns how many values it encrypts again.
   */
  reseal(): number {
    return this.#lockedView('reseal').reseal();
  }

  /** Deletes the whole namespace from storage. Takes the write lock unless this instance holds it already. */
  async remove(): Promise<void> {
    await this.removeIf(() => true);
  }

  /**
   * Deletes the whole namespace from storage if `condition()`, called under the write lock,
   * returns true; resolves whether it deleted. Like {@link remove} it takes the write lock
   * (waiting up to `lockTimeout`) unless this instance holds it already, and never reads or
   * decodes the stored values, so a sweeper needs no `encryptKey` and a corrupt namespace can
   * be removed too.
   */
  removeIf(condition: () => boolean | Promise<boolean>): Promise<boolean> {
    return this.#serialized(async () => {
      const held = this.#holds.includes('write');
      if (!held && this.#holds.length > 0) {
        throw new LockStateError(`Cannot remove ${this.namespace} while holding its read lock`);
      }
      if (!held) {
        const locked = await this.#lockForWrite({ deadline: Date.now() + this.lockTimeout, wait: true, open: false });
        if (!locked) throw new LockTimeoutError(this.namespace, this.lockTimeout, 'write');
      }
      try {
        if (!(await condition())) return false;
        await this.removeCommitted();
        this.#wroteUnderLock = true;
        this.#view = NamespaceView.empty(this.#codec);
        return true;
      } finally {
        if (!held) {
          this.#holds.length = 0;
          await this.#unlockAll();
        }
      }
    });
  }

  /** Runs `fn` under the read lock and releases it afterwards, also when `fn` throws. */
  async withReadLock<T>(fn: () => T | Promise<T>): Promise<T> {
    await this.acquireReadLock();
    const depth = this.#holds.length;
    try {
      return await fn();
    } finally {
      await this.#releaseHold(depth, 'read');
    }
  }

  /**
   * Runs `fn` under the write lock and commits what it changed. When `fn` throws, its
   * changes are rolled back, the lock is released, and the error propagates.
   */
  async withWriteLock<T>(fn: () => T | Promise<T>, options: { timeout?: number | undefined } = {}): Promise<T> {
    await this.acquireWriteLock(options.timeout === undefined ? {} : { timeout: options.timeout });
    const depth = this.#holds.length;
    const savepoint = this.#view?.savepoint();
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      if (savepoint) this.#view?.restore(savepoint);
      await this.#releaseHold(depth, 'write').catch(() => {});
      throw error;
    }
    await this.#releaseHold(depth, 'write');
    return result;
  }

  /**
   * Applies `changes` (key → value, or `undefined` to delete) to the latest committed state
   * in one atomic step and resolves `true`; with `requireKey`, writes nothing and resolves
   * `false` when that key is not stored. Like a reader, it waits while a writer holds the
   * lock (with `wait: false` it resolves `false` at once instead), but it holds no lock
   * across awaits itself: backends that can (redis, dbm, memory) do it in a single storage
   * operation, the others under the write lock.
   */
  async applyChanges(changes: ReadonlyMap<string, unknown>, options: ApplyChangesOptions = {}): Promise<boolean> {
    if (!(changes instanceof Map)) throw new TypeError(`changes must be a Map, received ${describe(changes)}`);
    waitOption(options);
    const encoded = new Map<string, { value: unknown; raw: string } | undefined>();
    for (const [key, value] of changes) {
      encoded.set(key, value === undefined ? undefined : { value, raw: encodeValue(this.serializer, key, value) });
    }
    return this.applyEncoded(encoded, options);
  }

  /**
   * {@link applyChanges} with the values already encoded by this manager's serializer.
   * @internal
   */
  applyEncoded(
    changes: ReadonlyMap<string, { value: unknown; raw: string } | undefined>,
    { requireKey, wait = true }: ApplyChangesOptions = {},
  ): Promise<boolean> {
    return this.#serialized(async () => {
      if (this.#holds.length > 0)
        throw new LockStateError(`applyChanges() on ${this.namespace} while holding its lock`);
      for (const key of changes.keys()) checkKey(key);
      const stored = new Map<string, string | undefined>();
      const codec = this.#codec;
      for (const [key, change] of changes) stored.set(key, change && sealed(codec, change.raw, key));
      const deadline = Date.now() + this.lockTimeout;
      const release = await this.#lockLocally('write', deadline, wait || 'readers');
      if (!release) return this.#notLocked(wait);
      let handedOver = false;
      try {
        const attempt = () => this.#afterTurn(() => this.applyAtomically(stored, requireKey));
        const outcome = wait ? await this.#whileHeldElsewhere(attempt, deadline) : await attempt();
        if (outcome === undefined) throw new LockTimeoutError(this.namespace, this.lockTimeout, 'write');
        if (outcome !== UNSUPPORTED) return outcome === 'applied';
        handedOver = true;
        return await this.#applyUnderLock(changes, requireKey, { deadline, wait, local: release });
      } finally {
        if (!handedOver) release();
      }
    });
  }

  /**
   * Applies changes (in storage form) and checks `requireKey` in one atomic storage operation,
   * without the write lock; returns {@link HELD_ELSEWHERE} while a writer elsewhere holds the
   * lock. The in-process write lock is held by the caller. Backends that cannot do this leave
   * the default, and the change is applied under the write lock instead.
   */
  protected async applyAtomically(
    _changes: EncodedChanges,
    _requireKey: string | undefined,
  ): Promise<'applied' | 'missing' | typeof HELD_ELSEWHERE | typeof UNSUPPORTED> {
    return UNSUPPORTED;
  }

  /** Identifies the stored namespace for the in-process lock: equal keys mean the same storage. Read once per instance. */
  protected abstract get lockKey(): string;

  /**
   * Reads the committed entries. With `asOwner` false (a reader), returns
   * {@link HELD_ELSEWHERE} instead when a live writer elsewhere holds the lock, so the
   * reader waits and then sees its commit.
   */
  protected abstract readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE>;

  /** Tries once to take the cross-process write lock. */
  protected abstract tryLockStorage(): Promise<boolean>;

  /** Gives the cross-process write lock back; throws {@link LockCompromisedError} if it had been lost. */
  protected abstract unlockStorage(): Promise<void>;

  /**
   * Writes `changes` atomically while holding the lock; `entries` is the whole namespace
   * after them. Throws {@link LockCompromisedError}, writing nothing, if the lock was lost.
   */
  protected abstract writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void>;

  /** Deletes the namespace from storage while holding the lock. */
  protected abstract removeCommitted(): Promise<void>;

  /** Writes a debug line to the `log` option, if any. */
  protected log(line: string): void {
    this.#log?.(line);
  }

  /** Repeats `attempt`, with backoff, while it reports {@link HELD_ELSEWHERE}; `undefined` once `deadline` passes. */
  async #whileHeldElsewhere<T>(
    attempt: () => Promise<T | typeof HELD_ELSEWHERE>,
    deadline: number,
  ): Promise<T | undefined> {
    const first = await attempt();
    if (first !== HELD_ELSEWHERE) return first;
    return retryWithBackoff(
      async () => {
        const result = await attempt();
        return result === HELD_ELSEWHERE ? undefined : result;
      },
      {
        deadline,
        waitFirst: true,
        onWait: () => this.log(`waiting for the write lock of ${this.namespace} held elsewhere`),
      },
    );
  }

  /** Applies the changes under the write lock, for backends without {@link applyAtomically}; `local` is the in-process write lock, held already. */
  async #applyUnderLock(
    changes: ReadonlyMap<string, { value: unknown; raw: string } | undefined>,
    requireKey: string | undefined,
    { deadline, wait, local }: { deadline: number; wait: boolean; local: Release },
  ): Promise<boolean> {
    const locked = await this.#lockForWrite({ deadline, wait, open: true, local });
    if (!locked) return this.#notLocked(wait);
    const view = this.#view as NamespaceView;
    const applies = requireKey === undefined || view.has(requireKey);
    if (applies) {
      for (const [key, change] of changes) {
        if (change) view.set(key, change.value, change.raw);
        else view.delete(key);
      }
    }
    let failure: unknown;
    try {
      await this.#commit();
    } catch (error) {
      failure = error;
    }
    this.#holds.length = 0;
    try {
      await this.#unlockAll();
    } catch (error) {
      failure ??= error;
    }
    if (failure !== undefined) throw failure;
    return applies;
  }

  /** What a lock operation that did not get the lock gives: `false` without waiting, else the timeout. */
  #notLocked(wait: boolean, mode: LockMode = 'write'): false {
    if (wait) throw new LockTimeoutError(this.namespace, this.lockTimeout, mode);
    return false;
  }

  /** Runs the instance's lock operations one after another, in call order. */
  #serialized<T>(operation: () => Promise<T>): Promise<T> {
    return this.#queue.run(operation);
  }

  #lockLocally(mode: LockMode, deadline: number, wait: boolean | 'readers'): Release | Promise<Release | undefined> {
    this.#lockKey ??= this.lockKey;
    const key = this.#lockKey;
    return processLocks.take(key, mode, {
      deadline,
      wait,
      onWait: () => this.log(`waiting for the ${mode} lock of ${this.namespace} held in this process`),
    });
  }

  /**
   * Runs a storage primitive (synchronous work at heart: a file read, an LMDB open or commit)
   * once the event loop has turned, if lock work has kept it busy (see {@link busyTurn});
   * otherwise at once, in the same synchronous step as the check.
   */
  #afterTurn<T>(primitive: () => Promise<T>): Promise<T> {
    const turn = busyTurn();
    return turn ? turn.then(() => this.#afterTurn(primitive)) : primitive();
  }

  /** Takes the write lock (the in-process one unless `local` is it, held already); `false` when not free and not `wait`. */
  async #lockForWrite({
    deadline,
    wait,
    open,
    local,
  }: {
    deadline: number;
    wait: boolean;
    open: boolean;
    local?: Release;
  }): Promise<boolean> {
    const release = local ?? (await this.#lockLocally('write', deadline, wait));
    if (!release) return false;
    try {
      const locked = wait
        ? await this.#whileHeldElsewhere(async () => (await this.tryLockStorage()) || HELD_ELSEWHERE, deadline)
        : await this.tryLockStorage();
      if (!locked) {
        release();
        return false;
      }
      this.#storageLocked = true;
      this.#releaseLocal = release;
      this.#holds.push('write');
      if (open) {
        const entries = await this.#afterTurn(() => this.readCommitted(true));
        if (entries === HELD_ELSEWHERE)
          throw new LockStateError('readCommitted(true) must not report the lock held elsewhere');
        this.#view = NamespaceView.open(this.#codec, entries);
      }
      return true;
    } catch (error) {
      if (this.#releaseLocal === release) {
        this.#holds.length = 0;
        await this.#unlockAll().catch(() => {});
      } else {
        release();
      }
      throw error;
    }
  }

  /**
   * Unlocks. Once a commit or removal under the lock landed (the backend checked the lock as
   * it wrote), a failure to unlock (the lease found expired, the server unreachable) is logged,
   * not thrown: the operation succeeded, and a caller that retries a failure would apply it
   * twice. A lock that could not be given back expires after `lockStale`.
   */
  async #unlockAll(): Promise<void> {
    const release = this.#releaseLocal;
    const storageLocked = this.#storageLocked;
    const wrote = this.#wroteUnderLock;
    this.#releaseLocal = undefined;
    this.#storageLocked = false;
    this.#wroteUnderLock = false;
    this.#view = undefined;
    try {
      if (storageLocked) await this.unlockStorage();
    } catch (error) {
      if (!(wrote && error instanceof SessionlockError)) throw error;
      this.log(`could not unlock ${this.namespace} after its commit landed: ${error.message}`);
    } finally {
      release?.();
    }
  }

  async #commit(): Promise<void> {
    const view = this.#view;
    if (!view?.changed) return;
    const { changes, entries } = view.toCommit();
    try {
      await this.#afterTurn(() => this.writeCommitted(changes, entries));
    } catch (error) {
      view.rollback();
      throw error;
    }
    this.#wroteUnderLock = true;
    view.committed();
  }

  #readableView(method: string): NamespaceView {
    if (!this.#view) {
      throw new LockStateError(`${method}() needs a view: take acquireReadLock() or acquireWriteLock() first`);
    }
    return this.#view;
  }

  /** The open view, for `method`, which needs the write lock. */
  #lockedView(method: string): NamespaceView {
    if (!this.#holds.includes('write')) {
      throw new LockStateError(`${method}() on ${this.namespace} needs the write lock`);
    }
    return this.#view as NamespaceView;
  }

  /** {@link #lockedView}, for a method that changes `key` (a TypeError unless it can name a value). */
  #writableView(method: string, key: string): NamespaceView {
    const view = this.#lockedView(method);
    checkKey(key);
    return view;
  }

  #misuse(method: string, mode: LockMode): LockStateError {
    const held = this.#holds.at(-1);
    const state = held ? `the innermost lock held is a ${held} lock` : 'no lock is held';
    return new LockStateError(`${method}() on ${this.namespace} without holding its ${mode} lock: ${state}`);
  }
}

/** The `wait` option of a lock operation's `options` (a TypeError for malformed ones). */
function waitOption(options: { wait?: boolean | undefined }): boolean {
  checkOptionsObject(options);
  return checkBoolean('wait', options.wait, true);
}
