/**
 * What a NamespaceManager is given and gives back: its options, the options of its
 * methods, the encoded entries and changes its backends store, and the markers its storage
 * primitives return.
 * @module
 */
import { cipherFor } from '../cipher.js';
import type { LockMode } from '../lock/keyed-rw-lock.js';
import {
  checkFunction,
  checkMilliseconds,
  checkOptionsObject,
  describe,
  MAX_TIMER_DELAY,
  warnUnknownOptions,
} from '../options.js';
import { jsonSerializer, type Serializer } from '../serializer.js';
import type { NamespaceManager } from './namespace-manager.js';
import type { ValueCodec } from './view.js';

/** Options every NamespaceManager understands; backends add their own. */
export interface NamespaceManagerOptions {
  /**
   * Directory that holds the namespaces (file and dbm backends, which require it). Created when missing.
   * @default none
   */
  dataDir?: string | undefined;
  /**
   * How long a lock wait may take, in milliseconds, before it throws {@link LockTimeoutError}.
   * @default 30000
   */
  lockTimeout?: number | undefined;
  /**
   * Milliseconds after which the lock of a holder that stopped renewing it (a killed
   * process) is taken over. A live holder renews its lease well within this time.
   * @default 10000
   */
  lockStale?: number | undefined;
  /**
   * Encodes each stored value.
   * @default jsonSerializer
   */
  serializer?: Serializer | undefined;
  /**
   * Receives a debug line for each lock wait, stale-lock takeover and lost lock.
   * @default none
   */
  log?: ((line: string) => void) | undefined;
  /**
   * Encrypts every stored value with AES-256-GCM (a fresh nonce per write, bound to its
   * namespace and key). An array rotates keys: the first encrypts, any decrypts, and
   * `reseal()` encrypts again with the first. A value that does not decrypt is an
   * `UndecodableValueError` (a {@link SessionCorruptError}) saying whether the key is unknown
   * or the value damaged. Keys are random strings of 16 or more characters (128 bits or more:
   * no work factor is added).
   * @default none: values are stored as the serializer writes them
   */
  encryptKey?: string | readonly string[] | undefined;
}

/** The `ttl` option of the backends that expire stored data themselves (memory, redis). */
export interface ExpiringOptions {
  /**
   * Milliseconds after which stored data expires unless written again: each commit sets it
   * anew, reads do not. Give the session timeout plus a margin, so abandoned sessions
   * disappear without a sweep; a Session with a `timeout` sets it so. At most 2^53 - 1
   * (`Number.MAX_SAFE_INTEGER`).
   * @default Infinity (data never expires)
   */
  ttl?: number | undefined;
}

/** Options of {@link NamespaceManager.applyChanges}. */
export interface ApplyChangesOptions {
  /** Write nothing, and resolve `false`, unless this key is stored. @default none: write in any case */
  requireKey?: string | undefined;
  /** `false`: resolve `false` at once, writing nothing, while a writer holds the lock. @default true */
  wait?: boolean | undefined;
}

/** Options of {@link NamespaceManager.acquireWriteLock}. */
/** Options of {@link NamespaceManager.acquireReadLock}. */
export interface AcquireReadLockOptions {
  /** `false`: return `false` at once instead of waiting when a writer holds the lock. @default true */
  wait?: boolean | undefined;
}

/** Options of {@link NamespaceManager.acquireWriteLock}. */
export interface AcquireWriteLockOptions {
  /** `false`: return `false` at once instead of waiting when the lock is held elsewhere. @default true */
  wait?: boolean | undefined;
  /** Milliseconds to wait before {@link LockTimeoutError}. @default the `lockTimeout` option */
  timeout?: number | undefined;
}

/** The encoded entries of a namespace: key → the serializer's string for its value. */
export type EncodedEntries = ReadonlyMap<string, string>;

/** What a commit applies: key → the new encoded value, or `undefined` to delete the key. */
export type EncodedChanges = ReadonlyMap<string, string | undefined>;

/** Returned by {@link NamespaceManager.readCommitted} when a writer elsewhere holds the lock. */
export const HELD_ELSEWHERE: unique symbol = Symbol('held elsewhere');

/** Returned by {@link NamespaceManager.applyAtomically} of backends that cannot apply changes atomically without the lock. */
export const UNSUPPORTED: unique symbol = Symbol('unsupported');

/** The lock a NamespaceManager instance holds: its outermost mode, or `'none'`. */
export type NamespaceLockState = 'none' | LockMode;

/** The default `lockStale`, in milliseconds. */
export const DEFAULT_LOCK_STALE = 10_000;

const DEFAULT_LOCK_TIMEOUT = 30_000;

/** The options every backend takes ({@link NamespaceManagerOptions}). */
export const NAMESPACE_MANAGER_OPTIONS: readonly string[] = [
  'dataDir',
  'lockTimeout',
  'lockStale',
  'serializer',
  'log',
  'encryptKey',
];

/** A NamespaceManager's options, checked, with their defaults. */
export interface ResolvedNamespaceOptions {
  lockTimeout: number;
  lockStale: number;
  codec: ValueCodec;
  log: ((line: string) => void) | undefined;
}

/**
 * Checks the options of a manager of `namespace` (a {@link TypeError} names the first bad
 * one) and warns of names outside `optionNames`, when the backend declares them.
 */
export function resolveNamespaceOptions(
  namespace: unknown,
  options: NamespaceManagerOptions,
  optionNames: readonly string[] | undefined,
): ResolvedNamespaceOptions {
  if (typeof namespace !== 'string' || !namespace.isWellFormed()) {
    throw new TypeError(`namespace must be a well-formed Unicode string, received ${describe(namespace)}`);
  }
  checkOptionsObject(options);
  if (optionNames) warnUnknownOptions(options, optionNames);
  const lockTimeout = checkMilliseconds('lockTimeout', options.lockTimeout, DEFAULT_LOCK_TIMEOUT, { infinite: true });
  const lockStale = checkMilliseconds('lockStale', options.lockStale, DEFAULT_LOCK_STALE, {
    min: 1,
    max: MAX_TIMER_DELAY,
  });
  const serializer = options.serializer ?? jsonSerializer;
  if (typeof serializer?.stringify !== 'function' || typeof serializer.parse !== 'function') {
    throw new TypeError(
      `serializer must have stringify(value) and parse(text) methods, received ${describe(options.serializer)}`,
    );
  }
  const log = checkFunction<(line: string) => void>('log', options.log);
  return { lockTimeout, lockStale, log, codec: { namespace, serializer, cipher: cipherFor(options.encryptKey) } };
}
