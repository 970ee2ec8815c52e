/**
 * A session's dictionaries (`data` and its named namespaces) and the encoded form they had
 * when last loaded or saved (the baseline), which tells what a request changed: the keys
 * whose encoding differs are what a save writes.
 * @module
 */
import type { Serializer } from './serializer.js';
import {
  ACCESSED,
  applyChange,
  CREATED,
  checkNamespaceName,
  type EncodedState,
  encodeSession,
  type SessionDictionaries,
  type StoredSession,
  setOwn,
} from './session-record.js';

/** A change to apply: the new encoded value, or `undefined` to delete. */
export type Changes = Map<string, { value: unknown; raw: string } | undefined>;

/** Where the dictionaries stood at {@link SessionData.checkpoint}, to roll back to. */
export interface Checkpoint {
  state: EncodedState;
  baseline: ReadonlyMap<string, string>;
}

export class SessionData {
  readonly #serializer: Serializer;
  /** The root dictionary, `session.data`. */
  data: Record<string, unknown> = {};
  #namespaces = new Map<string, Record<string, unknown>>();
  #baseline = new Map<string, string>();

  constructor(serializer: Serializer) {
    this.#serializer = serializer;
  }

  /** The dictionary of namespace `name`, created empty when missing; {@link SerializationError} for a name that cannot be stored. */
  namespace(name: string): Record<string, unknown> {
    checkNamespaceName(name);
    const dictionary = this.#namespaces.get(name) ?? {};
    this.#namespaces.set(name, dictionary);
    return dictionary;
  }

  /** Every stored key the dictionaries hold, encoded; {@link SerializationError} for a value that cannot be stored. */
  encode(): EncodedState {
    return encodeSession({ data: this.data, namespaces: this.#namespaces }, this.#serializer);
  }

  /** What `state` changes from the baseline. */
  changes(state: EncodedState): Changes {
    const changes: Changes = new Map();
    for (const [key, entry] of state) if (this.#baseline.get(key) !== entry.raw) changes.set(key, entry);
    for (const key of this.#baseline.keys()) if (!state.has(key)) changes.set(key, undefined);
    return changes;
  }

  /** Makes `state` what is stored now. */
  saved(state: EncodedState): void {
    this.#baseline = new Map();
    for (const [key, { raw }] of state) this.#baseline.set(key, raw);
  }

  /** Nothing is stored any more: every key the dictionaries hold counts as changed. */
  unsaved(): void {
    this.#baseline = new Map();
  }

  /** Takes a stored session's contents, and makes them the baseline. */
  loaded(stored: StoredSession): void {
    this.#adopt(stored);
    this.#baseline = new Map();
    for (const [key, raw] of stored.encoded) if (key !== CREATED && key !== ACCESSED) this.#baseline.set(key, raw);
  }

  /** Empties the dictionaries, for a new session. */
  cleared(): void {
    this.#adopt({ data: {}, namespaces: new Map() });
    this.#baseline = new Map();
  }

  /** Applies `changes` over the dictionaries (unsaved changes kept over data reloaded under a lock). */
  reapply(changes: Changes): void {
    const dictionaries = { data: this.data, namespaces: this.#namespaces };
    for (const [key, change] of changes) applyChange(dictionaries, key, change?.value);
  }

  /** Where the dictionaries stand now. */
  checkpoint(): Checkpoint {
    return { state: this.encode(), baseline: this.#baseline };
  }

  /** Back to `checkpoint`, or to the baseline when a save came in between. */
  rollback(checkpoint: Checkpoint): void {
    if (this.#baseline === checkpoint.baseline) this.#restore(checkpoint.state);
    else this.revert();
  }

  /** Back to the baseline. */
  revert(): void {
    const raws = new Map<string, { raw: string }>();
    for (const [key, raw] of this.#baseline) raws.set(key, { raw });
    this.#restore(raws);
  }

  /** Makes the dictionaries hold `state` again, refilling the objects the application holds. */
  #restore(state: ReadonlyMap<string, { raw: string }>): void {
    const dictionaries: SessionDictionaries = { data: {}, namespaces: new Map() };
    for (const [key, { raw }] of state) applyChange(dictionaries, key, this.#serializer.parse(raw));
    this.#adopt(dictionaries);
  }

  /** Takes `dictionaries`' contents into the current `data` and namespace objects (emptying namespaces they lack). */
  #adopt({ data, namespaces }: SessionDictionaries): void {
    this.data = replaceContents(this.data, data);
    for (const [name, current] of this.#namespaces) {
      namespaces.set(name, replaceContents(current, namespaces.get(name) ?? {}));
    }
    this.#namespaces = namespaces;
  }
}

/** Whether `value` is a plain object (its prototype `Object.prototype` or `null`), as `session.data` must be. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** Makes `target` hold exactly `source`'s entries, so references to it stay valid. */
function replaceContents<T extends object>(target: T, source: object): T {
  const own = target as Record<string, unknown>;
  for (const key of Object.keys(own)) delete own[key];
  for (const [key, value] of Object.entries(source)) setOwn(own, key, value);
  return target;
}
