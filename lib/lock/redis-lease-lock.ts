/**
 * The cross-machine lock of a redis namespace: a key that holds the holder's random token
 * and expires after the lease (`SET key token NX PX stale`). Renewing and releasing are Lua
 * compare-and-PEXPIRE and compare-and-delete; a commit is a Lua script that checks the token
 * and writes in one step (a fence), so a holder that lost its lease writes nothing.
 * @module
 */
import { LockCompromisedError } from '../errors.js';
import { isConnectionDrop, type LuaScript, luaScript, type RedisConnection } from '../namespace/redis-connection.js';
import { LeaseLock, type LeaseOptions } from './lease-lock.js';

const EXTEND = luaScript(
  'Extend',
  1,
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
);

/**
 * `SET key token NX PX stale`; when the key is taken by something that will never expire
 * (a key without a TTL, or of another type, that sessionlock did not write), it is given the
 * lease's TTL, so it is taken over after `stale` like a lease whose holder died.
 */
const CLAIM = luaScript(
  'Claim',
  1,
  "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n" +
    "if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n" +
    'return 0',
);

const UNCLAIM = luaScript(
  'Unclaim',
  1,
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
);

/**
 * A script that runs `body` only while the lease key (`KEYS[1]`) holds the token (`ARGV[1]`),
 * returning 1, and otherwise returns 0 having done nothing. `body` sees its own `keys` from
 * `KEYS[2]` and its arguments from `ARGV[2]` on.
 */
export function fencedScript(name: string, keys: number, body: string): LuaScript {
  return luaScript(name, keys + 1, `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n${body}\nreturn 1`);
}

export class RedisLeaseLock extends LeaseLock {
  readonly #redis: RedisConnection;
  readonly #key: string;

  /** The lock held in the Redis key `key`. */
  constructor(redis: RedisConnection, key: string, lease: LeaseOptions) {
    super(lease);
    this.#redis = redis;
    this.#key = key;
  }

  /**
   * Runs a {@link fencedScript}: unless this lock still holds an unexpired lease (in this
   * process's view and then in Redis), writes nothing and throws {@link LockCompromisedError}.
   */
  async writeFenced(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<void> {
    this.verify();
    const token = this.token as string;
    const written = await this.#redis.script('write to', script, [this.#key, ...keys], [token, ...args]);
    if (written !== 1) {
      throw new LockCompromisedError(
        this.lease.name,
        'its lease ran out or another holder took it over before the commit',
      );
    }
  }

  /**
   * {@link CLAIM}. When it fails (no reply within commandTimeout, a dropped
   * connection), Redis may still have run it, or run it later, leaving a lease nobody renews
   * or releases that would block the namespace for `stale`. So a compare-and-delete of
   * `token` follows it, unawaited: sent after the SET (on the same connection, or on the next
   * one if that one dropped), it runs after the SET if the SET runs at all, and deletes only
   * this lease.
   */
  protected override async claim(token: string): Promise<boolean> {
    let reply: unknown;
    try {
      reply = await this.#redis.script('take a lock on', CLAIM, [this.#key], [token, this.#leaseMs()]);
    } catch (error) {
      this.unclaim(token).catch(() => {});
      throw error;
    }
    return reply === 1;
  }

  protected override async extend(token: string): Promise<boolean> {
    return (await this.#redis.script('renew a lock on', EXTEND, [this.#key], [token, this.#leaseMs()])) === 1;
  }

  /**
   * Compare-and-delete of `token`. One lost with its connection is sent once more, on the
   * next connection (it is idempotent): else the lease would block the namespace until it
   * expires. One that timed out is not: Redis may be hung, and the lease expires anyway.
   */
  protected override async unclaim(token: string): Promise<void> {
    const release = () => this.#redis.script('release a lock on', UNCLAIM, [this.#key], [token]);
    try {
      await release();
    } catch (error) {
      if (!isConnectionDrop(error)) throw error;
      await release();
    }
  }

  #leaseMs(): number {
    return Math.ceil(this.lease.stale);
  }
}
