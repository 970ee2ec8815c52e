/**
 * The memory backend: namespaces live in a {@link MemoryStore} inside this process.
 * Values are kept encoded, so instances never share mutable objects.
 * @module
 */
import { describe } from '../options.js';
import { NamespaceManager } from './namespace-manager.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  NAMESPACE_MANAGER_OPTIONS,
  type NamespaceManagerOptions,
} from './namespace-options.js';

let nextStoreId = 0;

/** Where {@link MemoryNamespaceManager} keeps namespaces. One default store per process. */
export class MemoryStore {
  /** Distinguishes stores in lock keys. */
  readonly id = nextStoreId++;
  /** Namespace → its encoded entries. */
  readonly namespaces = new Map<string, Map<string, string>>();
}

/** The store used when no `store` option is given. */
export const defaultMemoryStore = new MemoryStore();

/** Options of {@link MemoryNamespaceManager}. */
export interface MemoryNamespaceManagerOptions extends NamespaceManagerOptions {
  /**
   * Where namespaces live; give a separate store to isolate tests or tenants.
   * @default defaultMemoryStore
   */
  store?: MemoryStore | undefined;
}

/**
 * Keeps namespaces in process memory: fast and exclusive within one process, invisible to
 * others. For one-process apps, tests and caches.
 */
export class MemoryNamespaceManager extends NamespaceManager {
  static override readonly optionNames: readonly string[] = [...NAMESPACE_MANAGER_OPTIONS, 'store'];
  readonly #store: MemoryStore;

  constructor(namespace: string, options: MemoryNamespaceManagerOptions = {}) {
    super(namespace, options);
    this.#store = options.store ?? defaultMemoryStore;
    if (!(this.#store instanceof MemoryStore))
      throw new TypeError(`store must be a MemoryStore, received ${describe(options.store)}`);
  }

  protected override get lockKey(): string {
    return `memory:${this.#store.id}:${this.namespace}`;
  }

  protected override async readCommitted(): Promise<EncodedEntries> {
    return this.#store.namespaces.get(this.namespace) ?? new Map();
  }

  protected override async tryLockStorage(): Promise<boolean> {
    return true;
  }

  protected override async unlockStorage(): Promise<void> {}

  protected override async writeCommitted(_changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    this.#keep(new Map(entries));
  }

  protected override async removeCommitted(): Promise<void> {
    this.#store.namespaces.delete(this.namespace);
  }

  /** Changes the stored map in place: readers copy it under the read lock, which this caller's write lock excludes. */
  protected override async applyAtomically(changes: EncodedChanges, requireKey: string | undefined) {
    const current = this.#store.namespaces.get(this.namespace) ?? new Map<string, string>();
    if (requireKey !== undefined && !current.has(requireKey)) return 'missing' as const;
    for (const [key, raw] of changes) {
      if (raw === undefined) current.delete(key);
      else current.set(key, raw);
    }
    this.#keep(current);
    return 'applied' as const;
  }

  #keep(entries: Map<string, string>): void {
    if (entries.size === 0) this.#store.namespaces.delete(this.namespace);
    else this.#store.namespaces.set(this.namespace, entries);
  }
}
