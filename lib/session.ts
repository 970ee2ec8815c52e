/**
 * The Session: Myghty's session on top of any NamespaceManager. It loads immediately and
 * unlocks, saves only the keys a request changed (merged into the latest stored state), can
 * be locked for a read-modify-write, times out, and signs its ids.
 * @module
 */
import {
  LockCompromisedError,
  LockStateError,
  SessionCorruptError,
  SessionNotLoadedError,
  UndecodableValueError,
} from './errors.js';
import type { NamespaceManager } from './namespace/namespace-manager.js';
import { checkString, describe } from './options.js';
import { encodeValue } from './serializer.js';
import { type IdCandidate, SessionCookie } from './session-cookie.js';
import { type Changes, isPlainObject, SessionData } from './session-data.js';
import { generateSessionId } from './session-id.js';
import { SessionLock } from './session-lock.js';
import {
  type SessionConfig,
  type SessionLoadOptions,
  type SessionLockOptions,
  type SessionOptions,
  type SessionRequest,
  sessionConfig,
} from './session-options.js';
import {
  ACCESSED,
  applyUnder,
  CREATED,
  type EncodedState,
  readLocked,
  readSession,
  releasing,
  releasingAfter,
  type StoredSession,
} from './session-record.js';
import { isStoredNow, recordAccess, resealRecordingAccess } from './session-touch.js';

type Outcome = 'loaded' | 'absent' | 'invalidated';

/**
 * A web session.
 *
 * ```ts
 * const session = await Session.open(req, { dataDir: './sessions', key: 'sid', timeout: 1800 });
 * session.data.cart = items;
 * await session.save();
 * if (session.cookieHeader) res.setHeader('Set-Cookie', session.cookieHeader);
 * ```
 *
 * `load()` reads the stored data under a shared lock and releases it at once, so many
 * requests of one browser proceed in parallel. `save()` writes only the keys this request
 * changed into the latest stored state, so concurrent requests that change different keys
 * both survive. For a read-modify-write of one key, hold the lock: `withLock(fn)`.
 */
// biome-ignore lint/suspicious/noExplicitAny: session data is the application's to type
export class Session<Data extends object = Record<string, any>> {
  readonly #config: SessionConfig;
  readonly #cookie: SessionCookie;
  #id = '';
  #manager: NamespaceManager | undefined;
  #loaded = false;
  #stored = false;
  #isNew = true;
  #wasInvalidated = false;
  #created = new Date();
  #accessed = this.#created;
  readonly #state: SessionData;
  readonly #lock = new SessionLock(
    (options) => this.#takeLock(options),
    (line) => this.#log(line),
  );
  /** The {@link load} under way, if any. */
  #loading: Promise<void> | undefined;
  /** Why the session was given up while its request still ran ({@link abandon}); it then writes nothing. */
  #abandoned: string | undefined;

  /** A session for `request` (may be undefined with `useCookies: false`). Call {@link load} before using it. */
  constructor(request: SessionRequest | undefined | null, options: SessionOptions = {}) {
    this.#config = sessionConfig(options);
    this.#state = new SessionData(this.#config.serializer);
    this.#cookie = new SessionCookie(this.#config, request);
  }

  /** Constructs and loads a session. */
  // biome-ignore lint/suspicious/noExplicitAny: session data is the application's to type
  static async open<Data extends object = Record<string, any>>(
    request: SessionRequest | undefined | null,
    options: SessionOptions = {},
  ): Promise<Session<Data>> {
    const session = new Session<Data>(request, options);
    await session.load();
    return session;
  }

  /** The session id. It changes with {@link invalidate} and {@link regenerate}. */
  get id(): string {
    return this.#need('id', 'property').#id;
  }

  /** True when no stored session was found (or the stored one was invalidated) and a new one started. */
  get isNew(): boolean {
    return this.#isNew;
  }

  /** True when a stored session was invalidated on load (timed out, or corrupt with `invalidateCorrupt`), or by {@link invalidate}. */
  get wasInvalidated(): boolean {
    return this.#wasInvalidated;
  }

  /** When the session was created. */
  get created(): Date {
    return new Date(this.#created);
  }

  /** When the session was last accessed before this request (to `accessResolution`). */
  get accessed(): Date {
    return new Date(this.#accessed);
  }

  /** The cookie name. */
  get key(): string {
    return this.#config.key;
  }

  /** The timeout in seconds, if any. */
  get timeout(): number | undefined {
    return this.#config.timeout === undefined ? undefined : this.#config.timeout / 1000;
  }

  /**
   * The session's dictionary. Change it freely, nested values included; {@link save} stores
   * what changed. Assigning it takes only a plain object (a `TypeError` otherwise).
   */
  get data(): Data {
    return this.#need('data', 'property').#state.data as Data;
  }

  set data(data: Data) {
    this.#need('data', 'property');
    if (!isPlainObject(data)) {
      throw new TypeError(`data must be a plain object, received ${describe(data)}`);
    }
    this.#state.data = data as Record<string, unknown>;
  }

  /** Whether the data differs from what is stored (a new session: whether it holds anything). */
  get modified(): boolean {
    if (!this.#loaded) return false;
    let state: EncodedState;
    try {
      state = this.#state.encode();
    } catch {
      return true;
    }
    return this.#differs(state, this.#state.changes(state));
  }

  /** Whether this session holds its lock ({@link lock}). */
  get locked(): boolean {
    return this.#lock.locked;
  }

  /**
   * The Set-Cookie header value to send, or `undefined` when the browser's cookie is right
   * already. Defined when a stored session's id is new to the browser (a new session after
   * its first save, after {@link regenerate} or {@link invalidate}), when a rotated secret
   * re-signs it, on every response of a stored session when `cookieExpires` is a number of
   * seconds or `false` (so the cookie expires that long after the last use), and (an expired
   * cookie) after {@link invalidate} without a save.
   */
  get cookieHeader(): string | undefined {
    return this.#loaded ? this.#cookie.header(this.#id, this.#stored) : undefined;
  }

  /**
   * Whether the session is stored, as far as this Session knows (saved or loaded, not removed since).
   * @internal
   */
  get stored(): boolean {
    return this.#stored;
  }

  /**
   * {@link cookieHeader}, for a response: a rolling cookie the browser has already is renewed
   * only if a read, which does not wait for a request holding the session's lock, finds the
   * session still stored (another request may have logged out or moved the session to a new
   * id meanwhile; its cookie must not come back), unless this Session holds that lock. A
   * renewal skipped is harmless: the browser keeps the cookie it has.
   * @internal
   */
  async responseCookie(): Promise<string | undefined> {
    const header = this.cookieHeader;
    if (header === undefined || this.#lock.locked || !this.#stored || !this.#cookie.renews(this.#id)) return header;
    return (await isStoredNow(this.#managerFor(this.#id))) ? header : undefined;
  }

  /**
   * Loads the session: the id from `options.id` or the request's cookie, if it is well formed,
   * correctly signed and stored; otherwise a new session. A stored session idle longer than
   * `timeout` is removed and a new one starts (`wasInvalidated`). Throws
   * {@link SessionCorruptError} for corrupt data unless `invalidateCorrupt`.
   *
   * Called again, it reloads the session's current id (unsaved changes are dropped): a
   * session saved since is read back, one never saved starts empty under the same id, and one
   * that another request removed meanwhile starts over with a new id, as {@link lock} does.
   */
  async load(options: SessionLoadOptions = {}): Promise<this> {
    if (this.#loading) throw new LockStateError('load() while another load() of this session is under way');
    if (this.#lock.locked || this.#lock.taking) {
      throw new LockStateError('load() while the session is locked: lock() loaded it already');
    }
    this.#loading = this.#load(options);
    try {
      await this.#loading;
    } finally {
      this.#loading = undefined;
    }
    return this;
  }

  async #load(options: SessionLoadOptions): Promise<void> {
    const lock = options.lock === true ? {} : options.lock || undefined;
    const reloading = this.#loaded;
    const wasStored = this.#stored;
    const candidates = reloading ? this.#current() : this.#cookie.candidates();
    this.#wasInvalidated = false;
    let invalidated = false;
    for (const candidate of candidates) {
      const outcome = await this.#loadStored(candidate.id, lock);
      if (outcome === 'loaded') {
        this.#cookie.loadedFrom(candidate);
        return;
      }
      if (outcome === 'invalidated') invalidated = true;
    }
    if (reloading && wasStored && !invalidated) {
      this.#log(`session ${this.#id} was removed by another request before load(); starting a new one`);
      await this.#startOver();
    } else if (!invalidated) {
      this.#startNew(reloading ? this.#id : this.#config.strict ? undefined : candidates[0]?.id);
    }
    if (lock) await this.#lock.pin(lock);
  }

  /** Waits for a load or a taking of the lock under way on this Session, however it ends. */
  async #settled(): Promise<void> {
    await this.#loading?.catch(() => {});
    await this.#lock.settled();
  }

  /**
   * Stores what changed since the load (or the last save), merged key by key into the latest
   * stored state; writes nothing when nothing changed. Throws {@link SerializationError}
   * before writing anything when a value cannot be stored. Does not resurrect a session that
   * another request removed meanwhile. Returns a Promise: a callback (express-session's
   * `save(cb)`) is a `TypeError`, thrown at once.
   */
  save(): Promise<void> {
    // biome-ignore lint/complexity/noArguments: the signature takes none; JavaScript callers may pass a callback
    refuseCallback('save', arguments);
    return this.#save();
  }

  async #save(): Promise<void> {
    this.#need('save');
    if (this.lockPending) await this.#settled();
    this.#refuseIfAbandoned('save');
    const state = this.#state.encode();
    const changes = this.#state.changes(state);
    if (this.#stored && changes.size === 0) return;
    await this.#write(state, changes);
  }

  /**
   * Saves the session if it is {@link modified} (a new session only if it holds anything), as
   * the adapters do when a request ends; resolves whether it wrote. One encoding of the data
   * instead of the two that `if (session.modified) await session.save()` costs.
   */
  async saveIfModified(): Promise<boolean> {
    this.#need('saveIfModified');
    if (this.lockPending) await this.#settled();
    const state = this.#state.encode();
    const changes = this.#state.changes(state);
    if (!this.#differs(state, changes)) return false;
    await this.#write(state, changes);
    return true;
  }

  async #write(state: EncodedState, changes: Changes): Promise<void> {
    this.#refuseIfAbandoned('save');
    const manager = this.#managerFor(this.#id);
    const wasStored = this.#stored;
    if (!wasStored) {
      changes.set(CREATED, this.#encodeTime(CREATED, this.#created));
      changes.set(ACCESSED, this.#encodeTime(ACCESSED, this.#accessed));
    }
    const requireKey = wasStored ? CREATED : undefined;
    const applied = this.#lock.locked
      ? await manager.withWriteLock(() => applyUnder(manager, changes, requireKey))
      : await manager.applyEncoded(changes, { requireKey });
    if (!applied) {
      this.#log(`session ${this.#id} was removed by another request; not recreating it, starting a new one`);
      await this.#startOver();
      return;
    }
    this.#state.saved(state);
    this.#stored = true;
    this.#cookie.saved();
  }

  /** Removes the stored data. The session stays valid (same id); the next save writes it anew. */
  async delete(): Promise<void> {
    this.#need('delete');
    if (this.lockPending) await this.#settled();
    this.#refuseIfAbandoned('delete');
    if (this.#manager) await this.#manager.remove();
    this.#stored = false;
    this.#state.unsaved();
  }

  /**
   * Removes the stored data and starts a new, empty session with a new id (`isNew` and
   * `wasInvalidated`). A lock taken by {@link lock} stays held, on the new id, until `unlock()`.
   */
  async invalidate(): Promise<void> {
    this.#need('invalidate');
    if (this.lockPending) await this.#settled();
    this.#refuseIfAbandoned('invalidate');
    const pinned = this.#lock.locked && this.#lock.pinned;
    if (this.#manager) await this.#manager.remove();
    await this.#startOver();
    if (pinned) await this.#lock.pin({});
  }

  /**
   * Moves the session to a new id, keeping its data, and removes the old record so the old
   * id no longer loads anything. Call it when a user logs in (session fixation defence).
   * A stored session is moved under its lock, reloaded there: what other requests saved
   * meanwhile moves too, with this request's changes on top. One that another request
   * removed meanwhile (a logout) is not brought back: a new, empty session starts, as
   * {@link save} does. Returns a Promise: a callback (express-session's `regenerate(cb)`,
   * which passport's `req.login()` makes) is a `TypeError`, thrown at once.
   */
  regenerate(): Promise<void> {
    // biome-ignore lint/complexity/noArguments: the signature takes none; JavaScript callers may pass a callback
    refuseCallback('regenerate', arguments);
    return this.#regenerate();
  }

  async #regenerate(): Promise<void> {
    this.#need('regenerate');
    if (this.lockPending) await this.#settled();
    this.#refuseIfAbandoned('regenerate');
    const wasLocked = this.#lock.locked;
    const wasStored = this.#stored;
    if (wasStored) await this.#lock.acquire({});
    const removed = wasStored && !this.#stored;
    try {
      if (!removed) await this.#moveTo(generateSessionId());
    } catch (error) {
      throw wasLocked ? error : await this.#lock.releaseAfter(error);
    }
    if (!wasLocked) await this.#lock.release();
    else if (!removed) await this.#lock.acquire({});
  }

  /** Writes the session to `id` and removes the record it had, under the lock held on it. */
  async #moveTo(id: string): Promise<void> {
    const state = this.#state.encode();
    const manager = this.#config.createManager(id);
    await manager.withWriteLock(() => {
      manager.set(CREATED, this.#created.getTime());
      manager.set(ACCESSED, Date.now());
      for (const [key, { value, raw }] of state) manager.setEncoded(key, value, raw);
    });
    if (this.#stored) await this.#manager?.remove();
    await this.#lock.release();
    this.#id = id;
    this.#manager = manager;
    this.#stored = true;
    this.#state.saved(state);
  }

  /**
   * Takes the session's exclusive lock and reloads the data under it; held until
   * {@link unlock}. Other loads of the session wait meanwhile, then see what was saved.
   * Unsaved changes made before are kept on top of the reloaded data. Calls made while one is
   * under way share it (one lock, freed by one `unlock()`); `save()` and `unlock()` called
   * meanwhile wait for it, and `load()` throws {@link LockStateError}.
   */
  async lock(options: SessionLockOptions = {}): Promise<void> {
    if (this.#loading) await this.#settled();
    this.#need('lock');
    await this.#lock.pin(options);
  }

  async #takeLock(options: SessionLockOptions): Promise<void> {
    this.#refuseIfAbandoned('lock');
    const manager = this.#managerFor(this.#id);
    await manager.acquireWriteLock(options.timeout === undefined ? {} : { timeout: options.timeout });
    if (this.#abandoned !== undefined || manager !== this.#manager) {
      await manager.releaseWriteLock();
      this.#refuseIfAbandoned('lock');
      return this.#takeLock(options);
    }
    this.#lock.held(manager);
    let pending: Changes;
    try {
      pending = this.#state.changes(this.#state.encode());
      const stored = readSession(manager);
      if (stored.created !== undefined) {
        this.#adoptStored(this.#id, manager, stored);
      } else if (this.#stored) {
        this.#log(`session ${this.#id} was removed by another request before lock(); starting a new one`);
        await this.#startOver();
        return this.#takeLock(options);
      }
    } catch (error) {
      throw await this.#lock.releaseAfter(error);
    }
    this.#state.reapply(pending);
  }

  /**
   * Releases the lock taken by {@link lock}, or, inside {@link withLock}, once its function
   * has ended. Does not save.
   */
  async unlock(): Promise<void> {
    if (this.#loading) await this.#settled();
    await this.#lock.unpin();
  }

  /**
   * Locks, reloads, runs `fn`, saves if it changed anything, and unlocks — always, also when
   * `fn` or the save throws (what `fn` changed since it started, or since it last saved, is
   * then undone, so calling `withLock` again applies it once).
   * Inside a lock held already (by {@link lock}, or an adapter's `lock` option) it runs and
   * saves under that lock, and leaves it held. Overlapping calls on one Session share its lock,
   * each under it to its end (the last to end releases it); they share the session's data too,
   * so run a read-modify-write of one key in one call at a time.
   */
  withLock<T>(fn: (session: this) => T | Promise<T>, options: SessionLockOptions = {}): Promise<T> {
    if (this.#loading) return this.#settled().then(() => this.withLock(fn, options));
    return this.#lock.run(options, async () => {
      const checkpoint = this.#state.checkpoint();
      try {
        const result = await fn(this);
        await this.saveIfModified();
        return result;
      } catch (error) {
        this.#state.rollback(checkpoint);
        throw error;
      }
    });
  }

  /**
   * Discards unsaved changes: the data returns to what was loaded or last saved. The `data`
   * and {@link namespace} objects stay the same objects, refilled.
   */
  revert(): void {
    this.#need('revert');
    this.#state.revert();
  }

  /**
   * Gives the session up while its request still runs (an adapter whose client went away):
   * releases its lock, and every later save, lock or removal throws
   * {@link LockCompromisedError} instead of writing without the lock.
   * @internal
   */
  async abandon(reason: string): Promise<void> {
    this.#abandoned ??= reason;
    await this.#lock.drop();
  }

  /**
   * Whether a load or a lock of this session is waiting for the lock right now.
   * @internal
   */
  get lockPending(): boolean {
    return this.#loading !== undefined || this.#lock.taking;
  }

  /**
   * Whether {@link abandon} gave the session up.
   * @internal
   */
  get abandoned(): boolean {
    return this.#abandoned !== undefined;
  }

  /**
   * An isolated dictionary inside the session, stored with it (zope.session's package data):
   * `session.namespace('products.foo').color = 'red'`. A name that cannot be stored (not
   * well-formed Unicode, or too long) throws {@link SerializationError}.
   */
  // biome-ignore lint/suspicious/noExplicitAny: namespace data is the application's to type
  namespace<T extends object = Record<string, any>>(name: string): T {
    this.#need('namespace');
    checkString('name', name);
    return this.#state.namespace(name) as T;
  }

  #refuseIfAbandoned(method: string): void {
    if (this.#abandoned !== undefined) {
      throw new LockCompromisedError(this.#id, `${this.#abandoned}; ${method}() writes nothing`);
    }
  }

  #need(member: string, kind?: 'property'): this {
    if (!this.#loaded) throw new SessionNotLoadedError(member, kind);
    return this;
  }

  #log(line: string): void {
    this.#config.log?.(line);
  }

  /** What a reload loads: the current id, if it is stored. */
  #current(): IdCandidate[] {
    return this.#stored ? [this.#cookie.current(this.#id)] : [];
  }

  async #loadStored(id: string, lock: SessionLockOptions | undefined): Promise<Outcome> {
    const manager = this.#config.createManager(id);
    let stored = await this.#readStored(manager, lock);
    if (typeof stored === 'string') return stored;
    let now = Date.now();
    let idle = this.#idleFor(stored, now);
    if (!lock && idle !== undefined) {
      // Read under a lock released since: another request may have used the session meanwhile.
      stored = await this.#readStored(manager, {});
      if (typeof stored === 'string') return stored;
      now = Date.now();
      idle = this.#idleFor(stored, now);
      if (idle === undefined) await releasing(manager);
    }
    if (idle !== undefined) return this.#invalidateOnLoad(manager, `it was idle for ${Math.round(idle / 1000)} s`);
    const lastAccess = lastAccessOf(stored);
    this.#adoptStored(id, manager, stored);
    this.#accessed = new Date(lastAccess);
    const due = now - lastAccess >= this.#config.accessResolution || lastAccess - now > this.#aheadAllowed();
    await this.#afterLoad(manager, stored, lock !== undefined, due ? now : undefined);
    return 'loaded';
  }

  /**
   * Reads the stored session, under the write lock (held on return) with `lock`, else under
   * the read lock (released on return); or the outcome when it is absent or corrupt.
   */
  async #readStored(manager: NamespaceManager, lock: SessionLockOptions | undefined): Promise<StoredSession | Outcome> {
    const id = manager.namespace;
    let stored: StoredSession;
    try {
      stored = lock
        ? await readLocked(manager, lock, this.#config.log)
        : await manager.withReadLock(() => readSession(manager));
    } catch (error) {
      if (!(error instanceof SessionCorruptError) || !this.#config.invalidateCorrupt) throw error;
      if (error instanceof UndecodableValueError && error.unknownKey) return this.#passOver(id, error);
      return this.#invalidateOnLoad(manager, `its data is corrupt (${error.message})`);
    }
    if (stored.created !== undefined) return stored;
    if (stored.encoded.size > 0) {
      const error = new SessionCorruptError(id, 'it has data but no creation time');
      if (!this.#config.invalidateCorrupt) throw await releasingAfter(manager, error, this.#config.log);
      return this.#invalidateOnLoad(manager, error.message);
    }
    this.#log(`rejected session id ${id}: it is not in storage`);
    await releasing(manager);
    return 'absent';
  }

  /**
   * How far ahead of this clock a stored access time (another server's, running fast) may be
   * before a load writes over it: left, it comes due only that much later, and with more than
   * half the timeout a ttl derived from it could end the session while in use. Small skews
   * between servers stay below it, so they do not overwrite each other's time on every load.
   */
  #aheadAllowed(): number {
    return Math.max(this.#config.accessResolution, (this.#config.timeout ?? 0) / 2);
  }

  /** Milliseconds the stored session has been idle when more than `timeout`, else `undefined`. */
  #idleFor(stored: StoredSession, now: number): number | undefined {
    const idle = now - lastAccessOf(stored);
    return this.#config.timeout !== undefined && idle > this.#config.timeout ? idle : undefined;
  }

  /**
   * Keeps the lock a locked load took; writes the access time (`accessed`, when due) and, with
   * it, the values to encrypt again with the first encryptKey (so processes that disagree on
   * which key is first, during a rotation, write no more often than the access time).
   */
  async #afterLoad(
    manager: NamespaceManager,
    stored: StoredSession,
    locked: boolean,
    accessed: number | undefined,
  ): Promise<void> {
    if (locked) {
      if (this.#abandoned !== undefined) {
        await releasing(manager);
        this.#refuseIfAbandoned('load');
      }
      this.#lock.held(manager, true);
      if (accessed === undefined) return;
      manager.set(ACCESSED, accessed);
      if (stored.sealedWithOlderKey) manager.reseal();
    } else if (accessed !== undefined) {
      if (stored.sealedWithOlderKey) await resealRecordingAccess(manager, accessed, this.#config.log);
      else await recordAccess(manager, this.#encodeTime(ACCESSED, new Date(accessed)), this.#config.log);
    }
  }

  /**
   * A stored session encrypted with a key this process was not given is left as it is (the
   * configuration is wrong, not the data, and a correctly configured process reads it); with
   * `invalidateCorrupt`, this request starts a new session instead.
   */
  #passOver(id: string, error: UndecodableValueError): Outcome {
    this.#log(`passed over session ${id}, left in storage: ${error.message}`);
    this.#startNew();
    this.#wasInvalidated = true;
    return 'invalidated';
  }

  async #invalidateOnLoad(manager: NamespaceManager, reason: string): Promise<Outcome> {
    this.#log(`invalidated session ${manager.namespace}: ${reason}`);
    try {
      await manager.remove();
    } catch (error) {
      throw await releasingAfter(manager, error, this.#config.log);
    }
    await releasing(manager);
    this.#startNew();
    this.#wasInvalidated = true;
    return 'invalidated';
  }

  /** After the stored session was removed: unlocks, starts a new one, and clears the browser's cookie. */
  async #startOver(): Promise<void> {
    await this.#lock.drop();
    this.#cookie.detach(true);
    this.#startNew();
    this.#wasInvalidated = true;
  }

  #startNew(id = generateSessionId()): void {
    this.#id = id;
    this.#manager = undefined;
    this.#loaded = true;
    this.#stored = false;
    this.#isNew = true;
    this.#created = new Date();
    this.#accessed = this.#created;
    this.#state.cleared();
    this.#cookie.detach(false);
  }

  #adoptStored(id: string, manager: NamespaceManager, stored: StoredSession): void {
    this.#id = id;
    this.#manager = manager;
    this.#loaded = true;
    this.#stored = true;
    this.#isNew = false;
    this.#created = new Date(stored.created as number);
    this.#state.loaded(stored);
  }

  #managerFor(id: string): NamespaceManager {
    this.#manager ??= this.#config.createManager(id);
    return this.#manager;
  }

  #encodeTime(key: string, time: Date): { value: number; raw: string } {
    return { value: time.getTime(), raw: encodeValue(this.#config.serializer, key, time.getTime()) };
  }

  /** Whether `state` (with its `changes` from the baseline) is worth storing: a new session only if it holds anything. */
  #differs(state: EncodedState, changes: Changes): boolean {
    return (this.#stored ? changes : state).size > 0;
  }
}

/** When a stored session was last accessed: its recorded access, else its creation. */
function lastAccessOf(stored: StoredSession): number {
  return stored.accessed ?? (stored.created as number);
}

/**
 * Throws a TypeError when a method that returns a Promise was given arguments: an
 * express-session style callback would never be called, and the request would hang.
 */
function refuseCallback(method: string, args: IArguments): void {
  if (args.length === 0) return;
  const given = typeof args[0] === 'function' ? 'a callback' : describe(args[0]);
  throw new TypeError(`${method}() takes no arguments and returns a Promise (await it), received ${given}`);
}
