/**
 * Session options and their validation. Options are checked once per options object
 * (cached), so passing the same object on every request costs nothing after the first.
 * @module
 */
import { type CookieAttributes, isCookieName } from './cookie.js';
import { cookieSettings } from './cookie-options.js';
import type { MemoryStore } from './namespace/memory.js';
import type { NamespaceManager } from './namespace/namespace-manager.js';
import type { ExpiringOptions, NamespaceManagerOptions } from './namespace/namespace-options.js';
import type { RedisNamespaceManagerOptions } from './namespace/redis.js';
import { type NamespaceManagerClass, namespaceManagerClass } from './namespace/registry.js';
import {
  checkBoolean,
  checkFunction,
  checkMilliseconds,
  checkOptionsObject,
  checkString,
  describe,
  describeSecret,
  MAX_TTL,
  warnUnknownOptions,
} from './options.js';
import { jsonSerializer, type Serializer } from './serializer.js';
import { IdSigner, shortenSessionIds } from './session-id.js';
import { SESSION_KEY_WORDING } from './session-record.js';

/**
 * Options of a {@link Session}. Myghty's names are given in camelCase (`session_data_dir`
 * → `dataDir`); options a backend needs (`store`, `durable`, `maxOpenFiles`, `client`, `url`,
 * `prefix`, …) are passed on to it.
 */
export interface SessionOptions extends NamespaceManagerOptions, ExpiringOptions {
  /**
   * The session id to load, for sessions carried outside cookies (Myghty `session_id`).
   * Treated like an id from a cookie: one that is not a session id, or not stored (with
   * `strict`), starts a new session, and `log` says why.
   * @default the id in the request's cookie
   */
  id?: string | undefined;
  /**
   * Read the id from the request's Cookie header and offer a Set-Cookie in
   * {@link Session.cookieHeader} (Myghty `session_use_cookies`).
   * @default true
   */
  useCookies?: boolean | undefined;
  /**
   * Corrupt stored data starts a fresh session (with `wasInvalidated`) instead of making
   * `load()` throw {@link SessionCorruptError} (Myghty `session_invalidate_corrupt`).
   * @default false
   */
  invalidateCorrupt?: boolean | undefined;
  /**
   * The storage backend: 'memory', 'file', 'dbm', 'redis' or a registered name (Myghty `session_type`).
   * @default 'dbm' when `dataDir` is given, else 'memory'
   */
  type?: string | undefined;
  /**
   * A NamespaceManager class to use instead of `type` (Myghty `session_namespace_class`).
   * @default the class registered for `type`
   */
  namespaceClass?: NamespaceManagerClass | undefined;
  /**
   * The cookie's name (Myghty `session_key`). A name starting `__Secure-` needs `secure`;
   * one starting `__Host-` also needs `cookiePath` '/' and no `cookieDomain` (browsers drop
   * such cookies otherwise).
   * @default 'sessionlock_id'
   */
  key?: string | undefined;
  /**
   * Seconds of inactivity after which the session is invalidated on load (Myghty `session_timeout`);
   * more than 0 (0 is a TypeError rather than "never": leave it out for that).
   * @default none: sessions never time out
   */
  timeout?: number | undefined;
  /**
   * When the cookie expires (Myghty `session_cookie_expires`): `true`, when the browser
   * closes; a `Date`; a number of seconds (more than 0, rounded up) after the last response
   * of the stored session, which sets the cookie anew each time; or `false`, never, which is
   * the longest a browser keeps a cookie (400 days, RFC 6265bis) renewed likewise. Numbers
   * beyond 400 days count as 400 days.
   * @default true
   */
  cookieExpires?: boolean | Date | number | undefined;
  /**
   * Signs session ids in cookies with HMAC-SHA256 (Myghty `session_secret`). An array
   * rotates secrets: the first signs, any verifies.
   * @default none: ids are not signed
   */
  secret?: string | readonly string[] | undefined;
  /**
   * Receives a debug line for each invalidation, rejected cookie and lock wait (Myghty `session_log_file`).
   * @default none
   */
  log?: ((line: string) => void) | undefined;
  /** The cookie's Path attribute; starts with '/'. @default '/' */
  cookiePath?: string | undefined;
  /** The cookie's Domain attribute: a host name, without port. @default none: a host-only cookie */
  cookieDomain?: string | undefined;
  /** The cookie's Secure attribute: send it over HTTPS only. @default false */
  secure?: boolean | undefined;
  /** The cookie's HttpOnly attribute: hide it from scripts. @default true */
  httpOnly?: boolean | undefined;
  /** The cookie's SameSite attribute ('None' needs `secure`). @default 'Lax' */
  sameSite?: 'Strict' | 'Lax' | 'None' | undefined;
  /** The cookie's Partitioned attribute (CHIPS; needs `secure`). @default false */
  partitioned?: boolean | undefined;
  /**
   * Seconds between writes of the access time: a load writes it only when the stored one
   * is older, so read-only requests cost no write (zope.session's "resolution"). A session
   * then times out between `timeout - accessResolution` and `timeout` seconds after its
   * last use. With a `timeout`, it must be less than it (or 0): a `TypeError` otherwise.
   * @default a tenth of `timeout`, at most 60
   */
  accessResolution?: number | undefined;
  /**
   * Never adopt an id that is not in storage: a client cannot choose its session id.
   * @default true
   */
  strict?: boolean | undefined;
  /** Backend option ('memory'): the MemoryStore to use. @default the process's default store */
  store?: MemoryStore | undefined;
  /** Backend option ('file'): fsync each commit. @default false */
  durable?: boolean | undefined;
  /** Backend option ('dbm'): how many LMDB files stay open. @default 512 */
  maxOpenFiles?: number | undefined;
  /** Backend option ('redis'): an ioredis client (see RedisNamespaceManager). @default a client for `url` */
  client?: RedisNamespaceManagerOptions['client'];
  /** Backend option ('redis'): where Redis is. @default 'redis://127.0.0.1:6379' */
  url?: string | undefined;
  /**
   * Backend option ('redis'): prepended to every key. The one option without `| undefined`:
   * Fastify's `register` options declare `prefix?: string`, and the adapters' options must
   * stay assignable to them under `exactOptionalPropertyTypes`.
   * @default 'sessionlock:'
   */
  prefix?: string;
  /** Backend option ('redis'): milliseconds a command may take. @default 5000 */
  commandTimeout?: number | undefined;
}

/** What a Session needs of a request: its headers (a node:http IncomingMessage fits). */
export interface SessionRequest {
  /** The request's headers; only `cookie` is read (a string, or several Cookie header values, read as one joined by `; `). */
  headers: { cookie?: string | string[] | undefined };
}

/** Options of {@link Session.load}. */
export interface SessionLoadOptions {
  /**
   * Load under the session's exclusive lock and keep it held, as {@link Session.lock} would
   * (PHP-style, for a whole request): one read instead of a load and a reload.
   * @default false
   */
  lock?: boolean | SessionLockOptions | undefined;
}

/** Options of {@link Session.lock}. */
export interface SessionLockOptions {
  /** Milliseconds to wait for the lock before {@link LockTimeoutError}. @default the `lockTimeout` option */
  timeout?: number | undefined;
}

/** Options that configure the Session itself rather than its storage. */
const SESSION_ONLY = new Set<string>([
  'id',
  'useCookies',
  'invalidateCorrupt',
  'type',
  'namespaceClass',
  'key',
  'timeout',
  'cookieExpires',
  'secret',
  'cookiePath',
  'cookieDomain',
  'secure',
  'httpOnly',
  'sameSite',
  'partitioned',
  'accessResolution',
  'strict',
]);

export const DEFAULT_KEY = 'sessionlock_id';

/** Validated, normalised session options. */
export interface SessionConfig {
  readonly id: string | undefined;
  readonly useCookies: boolean;
  readonly invalidateCorrupt: boolean;
  readonly key: string;
  /** Milliseconds, or undefined for no timeout. */
  readonly timeout: number | undefined;
  /** Milliseconds. */
  readonly accessResolution: number;
  readonly strict: boolean;
  readonly signer: IdSigner;
  readonly log: ((line: string) => void) | undefined;
  readonly serializer: Serializer;
  /** Whether every response of a stored session renews the cookie (`cookieExpires` a number of seconds, or `false`). */
  readonly rollingCookie: boolean;
  createManager(id: string): NamespaceManager;
  cookieAttributes(now: number): CookieAttributes;
}

const configs = new WeakMap<object, SessionConfig>();

/** The validated form of `options`; throws a TypeError naming the first bad option. */
export function sessionConfig(options: SessionOptions): SessionConfig {
  checkOptionsObject(options);
  let config = configs.get(options);
  if (!config) {
    config = buildConfig(options);
    configs.set(options, config);
  }
  return config;
}

function buildConfig(options: SessionOptions): SessionConfig {
  const timeout = sessionTimeout(options.timeout);
  const resolution = accessResolution(options.accessResolution, timeout);
  const key = checkString('key', options.key ?? DEFAULT_KEY) as string;
  if (!isCookieName(key)) throw new TypeError(`key must be a valid cookie name, received ${describe(key)}`);
  const id = checkString('id', options.id, { optional: true, nonEmpty: false });
  const Backend = backendClass(options);
  const { optionNames } = Backend as unknown as { optionNames?: readonly string[] };
  if (optionNames) warnUnknownOptions(options, [...SESSION_ONLY, ...optionNames]);
  const log = shortIdLog(checkFunction<(line: string) => void>('log', options.log));
  const storage = storageOptions(options, timeout, resolution, !optionNames || optionNames.includes('ttl'));
  if (log) storage.log = log;
  new Backend('option-check', storage);
  const cookie = cookieSettings(key, options);
  return {
    id,
    useCookies: checkBoolean('useCookies', options.useCookies, true),
    invalidateCorrupt: checkBoolean('invalidateCorrupt', options.invalidateCorrupt, false),
    key,
    timeout,
    accessResolution: resolution,
    strict: checkBoolean('strict', options.strict, true),
    signer: new IdSigner(secrets(options.secret)),
    log,
    serializer: options.serializer ?? jsonSerializer,
    rollingCookie: cookie.rolling,
    createManager: (id) => new Backend(id, storage).withKeyWording(SESSION_KEY_WORDING),
    cookieAttributes: cookie.attributes,
  };
}

/** `log`, given every line with its generated session ids shortened ({@link shortenSessionIds}). */
function shortIdLog(log: ((line: string) => void) | undefined): ((line: string) => void) | undefined {
  return log && ((line) => log(shortenSessionIds(line)));
}

/** The timeout in ms; a `TypeError` unless a finite number of seconds > 0 (0 would end every session at once, not never). */
function sessionTimeout(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new TypeError(
      `timeout must be a finite number of seconds > 0 (leave it out for sessions that never time out), received ${describe(value)}`,
    );
  }
  return value * 1000;
}

function seconds(name: string, value: unknown): number | undefined {
  return value === undefined ? undefined : checkMilliseconds(name, value, 0) * 1000;
}

/** The accessResolution in ms; a `TypeError` unless less than `timeout` (with which no read would keep a session alive). */
function accessResolution(value: unknown, timeout: number | undefined): number {
  const resolution = seconds('accessResolution', value);
  if (resolution === undefined) return defaultResolution(timeout);
  if (timeout !== undefined && resolution > 0 && resolution >= timeout) {
    throw new TypeError(
      `accessResolution must be less than timeout (${timeout / 1000}), received ${resolution / 1000}`,
    );
  }
  return resolution;
}

function defaultResolution(timeout: number | undefined): number {
  return timeout === undefined ? 60_000 : Math.min(60_000, timeout / 10);
}

function backendClass(options: SessionOptions): NamespaceManagerClass {
  if (options.namespaceClass !== undefined) {
    if (typeof options.namespaceClass !== 'function') {
      throw new TypeError(
        `namespaceClass must be a NamespaceManager class, received ${describe(options.namespaceClass)}`,
      );
    }
    return options.namespaceClass;
  }
  const type = options.type ?? (options.dataDir === undefined ? 'memory' : 'dbm');
  return namespaceManagerClass(checkString('type', type) as string);
}

/** What the backend gets: every option that is not the Session's own, plus a data TTL for backends that take one. */
function storageOptions(options: SessionOptions, timeout: number | undefined, resolution: number, takesTtl: boolean) {
  const storage: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) if (!SESSION_ONLY.has(name)) storage[name] = value;
  if (takesTtl && timeout !== undefined && storage.ttl === undefined) {
    storage.ttl = Math.min(timeout + resolution + 60_000, MAX_TTL);
  }
  return storage;
}

function secrets(secret: unknown): string[] {
  if (secret === undefined) return [];
  const list = typeof secret === 'string' ? [secret] : secret;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    !list.every((s) => typeof s === 'string' && s.length > 0 && s.isWellFormed())
  ) {
    throw new TypeError(
      `secret must be a non-empty, well-formed string or array of them, received ${describeSecret(secret)}`,
    );
  }
  return list;
}
