/**
 * How a session lays out its state in its namespace: one stored key per top-level data key
 * and per key of each named namespace, so concurrent saves merge key by key.
 *
 * | stored key            | holds                                  |
 * | --------------------- | -------------------------------------- |
 * | `#created`            | creation time (epoch ms)               |
 * | `#accessed`           | last recorded access (epoch ms)        |
 * | `=<key>`              | `session.data[key]`                    |
 * | `:<name>=<key>`       | `session.namespace(name)[key]` (`%` and `=` of the name percent-encoded) |
 * @module
 */
import { SerializationError, SessionCorruptError } from './errors.js';
import type { NamespaceManager } from './namespace/namespace-manager.js';
import { type KeyWording, keyProblem, MAX_KEY_BYTES } from './namespace/view.js';
import { droppedKey, encodeValue, type Serializer } from './serializer.js';
import type { Changes } from './session-data.js';
import { afterFailure, type LogLine } from './session-lock.js';

export const CREATED = '#created';
export const ACCESSED = '#accessed';

/** A session's dictionaries: the root (`data`) and its named namespaces. */
export interface SessionDictionaries {
  data: Record<string, unknown>;
  namespaces: Map<string, Record<string, unknown>>;
}

/** A session as read from its namespace, with the encoded form of every stored key. */
export interface StoredSession extends SessionDictionaries {
  created: number | undefined;
  accessed: number | undefined;
  encoded: Map<string, string>;
  /** Whether values are encrypted with an older encryptKey than the first (to seal again). */
  sealedWithOlderKey: boolean;
}

/** An encoded state: stored key → value and its encoding. */
export type EncodedState = Map<string, { value: unknown; raw: string }>;

/** The limits of {@link checkNamespaceName} and of data keys, as error messages state them. */
const KEY_LIMITS = `keys of data take at most ${MAX_KEY_BYTES - 1} bytes of UTF-8, a namespace's name and key together ${MAX_KEY_BYTES - 2}, the name URI-encoded`;

/** What a stored key of `session.data` starts with. */
const DATA_PREFIX = '=';

/**
 * `:<name>=` with the name URI-encoded, as every version has stored it: a key spelled another
 * way would be a second copy of the same key, and a save would drop one for the other.
 */
function namespacePrefix(name: string): string {
  return `:${encodeURIComponent(name)}=`;
}

/** Throws {@link SerializationError} naming `namespace(name)` unless keys of that namespace can be stored. */
export function checkNamespaceName(name: string): void {
  const path = `namespace(${name})`;
  if (!name.isWellFormed()) throw new SerializationError(path, 'its name is not well-formed Unicode');
  if (Buffer.byteLength(namespacePrefix(name)) > MAX_KEY_BYTES) {
    throw new SerializationError(path, `its name is too long (${KEY_LIMITS})`);
  }
}

/** Throws {@link SerializationError} naming `path` unless `key` after `prefix` can name a stored value. */
function checkKeyAfter(prefix: string, key: string, path: string): void {
  const problem = keyProblem(`${prefix}${key}`);
  if (problem) throw new SerializationError(path, `its key is ${problem} (${KEY_LIMITS})`);
}

/** How a Session's errors name its stored keys: `data.cart` for `=cart`, `namespace(shop).cart` for `:shop=cart`, and its times. */
export const SESSION_KEY_WORDING: KeyWording = { name: storedKeyName };

function storedKeyName(stored: string): string {
  let key: StoredKey;
  try {
    key = parseKey(stored, '');
  } catch {
    return JSON.stringify(stored);
  }
  if (key.scope === 'data') return `data.${key.key}`;
  if (key.scope === 'namespace') return `namespace(${key.name}).${key.key}`;
  return stored === CREATED ? "the session's creation time" : "the session's access time";
}

type StoredKey = { scope: 'time' } | { scope: 'data'; key: string } | { scope: 'namespace'; name: string; key: string };

function parseKey(stored: string, id: string): StoredKey {
  if (stored === CREATED || stored === ACCESSED) return { scope: 'time' };
  if (stored.startsWith(DATA_PREFIX)) return { scope: 'data', key: stored.slice(DATA_PREFIX.length) };
  const equals = stored.indexOf('=');
  if (stored.startsWith(':') && equals > 0) {
    return { scope: 'namespace', name: decodeName(stored.slice(1, equals), id), key: stored.slice(equals + 1) };
  }
  throw new SessionCorruptError(id, `the stored key ${JSON.stringify(stored)} is not a session key`);
}

/** Sets (or, for `undefined`, deletes) the dictionary entry a stored key stands for. */
export function applyChange(dictionaries: SessionDictionaries, stored: string, value: unknown): void {
  place(dictionaries, parseKey(stored, ''), value);
}

function place(dictionaries: SessionDictionaries, key: StoredKey, value: unknown): void {
  if (key.scope === 'time') return;
  let dictionary = dictionaries.data;
  if (key.scope === 'namespace') {
    dictionary = dictionaries.namespaces.get(key.name) ?? {};
    dictionaries.namespaces.set(key.name, dictionary);
  }
  if (value === undefined) delete dictionary[key.key];
  else setOwn(dictionary, key.key, value);
}

/** `object[key] = value` as an own property, also for `__proto__` (which assignment would take as the prototype). */
export function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
  else object[key] = value;
}

/** Reads the open view of `manager` into dictionaries. Throws SessionCorruptError for keys or times it cannot place. */
export function readSession(manager: NamespaceManager): StoredSession {
  const stored: StoredSession = {
    created: undefined,
    accessed: undefined,
    data: {},
    namespaces: new Map(),
    encoded: new Map(),
    sealedWithOlderKey: manager.sealedWithOlderKey,
  };
  for (const key of manager.keys()) {
    const value = manager.get(key);
    stored.encoded.set(key, manager.getEncoded(key) as string);
    if (key !== CREATED && key !== ACCESSED) {
      place(stored, parseKey(key, manager.namespace), value);
    } else if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new SessionCorruptError(manager.namespace, `${key} is not a time`);
    } else {
      stored[key === CREATED ? 'created' : 'accessed'] = value;
    }
  }
  return stored;
}

/** Encodes every value of the dictionaries (undefined values are absent). Throws SerializationError naming where. */
export function encodeSession({ data, namespaces }: SessionDictionaries, serializer: Serializer): EncodedState {
  const state: EncodedState = new Map();
  const add = (dictionary: Record<string, unknown>, prefix: string, key: string, path: string) => {
    const value = readOwn(dictionary, key, path);
    if (value === undefined) return;
    checkKeyAfter(prefix, key, path);
    state.set(`${prefix}${key}`, { value, raw: encodeValue(serializer, path, value) });
  };
  checkDictionary(data, 'data');
  for (const key of Object.keys(data)) add(data, DATA_PREFIX, key, `data.${key}`);
  for (const [name, dictionary] of namespaces) {
    checkNamespaceName(name);
    checkDictionary(dictionary, `namespace(${name})`);
    for (const key of Object.keys(dictionary)) add(dictionary, namespacePrefix(name), key, `namespace(${name}).${key}`);
  }
  return state;
}

/** Throws {@link SerializationError} naming `path` when `dictionary` has a key a save would drop. */
function checkDictionary(dictionary: object, path: string): void {
  const dropped = droppedKey(dictionary);
  if (dropped)
    throw new SerializationError(dropped.name === undefined ? path : `${path}.${dropped.name}`, dropped.reason);
}

/** `dictionary[key]`; a getter that throws is a {@link SerializationError} naming `path`. */
function readOwn(dictionary: Record<string, unknown>, key: string, path: string): unknown {
  try {
    return dictionary[key];
  } catch (error) {
    throw new SerializationError(path, `its getter threw: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

function decodeName(encoded: string, id: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch (error) {
    throw new SessionCorruptError(id, `the namespace name ${JSON.stringify(encoded)} is malformed`, { cause: error });
  }
}

/** Applies `changes` to a manager holding the write lock, unless `requireKey` is missing; returns whether it did. */
export function applyUnder(manager: NamespaceManager, changes: Changes, requireKey: string | undefined): boolean {
  if (requireKey !== undefined && !manager.has(requireKey)) return false;
  for (const [key, change] of changes) {
    if (change) manager.setEncoded(key, change.value, change.raw);
    else manager.delete(key);
  }
  return true;
}

/** Takes the write lock and reads the session under it; releases the lock if reading fails. */
export async function readLocked(
  manager: NamespaceManager,
  lock: { timeout?: number | undefined },
  log: LogLine,
): Promise<StoredSession> {
  await manager.acquireWriteLock(lock.timeout === undefined ? {} : { timeout: lock.timeout });
  try {
    return readSession(manager);
  } catch (error) {
    throw await releasingAfter(manager, error, log);
  }
}

/** Releases the write lock `manager` holds, if any. */
export async function releasing(manager: NamespaceManager): Promise<void> {
  if (manager.lockState === 'write') await manager.releaseWriteLock();
}

/** {@link releasing} after `error`, which it returns to rethrow; a release that fails too is logged (see {@link afterFailure}). */
export function releasingAfter<E>(manager: NamespaceManager, error: E, log: LogLine): Promise<E> {
  return afterFailure(error, `release the lock of session ${manager.namespace}`, () => releasing(manager), log);
}
