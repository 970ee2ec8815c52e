/**
 * Error classes. Every error sessionlock throws on purpose extends {@link SessionlockError}
 * and carries a stable `code`; bad options throw `TypeError` instead.
 * @module
 */

import { shortenSessionIds } from './session-id.js';

/**
 * Base class of every sessionlock error. Its message shows a generated session id by its
 * first 8 characters (the whole id is in properties such as `namespace`): messages reach logs
 * and error pages.
 */
export class SessionlockError extends Error {
  /** A stable, machine-readable identifier such as `ERR_LOCK_TIMEOUT`. */
  readonly code: string;

  constructor(message: string, code: string, options?: ErrorOptions) {
    super(shortenSessionIds(message), options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A lock could not be taken before its timeout. */
export class LockTimeoutError extends SessionlockError {
  declare readonly code: 'ERR_LOCK_TIMEOUT';
  /** The namespace whose lock was awaited (not enumerable, so loggers that copy an error's properties leave it out). */
  declare readonly namespace: string;
  /** The wait bound in milliseconds. */
  readonly timeout: number;
  /**
   * 503 Service Unavailable, the status Express's, Fastify's and Koa's default error handling
   * answer it with (they read `statusCode`), as the node:http adapter does: the session is busy, try again.
   */
  readonly statusCode = 503;

  constructor(namespace: string, timeout: number, mode: 'read' | 'write') {
    super(
      `Timed out after ${timeout} ms waiting for the ${mode} lock of namespace ${quote(namespace)}`,
      'ERR_LOCK_TIMEOUT',
    );
    hide(this, 'namespace', namespace);
    this.timeout = timeout;
  }
}

/**
 * A held lock was lost: its lease ran out (the process was too slow to renew it, for
 * example because its event loop was blocked) or another holder took it over. Nothing
 * was written; the other holder's data stands.
 */
export class LockCompromisedError extends SessionlockError {
  declare readonly code: 'ERR_LOCK_COMPROMISED';
  /** The namespace whose lock was lost (not enumerable). */
  declare readonly namespace: string;

  constructor(namespace: string, reason: string, options?: ErrorOptions) {
    super(`The write lock of namespace ${quote(namespace)} was lost: ${reason}`, 'ERR_LOCK_COMPROMISED', options);
    hide(this, 'namespace', namespace);
  }
}

/** A lock operation that does not fit the current state: releasing what isn't held, writing without the write lock. */
export class LockStateError extends SessionlockError {
  declare readonly code: 'ERR_LOCK_STATE';
  constructor(message: string) {
    super(message, 'ERR_LOCK_STATE');
  }
}

/** Stored data that cannot be decoded. */
export class SessionCorruptError extends SessionlockError {
  declare readonly code: 'ERR_SESSION_CORRUPT';
  /** The session id or namespace whose data is corrupt (not enumerable). */
  declare readonly id: string;

  constructor(id: string, detail: string, options?: ErrorOptions) {
    super(`Stored data of ${quote(id)} is corrupt: ${detail}`, 'ERR_SESSION_CORRUPT', options);
    hide(this, 'id', id);
  }
}

/** Why a stored value does not decode: {@link UndecodableValueError.why}. */
export type Undecodable = 'unknown key' | 'plain under a key' | 'damaged';

/**
 * A stored value that does not decode, naming its key: encrypted with an `encryptKey` this
 * process was not given (or with none given), plain where a key is given, or damaged.
 */
export class UndecodableValueError extends SessionCorruptError {
  /**
   * The stored key whose value does not decode, as stored: a Session's `data.cart` is
   * `=cart`, its `namespace(shop).cart` is `:shop=cart` (the message names it as the
   * application wrote it).
   */
  readonly key: string;
  /** Why it does not decode. */
  readonly why: Undecodable;

  constructor(id: string, key: string, detail: string, why: Undecodable, options?: ErrorOptions) {
    super(id, detail, options);
    this.key = key;
    this.why = why;
  }

  /** The value is encrypted with a key this process was not given: the data is intact, the configuration is not. */
  get unknownKey(): boolean {
    return this.why === 'unknown key';
  }

  /** {@link unknownKey}, or a plain value where a key is given: a configuration error either way. */
  get keyMismatch(): boolean {
    return this.why !== 'damaged';
  }
}

/** A value that the serializer cannot represent faithfully (a function, a symbol, a cycle, a class instance, …). */
export class SerializationError extends SessionlockError {
  declare readonly code: 'ERR_SERIALIZATION';
  /** Where in the value the problem is, e.g. `cart[2].total`. */
  readonly path: string;

  constructor(path: string, reason: string, options?: ErrorOptions) {
    super(`Cannot store ${path || 'the value'}: ${reason}`, 'ERR_SERIALIZATION', options);
    this.path = path;
  }
}

/** A Session method or property that needs loaded data was used before `load()`. */
export class SessionNotLoadedError extends SessionlockError {
  declare readonly code: 'ERR_SESSION_NOT_LOADED';
  /** `member` names a method, or with `kind` `'property'` a getter or setter. */
  constructor(member: string, kind: 'method' | 'property' = 'method') {
    super(
      `Session.${member}${kind === 'method' ? '()' : ''} needs the session to be loaded first: call load() or use Session.open()`,
      'ERR_SESSION_NOT_LOADED',
    );
  }
}

/** The storage could not be read or written (an unwritable directory, a full disk, an unreachable server). */
export class StorageError extends SessionlockError {
  declare readonly code: 'ERR_STORAGE';
  /** The file, directory or server address involved (not enumerable). */
  declare readonly location: string;
  /**
   * 503 Service Unavailable, the status Express's, Fastify's and Koa's default error handling
   * answer it with (they read `statusCode`), as the node:http adapter does: the storage is unavailable.
   */
  readonly statusCode = 503;

  constructor(location: string, action: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`Cannot ${action} ${location}${reason}`, 'ERR_STORAGE', options);
    hide(this, 'location', location);
  }
}

/**
 * Sets a property that may hold a whole session id as not enumerable: structured loggers
 * (pino, Fastify's default) and `util.inspect` write an error's enumerable properties.
 */
function hide(error: Error, name: string, value: string): void {
  Object.defineProperty(error, name, { value, enumerable: false, writable: false, configurable: true });
}

function quote(name: string): string {
  const shown = name.length > 80 ? `${name.slice(0, 77)}...` : name;
  return JSON.stringify(shown);
}
