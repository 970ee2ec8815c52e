/**
 * The memory backend: namespaces live in a {@link MemoryStore} inside this process.
 * Values are kept encoded, so instances never share mutable objects.
 * @module
 */
import { checkTtl, describe } from '../options.js';
import { NamespaceManager } from './namespace-manager.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  type ExpiringOptions,
  NAMESPACE_MANAGER_OPTIONS,
  type NamespaceManagerOptions,
} from './namespace-options.js';

let nextStoreId = 0;

/** How many namespaces each write looks at for expiry, so a full pass takes half as many writes as there are. */
const PRUNE_STEP = 2;

/** A namespace's entries, with when they expire (ms since the epoch). */
class ExpiringEntries extends Map<string, string> {
  expiresAt = Infinity;
}

/**
 * Where {@link MemoryNamespaceManager} keeps namespaces. One default store per thread: worker
 * threads and cluster workers do not share it.
 * Namespaces written with a `ttl` are dropped once it has passed: at once for readers, and
 * from memory by the writes that follow (each write looks at a few namespaces in turn).
 */
export class MemoryStore {
  /** Distinguishes stores in lock keys. */
  readonly id = nextStoreId++;
  /** Namespace → its encoded entries. */
  readonly namespaces = new Map<string, Map<string, string>>();
  #pruning: Iterator<[string, Map<string, string>]> | undefined;

  /** The entries of `namespace`, or `undefined` when it is not stored (or has expired: it is dropped). */
  get(namespace: string): Map<string, string> | undefined {
    const entries = this.namespaces.get(namespace);
    const expiresAt = (entries as Partial<ExpiringEntries> | undefined)?.expiresAt;
    if (expiresAt !== undefined && expiresAt !== Infinity && expiresAt <= Date.now()) {
      this.namespaces.delete(namespace);
      return undefined;
    }
    return entries;
  }

  /** Stores `entries` as `namespace` (none: drops it), to expire `ttl` ms from now. */
  set(namespace: string, entries: Map<string, string>, ttl = Infinity): void {
    if (entries.size === 0) {
      this.namespaces.delete(namespace);
      return;
    }
    const now = Date.now();
    const expiring = entries instanceof ExpiringEntries ? entries : new ExpiringEntries(entries);
    expiring.expiresAt = now + ttl;
    this.namespaces.set(namespace, expiring);
    this.#pruneSome(now);
  }

  /** Drops `namespace`. */
  delete(namespace: string): void {
    this.namespaces.delete(namespace);
  }

  #pruneSome(now: number): void {
    for (let looked = 0; looked < PRUNE_STEP; looked++) {
      this.#pruning ??= this.namespaces.entries();
      let next = this.#pruning.next();
      if (next.done) {
        this.#pruning = this.namespaces.entries();
        next = this.#pruning.next();
        if (next.done) return;
      }
      const [namespace, entries] = next.value;
      if (entries instanceof ExpiringEntries && entries.expiresAt <= now) this.namespaces.delete(namespace);
    }
  }
}

/** The store used when no `store` option is given. */
export const defaultMemoryStore = new MemoryStore();

/** Options of {@link MemoryNamespaceManager}. */
export interface MemoryNamespaceManagerOptions extends NamespaceManagerOptions, ExpiringOptions {
  /**
   * Where namespaces live; give a separate store to isolate tests or tenants.
   * @default defaultMemoryStore
   */
  store?: MemoryStore | undefined;
}

/**
 * Keeps namespaces in process memory: fast and exclusive within one process, invisible to
 * others. For one-process apps, tests and caches. Give a `ttl` (a Session with a `timeout`
 * does) or abandoned namespaces stay in memory until the process ends.
 */
export class MemoryNamespaceManager extends NamespaceManager {
  static override readonly optionNames: readonly string[] = [...NAMESPACE_MANAGER_OPTIONS, 'store', 'ttl'];
  readonly #store: MemoryStore;
  readonly #ttl: number;

  constructor(namespace: string, options: MemoryNamespaceManagerOptions = {}) {
    super(namespace, options);
    this.#store = options.store ?? defaultMemoryStore;
    if (!(this.#store instanceof MemoryStore))
      throw new TypeError(`store must be a MemoryStore, received ${describe(options.store)}`);
    this.#ttl = checkTtl(options.ttl);
  }

  protected override get lockKey(): string {
    return `memory:${this.#store.id}:${this.namespace}`;
  }

  protected override async readCommitted(): Promise<EncodedEntries> {
    return this.#store.get(this.namespace) ?? new Map();
  }

  protected override async tryLockStorage(): Promise<boolean> {
    return true;
  }

  protected override async unlockStorage(): Promise<void> {}

  protected override async writeCommitted(_changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    this.#store.set(this.namespace, new ExpiringEntries(entries), this.#ttl);
  }

  protected override async removeCommitted(): Promise<void> {
    this.#store.delete(this.namespace);
  }

  /** Changes the stored map in place: readers copy it under the read lock, which this caller's write lock excludes. */
  protected override async applyAtomically(changes: EncodedChanges, requireKey: string | undefined) {
    const current = this.#store.get(this.namespace) ?? new Map<string, string>();
    if (requireKey !== undefined && !current.has(requireKey)) return 'missing' as const;
    for (const [key, raw] of changes) {
      if (raw === undefined) current.delete(key);
      else current.set(key, raw);
    }
    this.#store.set(this.namespace, current, this.#ttl);
    return 'applied' as const;
  }
}
