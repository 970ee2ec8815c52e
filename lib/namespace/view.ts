/**
 * The view a lock opens on a namespace: the decoded values with their encodings, and what
 * changed since it was opened (or last committed), so a commit writes only that and a failed
 * commit or a throwing `withWriteLock` can roll back.
 * @module
 */
import { looksSealed, OpenError, type ValueCipher } from '../cipher.js';
import { type Undecodable, UndecodableValueError } from '../errors.js';
import { describe } from '../options.js';
import type { Serializer } from '../serializer.js';

/** The most bytes (UTF-8) a stored key may take. */
export const MAX_KEY_BYTES = 1024;

interface ViewEntry {
  /** The serializer's encoding of `value`. */
  raw: string;
  value: unknown;
  /** The form in storage (sealed with the cipher, else `raw`); unset until committed. */
  stored?: string;
}

/** How a namespace's stored strings become values and back. */
export interface ValueCodec {
  namespace: string;
  serializer: Serializer;
  cipher: ValueCipher | undefined;
  wording?: KeyWording | undefined;
}

/** How the errors of a view name its keys and say where an encryptKey goes, for a user of the manager that knows better. */
export interface KeyWording {
  /** The key as its user knows it (a Session's `=cart` is `data.cart`). */
  name?(key: string): string;
  /** What to do about encrypted values when no encryptKey was given. */
  giveKey?: string;
}

/** The storage form of an encoded value: sealed with the cipher, if any. */
export function sealed(codec: ValueCodec, raw: string, key: string): string {
  return codec.cipher ? codec.cipher.seal(raw, codec.namespace, key) : raw;
}

/** Why `key` cannot name a stored value, or `undefined` when it can: a well-formed string of at most 1 KB. */
export function keyProblem(key: string): 'not well-formed Unicode' | 'too long' | undefined {
  if (!key.isWellFormed()) return 'not well-formed Unicode';
  return Buffer.byteLength(key) > MAX_KEY_BYTES ? 'too long' : undefined;
}

/** Throws a {@link TypeError} unless `key` can name a value (see {@link keyProblem}). */
export function checkKey(key: unknown): asserts key is string {
  const problem = typeof key === 'string' ? keyProblem(key) : 'not a string';
  if (problem === 'too long') {
    throw new TypeError(`key must be at most ${MAX_KEY_BYTES} bytes, received ${Buffer.byteLength(key as string)}`);
  }
  if (problem) throw new TypeError(`key must be a well-formed Unicode string, received ${describe(key)}`);
}

/** Why the stored value of `key` does not decode, in the codec's wording. */
function undecodable({ cipher, wording }: ValueCodec, key: string, why: Undecodable): string {
  const name = wording?.name?.(key) ?? JSON.stringify(key);
  if (why === 'plain under a key') return `the value of ${name} is not encrypted, but an encryptKey is given`;
  if (why === 'damaged') return `the value of ${name} cannot be ${cipher ? 'decrypted and ' : ''}decoded`;
  if (cipher) return `the value of ${name} is encrypted with a key that is not among the encryptKeys given`;
  return `the value of ${name} is encrypted: ${wording?.giveKey ?? 'give the encryptKey it was stored with'}`;
}

/** Opens and decodes the stored `form` of `key` into a view's entry; throws {@link UndecodableValueError}. */
function decode(codec: ValueCodec, key: string, form: string): ViewEntry {
  const { cipher, serializer } = codec;
  let raw = form;
  try {
    if (cipher) raw = cipher.open(form, codec.namespace, key);
  } catch (error) {
    throw undecodableValue(codec, key, openFailure(error, serializer, form), error);
  }
  try {
    return { raw, value: serializer.parse(raw), stored: form };
  } catch (error) {
    throw undecodableValue(codec, key, !cipher && looksSealed(form) ? 'unknown key' : 'damaged', parseFailure(error));
  }
}

/**
 * What a parser's error may tell without the stored text: JSON.parse quotes it ("Unexpected
 * token 'h', "hunter2…" is not valid JSON"), and a cause ends up in logs and error pages.
 */
function parseFailure(error: unknown): Error {
  const position = /position (\d+)/.exec(String((error as Error)?.message))?.[1];
  return new SyntaxError(
    `the serializer could not parse the stored text${position ? ` (at position ${position})` : ''}`,
  );
}

function undecodableValue(codec: ValueCodec, key: string, why: Undecodable, cause: unknown): UndecodableValueError {
  return new UndecodableValueError(codec.namespace, key, undecodable(codec, key, why), why, { cause });
}

function openFailure(error: unknown, serializer: Serializer, form: string): Undecodable {
  const reason = error instanceof OpenError ? error.reason : 'damaged';
  if (reason === 'not sealed') return !looksSealed(form) && parses(serializer, form) ? 'plain under a key' : 'damaged';
  return reason;
}

function parses(serializer: Serializer, text: string): boolean {
  try {
    serializer.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A point to return to with {@link NamespaceView.restore}. */
export interface Savepoint {
  entries: Map<string, ViewEntry>;
  changes: Map<string, string | undefined>;
  /** How many commits the view had made when it was taken. */
  commits: number;
}

export class NamespaceView {
  readonly #codec: ValueCodec;
  #entries: Map<string, ViewEntry>;
  /** Changed keys → their new encoding, or undefined when deleted. */
  #changes = new Map<string, string | undefined>();
  /** The committed entry of each changed key (undefined: it was absent). */
  #originals = new Map<string, ViewEntry | undefined>();
  /** How many times the view was taken as committed. */
  #commits = 0;

  private constructor(codec: ValueCodec, entries: Map<string, ViewEntry>) {
    this.#codec = codec;
    this.#entries = entries;
  }

  /** A view of nothing (a removed namespace). */
  static empty(codec: ValueCodec): NamespaceView {
    return new NamespaceView(codec, new Map());
  }

  /** Decodes committed entries (opening sealed ones); throws {@link UndecodableValueError} naming the key that fails. */
  static open(codec: ValueCodec, stored: ReadonlyMap<string, string>): NamespaceView {
    const entries = new Map<string, ViewEntry>();
    for (const [key, form] of stored) entries.set(key, decode(codec, key, form));
    return new NamespaceView(codec, entries);
  }

  get(key: string): unknown {
    return this.#entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** The serializer's encoding of `key`'s value. */
  encoded(key: string): string | undefined {
    return this.#entries.get(key)?.raw;
  }

  /** Whether values are stored sealed with an older encryptKey than the first. */
  get sealedWithOlderKey(): boolean {
    const cipher = this.#codec.cipher;
    if (!cipher) return false;
    for (const { stored } of this.#entries.values()) {
      if (stored !== undefined && cipher.sealedWithOlderKey(stored)) return true;
    }
    return false;
  }

  /** Marks the values sealed with an older encryptKey as changed, so the commit seals them with the first; returns how many. */
  reseal(): number {
    const cipher = this.#codec.cipher;
    if (!cipher) return 0;
    let count = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.stored === undefined || !cipher.sealedWithOlderKey(entry.stored)) continue;
      this.#remember(key, entry);
      this.#entries.set(key, { raw: entry.raw, value: entry.value });
      this.#changes.set(key, entry.raw);
      count++;
    }
    return count;
  }

  /** Whether anything changed since the view was opened or last committed. */
  get changed(): boolean {
    return this.#changes.size > 0;
  }

  /** Stores `value` (encoded as `raw`); a value encoded as the current one is no change. */
  set(key: string, value: unknown, raw: string): void {
    const current = this.#entries.get(key);
    if (current?.raw === raw) {
      this.#entries.set(key, { ...current, value });
      return;
    }
    this.#remember(key, current);
    this.#entries.set(key, { raw, value });
    this.#track(key, raw);
  }

  /** Deletes `key`; returns whether it was present. */
  delete(key: string): boolean {
    const current = this.#entries.get(key);
    if (!current) return false;
    this.#remember(key, current);
    this.#entries.delete(key);
    this.#track(key, undefined);
    return true;
  }

  /** What a commit writes, in storage form: the changed keys, and every entry after them. */
  toCommit(): { changes: ReadonlyMap<string, string | undefined>; entries: ReadonlyMap<string, string> } {
    const entries = new Map<string, string>();
    for (const [key, entry] of this.#entries) entries.set(key, this.#stored(key, entry));
    const changes = new Map<string, string | undefined>();
    for (const key of this.#changes.keys()) changes.set(key, entries.get(key));
    return { changes, entries };
  }

  /** Takes the current state as committed. */
  committed(): void {
    this.#forgetChanges();
    this.#commits++;
  }

  /** Puts back the last committed state. */
  rollback(): void {
    for (const [key, original] of this.#originals) {
      if (original) this.#entries.set(key, original);
      else this.#entries.delete(key);
    }
    this.#forgetChanges();
  }

  savepoint(): Savepoint {
    return { entries: new Map(this.#entries), changes: new Map(this.#changes), commits: this.#commits };
  }

  /**
   * Returns to `savepoint`; to the last committed state instead when a commit came after it
   * (a nested release), since what is committed cannot be taken back.
   */
  restore(savepoint: Savepoint): void {
    if (savepoint.commits !== this.#commits) {
      this.rollback();
      return;
    }
    this.#entries = savepoint.entries;
    this.#changes = savepoint.changes;
    for (const key of [...this.#originals.keys()]) if (!this.#changes.has(key)) this.#originals.delete(key);
  }

  /** The storage form of an entry: sealed once with the cipher, else its encoding. */
  #stored(key: string, entry: ViewEntry): string {
    entry.stored ??= sealed(this.#codec, entry.raw, key);
    return entry.stored;
  }

  #forgetChanges(): void {
    this.#changes.clear();
    this.#originals.clear();
  }

  #remember(key: string, current: ViewEntry | undefined): void {
    if (!this.#originals.has(key)) this.#originals.set(key, current);
  }

  #track(key: string, raw: string | undefined): void {
    if (this.#originals.get(key)?.raw === raw) this.#changes.delete(key);
    else this.#changes.set(key, raw);
  }
}
