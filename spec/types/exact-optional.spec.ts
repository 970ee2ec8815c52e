/**
 * Optional options take `undefined` as "not given", also under `exactOptionalPropertyTypes`
 * (which tsconfig.json sets): `secret: process.env.SESSION_SECRET` is a `string | undefined`.
 * The type half is checked by `npm run typecheck` (a `@ts-expect-error` that expects nothing
 * fails it too); the run-time half checks that the options take `undefined` as documented.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { sessionlock as expressSessionlock } from '../../lib/adapters/express.js';
import { sessionlock as fastifySessionlock } from '../../lib/adapters/fastify.js';
import { withSession } from '../../lib/adapters/http.js';
import { sessionlock as koaSessionlock } from '../../lib/adapters/koa.js';
import {
  type AcquireWriteLockOptions,
  type ApplyChangesOptions,
  CacheRegion,
  type ContainerOptions,
  type DBMNamespaceManagerOptions,
  type FileNamespaceManagerOptions,
  type GetOptions,
  LockTimeoutError,
  MemoryContainer,
  MemoryNamespaceManager,
  type MemoryNamespaceManagerOptions,
  MemoryStore,
  type NamespaceManagerOptions,
  type RedisNamespaceManagerOptions,
  Session,
  type SessionLoadOptions,
  type SessionLockOptions,
  type SessionMiddlewareOptions,
  type SessionOptions,
  type SweepOptions,
  sweep,
  UndecodableValueError,
} from '../../lib/index.js';

/** The optional keys of `T`. */
type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];
/** The optional keys of `T` that refuse `undefined` (under exactOptionalPropertyTypes). */
type RefusingUndefined<T> = { [K in OptionalKeys<T>]: undefined extends Required<T>[K] ? never : K }[OptionalKeys<T>];
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
const expectTrue = <T extends true>(): T | undefined => undefined;

// Every optional option takes undefined; `prefix` excepted in the Session's options, since
// Fastify's register options declare `prefix?: string` (see SessionOptions.prefix).
expectTrue<Equal<RefusingUndefined<SessionOptions>, 'prefix'>>();
expectTrue<Equal<RefusingUndefined<SessionMiddlewareOptions>, 'prefix'>>();
expectTrue<Equal<RefusingUndefined<SessionLoadOptions>, never>>();
expectTrue<Equal<RefusingUndefined<SessionLockOptions>, never>>();
expectTrue<Equal<RefusingUndefined<NamespaceManagerOptions>, never>>();
expectTrue<Equal<RefusingUndefined<MemoryNamespaceManagerOptions>, never>>();
expectTrue<Equal<RefusingUndefined<FileNamespaceManagerOptions>, never>>();
expectTrue<Equal<RefusingUndefined<DBMNamespaceManagerOptions>, never>>();
expectTrue<Equal<RefusingUndefined<RedisNamespaceManagerOptions>, never>>();
expectTrue<Equal<RefusingUndefined<AcquireWriteLockOptions>, never>>();
expectTrue<Equal<RefusingUndefined<ApplyChangesOptions>, never>>();
expectTrue<Equal<RefusingUndefined<GetOptions<number>>, never>>();
expectTrue<Equal<RefusingUndefined<SweepOptions>, never>>();
type ContainerKeys = 'type' | 'namespaceClass' | 'expiretime' | keyof NamespaceManagerOptions;
expectTrue<Equal<RefusingUndefined<Pick<ContainerOptions, ContainerKeys>>, never>>();
// The check itself: a plain optional key is caught.
expectTrue<Equal<RefusingUndefined<{ a?: string; b?: string | undefined; c: number }>, 'a'>>();

const env: string | undefined = process.env.SESSIONLOCK_TYPES_UNSET;
const maybeNumber = env === undefined ? undefined : Number(env);

/** The README's and the consumers' shapes; compiled, never called. */
export function compiles(req: { headers: { cookie?: string } }): void {
  const options = { dataDir: './sessions', key: 'sid', timeout: 1800, secret: env };
  void Session.open(req, options);
  void new Session(req, { secret: env, dataDir: undefined, log: undefined, cookieExpires: undefined });
  void new Session(req, { id: env, type: env, timeout: maybeNumber, lockTimeout: maybeNumber, url: env });
  void new Session(req, {}).load({ lock: undefined });
  void new Session(req, {}).lock({ timeout: maybeNumber });
  void withSession(() => {}, { dataDir: env, secret: env, lock: undefined });
  expressSessionlock({ secret: env, lock: undefined, invalidateCorrupt: undefined });
  koaSessionlock({ secret: env, lock: undefined });
  void Fastify().register(fastifySessionlock, { secret: env, lock: undefined, key: 'sid' });
  void new MemoryNamespaceManager('n', { store: undefined, lockStale: maybeNumber, encryptKey: env });
  void new MemoryNamespaceManager('n').acquireWriteLock({ wait: undefined, timeout: maybeNumber });
  void new MemoryNamespaceManager('n').withWriteLock(() => {}, { timeout: maybeNumber });
  void new MemoryNamespaceManager('n').applyChanges(new Map(), { requireKey: env, wait: undefined });
  const redis: RedisNamespaceManagerOptions = { url: env, prefix: env, client: undefined, ttl: maybeNumber };
  const dbm: DBMNamespaceManagerOptions = { dataDir: './sessions', maxOpenFiles: maybeNumber };
  const file: FileNamespaceManagerOptions = { dataDir: './sessions', durable: undefined };
  void [redis, dbm, file];
  const cache = new MemoryContainer('c', { expiretime: maybeNumber, namespaceClass: undefined });
  void cache.get('k', { createfunc: undefined, expiretime: maybeNumber });
  void cache.set('k', 1, { expiretime: maybeNumber });
  void new CacheRegion('r').memoize(() => 1, { name: env, key: undefined, expiretime: maybeNumber });
  void sweep({ dataDir: './sessions', timeout: 60, type: undefined, lockStale: maybeNumber, dryRun: undefined });
  // @ts-expect-error a required option is still required
  void sweep({ dataDir: './sessions', timeout: undefined });
  // @ts-expect-error a Session's backend options are typed as the backends type them
  void new Session(req, { type: 'redis', client: 42 });
  // @ts-expect-error the memory backend's store is a MemoryStore
  void new Session(req, { store: 'nope' });
}

/** Each error class's `code` is its own literal, so a check of a misspelt code does not compile. */
export function errorCodes(error: unknown): string | undefined {
  if (error instanceof LockTimeoutError) {
    // @ts-expect-error no overlap: a LockTimeoutError's code is 'ERR_LOCK_TIMEOUT'
    if (error.code === 'ERR_LOCK_TIMEOUT_TYPO') return 'never';
    const code: 'ERR_LOCK_TIMEOUT' = error.code;
    return code;
  }
  if (error instanceof UndecodableValueError) {
    const code: 'ERR_SESSION_CORRUPT' = error.code;
    return code;
  }
  return undefined;
}

/** A container's `get` with a `createfunc` always has a value. */
export async function containerValue(): Promise<string> {
  const created: string = await new MemoryContainer('c').get('k', { createfunc: () => 'made' });
  const maybe: string | undefined = await new MemoryContainer('c').get<string>('k');
  return created + String(maybe);
}

describe('options given as undefined', () => {
  it('are taken as not given', async () => {
    const store = new MemoryStore();
    const session = await Session.open(
      { headers: {} },
      {
        store,
        secret: undefined,
        dataDir: undefined,
        type: undefined,
        key: undefined,
        timeout: undefined,
        cookieExpires: undefined,
        log: undefined,
        useCookies: undefined,
        strict: undefined,
        lockTimeout: undefined,
        sameSite: undefined,
      },
    );
    session.data.x = 1;
    await session.save();
    assert.match(session.cookieHeader ?? '', /^sessionlock_id=[a-z2-7]{32}; Path=\/; HttpOnly; SameSite=Lax$/);
    await session.lock({ timeout: undefined });
    await session.unlock();
    const cache = new MemoryContainer('exact-optional', { store, expiretime: undefined });
    assert.equal(await cache.get('k', { createfunc: () => 2, expiretime: undefined }), 2);
  });
});
