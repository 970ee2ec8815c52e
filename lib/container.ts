/**
 * Myghty's data cache on the namespace managers: a {@link Container} holds values with their
 * creation times in one namespace; a per-key creation lock (a namespace of its own, so it
 * never blocks readers) makes exactly one caller — across processes and, on redis, machines —
 * run `createfunc` when a value is missing or expired. Callers with no value wait for it;
 * callers with a stale value get the stale value while it is being recreated (the "dogpile" lock).
 * @module
 */
import { createHash } from 'node:crypto';
import { LockCompromisedError, SessionCorruptError, UndecodableValueError } from './errors.js';
import type { NamespaceManager } from './namespace/namespace-manager.js';
import type { NamespaceManagerOptions } from './namespace/namespace-options.js';
import { type NamespaceManagerClass, namespaceManagerClass } from './namespace/registry.js';
import { checkKey, MAX_KEY_BYTES } from './namespace/view.js';
import { checkFunction, checkMilliseconds, checkString, describe } from './options.js';
import { encodeValue, jsonSerializer } from './serializer.js';

/** Options of a {@link Container}: its backend, its default expiry, and what the backend needs. */
export interface ContainerOptions extends NamespaceManagerOptions {
  /**
   * The backend: 'memory', 'file', 'dbm', 'redis' or a registered name.
   * @default 'dbm' when `dataDir` is given, else 'memory'
   */
  type?: string | undefined;
  /** A NamespaceManager class to use instead of `type`. @default the class registered for `type` */
  namespaceClass?: NamespaceManagerClass | undefined;
  /** Seconds after which a value expires unless `get`/`set` say otherwise. @default none: values never expire */
  expiretime?: number | undefined;
  [backendOption: string]: unknown;
}

/** Options of {@link Container.get}. */
export interface GetOptions<T> {
  /** Creates the value when it is missing or expired. @default none: a missing or expired value is `undefined` */
  createfunc?: (() => T | Promise<T>) | undefined;
  /** Seconds the value stays fresh. @default the container's `expiretime` */
  expiretime?: number | undefined;
}

interface Stored {
  value: unknown;
  /** When it was stored (epoch ms). */
  at: number;
  /** Seconds it stays fresh, if it expires. */
  expires?: number;
}

/** A named cache region on one backend. */
export class Container {
  /** The container's name (its namespace). */
  readonly name: string;
  readonly #backend: NamespaceManagerClass;
  readonly #options: NamespaceManagerOptions & Record<string, unknown>;
  readonly #expiretime: number | undefined;

  constructor(name: string, options: ContainerOptions = {}) {
    this.name = checkString('name', name) as string;
    const { type, namespaceClass, expiretime, ...storage } = options;
    this.#expiretime = checkSeconds('expiretime', expiretime);
    if (namespaceClass !== undefined && typeof namespaceClass !== 'function') {
      throw new TypeError(`namespaceClass must be a NamespaceManager class, received ${describe(namespaceClass)}`);
    }
    this.#backend = namespaceClass ?? namespaceManagerClass(type ?? (storage.dataDir === undefined ? 'memory' : 'dbm'));
    this.#options = storage;
    new this.#backend(name, storage);
  }

  /**
   * The value of `key`. When it is missing or expired and `createfunc` is given, exactly one
   * caller creates it: if there is no value at all, the others wait for it; if there is an
   * expired one, they get it at once while it is being recreated. An error thrown by
   * `createfunc` propagates; the previous value stays. A key that is not a well-formed string
   * of at most 1024 bytes (UTF-8) rejects with TypeError before `createfunc` runs, as in `set`
   * and `has`.
   */
  get<T>(key: string, options: GetOptions<T> & { createfunc: () => T | Promise<T> }): Promise<T>;
  get<T>(key: string, options?: GetOptions<T>): Promise<T | undefined>;
  async get<T>(key: string, options: GetOptions<T> = {}): Promise<T | undefined> {
    checkKey(key);
    const createfunc = checkFunction<() => T | Promise<T>>('createfunc', options.createfunc);
    const expiretime = checkSeconds('expiretime', options.expiretime) ?? this.#expiretime;
    const current = await this.#read(key).catch((error: unknown) => {
      if (createfunc && isRecreatable(error)) return undefined;
      throw error;
    });
    if (current && isFresh(current)) return current.value as T;
    if (!createfunc) return undefined;
    const creation = this.#manager(creationLockName(this.name, key));
    if (current) {
      if (!(await creation.acquireWriteLock({ wait: false }))) return current.value as T;
    } else {
      await creation.acquireWriteLock();
    }
    try {
      const latest = await this.#recreatingCorrupt(() => this.#read(key));
      if (latest && isFresh(latest)) return latest.value as T;
      const value = await createfunc();
      await this.#write(key, value, expiretime);
      return value;
    } finally {
      await this.#releaseCreationLock(creation, key);
    }
  }

  /** Stores `value` under `key`, fresh for `expiretime` seconds (default: the container's). */
  async set(key: string, value: unknown, options: { expiretime?: number | undefined } = {}): Promise<void> {
    checkKey(key);
    await this.#write(key, value, checkSeconds('expiretime', options.expiretime) ?? this.#expiretime);
  }

  /** Whether `key` holds a value that has not expired. */
  async has(key: string): Promise<boolean> {
    checkKey(key);
    const current = await this.#read(key);
    return current !== undefined && isFresh(current);
  }

  /** Removes `key`, or with no key the whole container. */
  async clear(key?: string): Promise<void> {
    const data = this.#manager(this.name);
    if (key === undefined) await data.remove();
    else await data.withWriteLock(() => data.delete(key));
  }

  /** A handle on one key, with its own `createfunc` and `expiretime` (Beaker's `Value`). */
  value<T>(key: string, options: GetOptions<T> = {}): Value<T> {
    return new Value<T>(this, key, options);
  }

  #manager(namespace: string): NamespaceManager {
    return new this.#backend(namespace, this.#options);
  }

  /**
   * Releases the creation lock of `key`. One taken over while this process was blocked (past
   * `lockStale`) is only logged: what was created is stored all the same.
   */
  async #releaseCreationLock(creation: NamespaceManager, key: string): Promise<void> {
    try {
      await creation.releaseWriteLock();
    } catch (error) {
      if (!(error instanceof LockCompromisedError)) throw error;
      this.#options.log?.(
        `the creation lock of ${JSON.stringify(key)} in ${this.name} was taken over: ${error.message}`,
      );
    }
  }

  /** The stored entry, or undefined. Throws {@link SessionCorruptError} when the container does not decode; never changes it. */
  async #read(key: string): Promise<Stored | undefined> {
    const data = this.#manager(this.name);
    return asStored(await data.withReadLock(() => data.get(key)));
  }

  async #write(key: string, value: unknown, expiretime: number | undefined): Promise<void> {
    const stored: Stored = { value, at: Date.now(), ...(expiretime === undefined ? {} : { expires: expiretime }) };
    await this.#recreatingCorrupt(() => {
      const data = this.#manager(this.name);
      return data.withWriteLock(() => {
        data.set(key, stored);
        deleteExpired(data, key);
      });
    });
  }

  /**
   * Runs `action`, a step of a caller that will write; if the container is corrupt (not an
   * encryptKey mismatch, which propagates), discards the corrupt part and runs it again.
   */
  async #recreatingCorrupt<R>(action: () => Promise<R>): Promise<R> {
    try {
      return await action();
    } catch (error) {
      if (!isRecreatable(error)) throw error;
      await this.#discardCorrupt(error);
      return action();
    }
  }

  /** Deletes the value that does not decode, under the write lock; the whole storage only when none of it is readable. */
  async #discardCorrupt(error: SessionCorruptError): Promise<void> {
    const data = this.#manager(this.name);
    this.#options.log?.(`recreating corrupt data of container ${this.name}: ${error.message}`);
    if (error instanceof UndecodableValueError) await data.applyChanges(new Map([[error.key, undefined]]));
    else await data.remove();
  }
}

/** One key of a container with its own creation function and expiry. */
export class Value<T> {
  readonly #container: Container;
  readonly #key: string;
  readonly #options: GetOptions<T>;

  constructor(container: Container, key: string, options: GetOptions<T> = {}) {
    this.#container = container;
    this.#key = key;
    this.#options = options;
  }

  /** The value, created by `createfunc` when missing or expired (see {@link Container.get}). */
  get(): Promise<T | undefined> {
    return this.#container.get(this.#key, this.#options);
  }

  /** Stores a value. */
  set(value: T): Promise<void> {
    return this.#container.set(
      this.#key,
      value,
      this.#options.expiretime === undefined ? {} : { expiretime: this.#options.expiretime },
    );
  }

  /** Whether a fresh value is stored. */
  has(): Promise<boolean> {
    return this.#container.has(this.#key);
  }

  /** Removes the value. */
  clear(): Promise<void> {
    return this.#container.clear(this.#key);
  }
}

/** Corrupt data a cache may recreate: not a value encrypted with another key (or none), which is a configuration error. */
function isRecreatable(error: unknown): error is SessionCorruptError {
  return error instanceof SessionCorruptError && !(error instanceof UndecodableValueError && error.keyMismatch);
}

/** Deletes the values other than `written`'s that have expired from the view of `data`, open under its write lock. */
function deleteExpired(data: NamespaceManager, written: string): void {
  for (const key of data.keys()) {
    const stored = key === written ? undefined : asStored(data.get(key));
    if (stored && !isFresh(stored)) data.delete(key);
  }
}

function isFresh(stored: Stored): boolean {
  return stored.expires === undefined || Date.now() - stored.at < stored.expires * 1000;
}

function asStored(raw: unknown): Stored | undefined {
  if (!raw || typeof raw !== 'object' || !('at' in raw) || typeof raw.at !== 'number') return undefined;
  return raw as Stored;
}

/** The namespace whose write lock is the creation lock of `key`; JSON keeps names and keys apart. */
function creationLockName(container: string, key: string): string {
  return JSON.stringify(['sessionlock creation lock', container, key]);
}

function checkSeconds(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : checkMilliseconds(name, value, 0);
}

/** A container in this process's memory. */
export class MemoryContainer extends Container {
  constructor(name: string, options: Omit<ContainerOptions, 'type'> = {}) {
    super(name, { ...options, type: 'memory' });
  }
}

/** A container in a JSON file under `dataDir`. */
export class FileContainer extends Container {
  constructor(name: string, options: Omit<ContainerOptions, 'type'> & { dataDir: string }) {
    super(name, { ...options, type: 'file' });
  }
}

/** A container in an LMDB file under `dataDir`. */
export class DBMContainer extends Container {
  constructor(name: string, options: Omit<ContainerOptions, 'type'> & { dataDir: string }) {
    super(name, { ...options, type: 'dbm' });
  }
}

/** A container in Redis, shared by every machine that uses the same server. */
export class RedisContainer extends Container {
  constructor(name: string, options: Omit<ContainerOptions, 'type'> = {}) {
    super(name, { ...options, type: 'redis' });
  }
}

/**
 * A cache region for applications: a container with a default expiry, and `memoize` to
 * cache an expensive function per argument list — computed once across every process.
 *
 * ```ts
 * const prices = new CacheRegion('prices', { type: 'dbm', dataDir: './cache', expiretime: 300 });
 * const priceOf = prices.memoize(async function price(sku: string) { return fetchPrice(sku); });
 * await priceOf('A-100');   // one worker computes it; the others wait, then share it
 * ```
 */
export class CacheRegion extends Container {
  /**
   * `fn`, cached in this region under a key made from its name and its arguments
   * (`<name>:<the arguments encoded by jsonSerializer>`: JSON for plain values, dates tagged),
   * or by `key` when given. Arguments that jsonSerializer refuses (functions, `undefined`,
   * class instances, …) reject with SerializationError before `fn` runs. The name (`name`, else
   * `fn.name`) is what tells the region's functions apart, in every process: functions
   * memoized under one name share their results. A function without a name (an arrow
   * function passed inline) needs `name` or `key`, else TypeError. `fn` is called with the
   * memoized function's `this`.
   */
  memoize<A extends unknown[], R, This = unknown>(
    fn: (this: This, ...args: A) => R | Promise<R>,
    options: {
      name?: string | undefined;
      key?: ((...args: A) => string) | undefined;
      expiretime?: number | undefined;
    } = {},
  ): (this: This, ...args: A) => Promise<R> {
    if (typeof fn !== 'function') throw new TypeError(`fn must be a function, received ${describe(fn)}`);
    const name = checkString('name', options.name ?? fn.name, { nonEmpty: false }) as string;
    if (!options.key && !name) {
      throw new TypeError('memoize() of a function without a name needs a name or key option, to tell it apart');
    }
    const keyOf: (...args: A) => string = checkFunction('key', options.key) ?? argumentKey(name);
    const expiry = options.expiretime === undefined ? {} : { expiretime: options.expiretime };
    const cached = async (self: This, args: A): Promise<R> =>
      (await this.get(keyOf(...args), { createfunc: () => fn.apply(self, args), ...expiry })) as R;
    return function memoized(this: This, ...args: A): Promise<R> {
      return cached(this, args);
    };
  }
}

/**
 * `<name>:<the arguments encoded by jsonSerializer>`: distinct arguments never share a key;
 * plain JSON ones keep their JSON. Past the key limit, `<name>:#<sha256 hex of the encoding>`.
 */
function argumentKey(name: string): (...args: unknown[]) => string {
  return (...args) => {
    const encoded = encodeValue(jsonSerializer, 'arguments', args);
    const key = `${name}:${encoded}`;
    if (Buffer.byteLength(key) <= MAX_KEY_BYTES) return key;
    return `${name}:#${createHash('sha256').update(encoded).digest('hex')}`;
  };
}
