/**
 * The redis backend, for sessions shared by several machines. A namespace is a hash
 * (`<prefix>{<namespace>}:data`, one field per key) and a lease key beside it
 * (`<prefix>{<namespace>}:lock`); the `{namespace}` hash tag keeps both in one slot, so
 * every script works on Redis Cluster (a namespace that is empty or starts with `}`, which
 * would make an empty hash tag, gets an escaped one: `<prefix>{%<escaped>}%:data`). A read
 * is one command, a commit one Lua script that checks the lease and writes
 * ({@link RedisLeaseLock}). ioredis is an optional peer dependency, imported only when this
 * backend is first used.
 * @module
 */
import type { Cluster, Redis } from 'ioredis';
import { SessionCorruptError, StorageError } from '../errors.js';
import { fencedScript, RedisLeaseLock } from '../lock/redis-lease-lock.js';
import { checkMilliseconds, checkString, checkTtl, describe, MAX_TIMER_DELAY } from '../options.js';
import { NamespaceManager } from './namespace-manager.js';
import {
  type EncodedChanges,
  type EncodedEntries,
  type ExpiringOptions,
  HELD_ELSEWHERE,
  NAMESPACE_MANAGER_OPTIONS,
  type NamespaceManagerOptions,
} from './namespace-options.js';
import {
  closeSharedClients,
  isWrongType,
  luaScript,
  RETURN_IF_LATE,
  type RedisClient,
  RedisConnection,
} from './redis-connection.js';

/** Options of {@link RedisNamespaceManager}. */
export interface RedisNamespaceManagerOptions extends NamespaceManagerOptions, ExpiringOptions {
  /**
   * An ioredis `Redis` or `Cluster` client. It stays the application's: sessionlock never
   * closes it. Give either `client` or `url`.
   * @default a client for `url`, shared by every manager of this process that uses the same `url`
   */
  client?: Redis | Cluster | undefined;
  /**
   * Where Redis is, when no `client` is given (`redis://[user:password@]host[:port][/db]`,
   * `rediss://` for TLS). The client is created on first use, shared in this process, and
   * does not keep the process alive when idle; {@link RedisNamespaceManager.closeConnections}
   * closes it.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string | undefined;
  /**
   * Prepended to every key; must not contain `{` or `}`, as the namespace is the hash tag.
   * @default 'sessionlock:'
   */
  prefix?: string | undefined;
  /**
   * Milliseconds a command may take, waiting for a connection included, before it rejects
   * with a {@link StorageError} naming the server's address. At most 2^31 - 1 (about 24.8 days).
   * @default 5000
   */
  commandTimeout?: number | undefined;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';
const DEFAULT_PREFIX = 'sessionlock:';
const DEFAULT_COMMAND_TIMEOUT = 5000;
const SET_CHUNK = 2000;
const DELETE_CHUNK = 1000;

/** A reader's read: nothing (nil) while a writer holds the lease, otherwise the hash. */
const READ_UNLESS_LOCKED = luaScript(
  'Read',
  2,
  "if redis.call('EXISTS', KEYS[2]) == 1 then return false end return redis.call('HGETALL', KEYS[1])",
);

/** The lock holder's read: a script, so that a Cluster client reading from replicas (`scaleReads`) still asks the primary. */
const READ_OWNED = luaScript('ReadOwned', 1, "return redis.call('HGETALL', KEYS[1])");

/** ARGV: ttl ('' for none), number of fields set, then field/value pairs, then deleted fields. */
const COMMIT = fencedScript(
  'Commit',
  1,
  `local last = 3 + 2 * tonumber(ARGV[3])
for i = 4, last, ${SET_CHUNK} do redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + ${SET_CHUNK - 1}, last))) end
for i = last + 1, #ARGV, ${DELETE_CHUNK} do redis.call('HDEL', KEYS[2], unpack(ARGV, i, math.min(i + ${DELETE_CHUNK - 1}, #ARGV))) end
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end`,
);

const REMOVE = fencedScript('Remove', 1, "redis.call('DEL', KEYS[2])");

/**
 * An unlocked save in one round trip. ARGV: the deadline (see `scriptWithDeadline`), ttl (''
 * for none), '1' when ARGV[4] must be stored (else '0'), that key, number of fields set,
 * field/value pairs, deleted fields.
 */
const APPLY = luaScript(
  'Apply',
  2,
  `${RETURN_IF_LATE}
if redis.call('EXISTS', KEYS[2]) == 1 then return 'held' end
if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], ARGV[4]) == 0 then return 'missing' end
local last = 5 + 2 * tonumber(ARGV[5])
for i = 6, last, ${SET_CHUNK} do redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + ${SET_CHUNK - 1}, last))) end
for i = last + 1, #ARGV, ${DELETE_CHUNK} do redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + ${DELETE_CHUNK - 1}, #ARGV))) end
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 'applied'`,
);

/**
 * Keeps each namespace in a Redis hash. Exclusive across processes and machines that use
 * the same Redis; reads never wait for a lock unless a writer holds it.
 *
 * ```ts
 * const ns = new RedisNamespaceManager('abc', { url: 'redis://cache:6379', ttl: 3_600_000 });
 * ```
 */
export class RedisNamespaceManager extends NamespaceManager {
  static override readonly optionNames: readonly string[] = [
    ...NAMESPACE_MANAGER_OPTIONS,
    'client',
    'url',
    'prefix',
    'commandTimeout',
    'ttl',
  ];
  /** The key of the hash that holds the namespace's entries. */
  readonly dataKey: string;
  /** The key of its write lock, which holds the holder's token while leased. */
  readonly leaseKey: string;
  readonly #redis: RedisConnection;
  readonly #lease: RedisLeaseLock;
  readonly #ttl: string;

  constructor(namespace: string, options: RedisNamespaceManagerOptions = {}) {
    super(namespace, options);
    const prefix = options.prefix === undefined ? DEFAULT_PREFIX : checkPrefix(options.prefix);
    const commandTimeout = checkMilliseconds('commandTimeout', options.commandTimeout, DEFAULT_COMMAND_TIMEOUT, {
      min: 1,
      max: MAX_TIMER_DELAY,
    });
    const ttl = checkTtl(options.ttl);
    this.#ttl = ttl === Infinity ? '' : String(Math.ceil(ttl));
    this.#redis = new RedisConnection(clientOrUrl(options), commandTimeout);
    [this.dataKey, this.leaseKey] = namespaceKeys(prefix, namespace);
    this.#lease = new RedisLeaseLock(this.#redis, this.leaseKey, {
      stale: this.lockStale,
      name: namespace,
      log: (line) => this.log(line),
    });
  }

  /**
   * Closes the connections opened for `url` options in this process (never a `client` you
   * passed). Call it at shutdown; a later use opens them again.
   */
  static closeConnections(): Promise<void> {
    return closeSharedClients();
  }

  protected override get lockKey(): string {
    return `redis:${this.#redis.id}:${this.dataKey}`;
  }

  protected override async readCommitted(asOwner: boolean): Promise<EncodedEntries | typeof HELD_ELSEWHERE> {
    if (asOwner)
      return pairs((await this.#checked(this.#redis.script('read from', READ_OWNED, [this.dataKey], []))) as string[]);
    const reply = await this.#checked(
      this.#redis.script('read from', READ_UNLESS_LOCKED, [this.dataKey, this.leaseKey], []),
    );
    return reply === null ? HELD_ELSEWHERE : pairs(reply as string[]);
  }

  protected override tryLockStorage(): Promise<boolean> {
    return this.#lease.tryAcquire();
  }

  protected override unlockStorage(): Promise<void> {
    return this.#lease.release();
  }

  protected override async writeCommitted(changes: EncodedChanges): Promise<void> {
    await this.#checked(this.#lease.writeFenced(COMMIT, [this.dataKey], [this.#ttl, ...changeArguments(changes)]));
  }

  protected override async applyAtomically(changes: EncodedChanges, requireKey: string | undefined) {
    const required = requireKey === undefined ? ['0', ''] : ['1', requireKey];
    const reply = await this.#checked(
      this.#redis.scriptWithDeadline(
        'write to',
        APPLY,
        [this.dataKey, this.leaseKey],
        [this.#ttl, ...required, ...changeArguments(changes)],
      ),
    );
    if (reply === 'late') {
      throw new StorageError(this.#redis.address, 'write to redis at', {
        cause: new Error(`it reached Redis after its commandTimeout; nothing was written`),
      });
    }
    return reply === 'held' ? HELD_ELSEWHERE : (reply as 'applied' | 'missing');
  }

  protected override async removeCommitted(): Promise<void> {
    await this.#lease.writeFenced(REMOVE, [this.dataKey], []);
  }

  /** Turns Redis's WRONGTYPE (the data key is not a hash) into {@link SessionCorruptError}. */
  async #checked<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      if (!isWrongType(error)) throw error;
      throw new SessionCorruptError(this.namespace, `the Redis key ${this.dataKey} is not a hash`, { cause: error });
    }
  }
}

function checkPrefix(prefix: unknown): string {
  const checked = checkString('prefix', prefix, { nonEmpty: false }) as string;
  if (/[{}]/.test(checked)) {
    throw new TypeError(`prefix must not contain { or } (the namespace is the hash tag), received ${describe(prefix)}`);
  }
  return checked;
}

/**
 * The data key and lease key of `namespace`: `<prefix>{<namespace>}:data` and `:lock`, whose
 * hash tag (what Redis Cluster hashes: from the first `{` to the next `}`) is the namespace,
 * or its part before a `}`. A namespace that is empty or starts with `}` would leave that tag
 * empty, and Cluster would hash the two whole keys to different slots; its tag is then `%`
 * and the namespace with `%` and `}` percent-encoded, and its keys end in `}%:data` and
 * `}%:lock`, which no other namespace's keys do (theirs end in `}:data`, `}:lock`):
 * `''` → `<prefix>{%}%:data`, `'}a'` → `<prefix>{%%7Da}%:data`.
 */
function namespaceKeys(prefix: string, namespace: string): [data: string, lease: string] {
  const base =
    namespace === '' || namespace.startsWith('}')
      ? `${prefix}{%${namespace.replace(/[%}]/g, (c) => (c === '%' ? '%25' : '%7D'))}}%`
      : `${prefix}{${namespace}}`;
  return [`${base}:data`, `${base}:lock`];
}

function clientOrUrl(options: RedisNamespaceManagerOptions): RedisClient | URL {
  const { client, url } = options;
  if (client !== undefined) {
    if (url !== undefined) throw new TypeError(`give either client or url, not both; received url ${describe(url)}`);
    if (typeof (client as { defineCommand?: unknown } | null)?.defineCommand !== 'function') {
      throw new TypeError(`client must be an ioredis Redis or Cluster instance, received ${describe(client)}`);
    }
    return client;
  }
  const text = url === undefined ? DEFAULT_URL : (checkString('url', url) as string);
  const parsed = URL.canParse(text) ? new URL(text) : undefined;
  if (parsed?.protocol !== 'redis:' && parsed?.protocol !== 'rediss:') {
    throw new TypeError(
      `url must be a redis:// or rediss:// URL, received ${describe(text.replace(/\/\/[^@/]*@/, '//***@'))}`,
    );
  }
  return parsed;
}

function pairs(flat: string[]): Map<string, string> {
  const entries = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) entries.set(flat[i] as string, flat[i + 1] as string);
  return entries;
}

/** A commit's arguments: the number of fields set, field/value pairs, then deleted fields. */
function changeArguments(changes: EncodedChanges): (string | number)[] {
  const sets: string[] = [];
  const deletes: string[] = [];
  for (const [key, raw] of changes) {
    if (raw === undefined) deletes.push(key);
    else sets.push(key, raw);
  }
  return [sets.length / 2, ...sets, ...deletes];
}
