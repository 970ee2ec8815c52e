/**
 * The systems under test, each behind the same small interface: sessionlock on each backend
 * (through the Session API), and express-session's stores through their own APIs.
 * @module
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RedisStore } from 'connect-redis';
import session, { type SessionData, type Store } from 'express-session';
import { createClient } from 'redis';
import FileStoreFactory from 'session-file-store';
import { MemoryStore, RedisNamespaceManager, Session, type SessionOptions } from 'sessionlock';
import { randomSequence } from './harness.js';

export type Backend = 'memory' | 'file' | 'dbm' | 'redis';
export const BACKENDS: readonly Backend[] = ['memory', 'file', 'dbm', 'redis'];
export type Peer = 'MemoryStore' | 'FileStore' | 'RedisStore';
export const PEERS: readonly Peer[] = ['MemoryStore', 'FileStore', 'RedisStore'];

/** Display names, used as `system` in the results. */
export const SESSIONLOCK_NAME: Record<Backend, string> = {
  memory: 'sessionlock memory',
  file: 'sessionlock file',
  dbm: 'sessionlock dbm',
  redis: 'sessionlock redis',
};
export const PEER_NAME: Record<Peer, string> = {
  MemoryStore: 'express-session MemoryStore',
  FileStore: 'session-file-store',
  RedisStore: 'connect-redis',
};

/** Session lifetime everywhere: an hour (sessionlock `timeout`, the peers' cookie maxAge). */
export const TIMEOUT_SECONDS = 3600;
export const COOKIE_KEY = 'sid';

/** What every stored session holds (about 420 bytes as JSON); `visits` is the key a cycle changes. */
export function sessionData(i: number): Record<string, unknown> {
  return {
    user: { id: 100_000 + i, name: `User ${i}`, email: `user${i}@example.com`, roles: ['customer', 'beta'] },
    cart: [
      { sku: `SKU-${i % 97}`, qty: 1, price: 19.99 },
      { sku: `SKU-${i % 89}`, qty: 2, price: 5.25 },
      { sku: `SKU-${i % 83}`, qty: 1, price: 120 },
    ],
    csrf: `csrf-${i.toString(36).padStart(8, '0')}-0123456789abcdef0123456789abcdef`,
    prefs: { theme: i % 2 ? 'dark' : 'light', lang: 'en', currency: 'EUR' },
    visits: 0,
  };
}

/** Where a scenario's systems keep their data. */
export interface Environment {
  /** A private scratch directory. */
  dir: string;
  /** The benchmark's own redis-server, when the scenario uses Redis. */
  redisUrl?: string;
}

export function makeScratchDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sessionlock-bench-${label}-`));
}

/** sessionlock's options for `backend` in `env`. */
export function sessionlockOptions(backend: Backend, env: Environment, extra: SessionOptions = {}): SessionOptions {
  const base: SessionOptions = { key: COOKIE_KEY, timeout: TIMEOUT_SECONDS, ...extra };
  switch (backend) {
    case 'memory':
      return { ...base, type: 'memory', store: new MemoryStore() };
    case 'file':
    case 'dbm': {
      // Created up front: concurrent first saves into a missing dataDir race (see the bench report).
      const dataDir = path.join(env.dir, `sessionlock-${backend}`);
      fs.mkdirSync(dataDir, { recursive: true });
      return { ...base, type: backend, dataDir };
    }
    case 'redis':
      if (!env.redisUrl) throw new Error('the redis backend needs a redis-server');
      return { ...base, type: 'redis', url: env.redisUrl, prefix: 'bench:' };
  }
}

/** A store under test, reduced to what a request does with it. */
export interface SessionSystem {
  readonly name: string;
  /** sessionlock's options (undefined for peers). */
  readonly options?: SessionOptions;
  /** Stores `count` sessions (`sessionData(i)`); returns the handles `cycle` takes. */
  seed(count: number, concurrency?: number): Promise<string[]>;
  /** One request's worth: load the session, change one key, save it. */
  cycle(handle: string): Promise<void>;
  /** Load only (a read-only request). */
  load(handle: string): Promise<unknown>;
  close(): Promise<void>;
}

/** sessionlock through its Session API, as an application uses it. */
export function sessionlockSystem(backend: Backend, env: Environment, extra: SessionOptions = {}): SessionSystem {
  const options = sessionlockOptions(backend, env, extra);
  const request = (id: string) => ({ headers: { cookie: `${COOKIE_KEY}=${id}` } });
  return {
    name: SESSIONLOCK_NAME[backend],
    options,
    async seed(count, concurrency = 8) {
      const ids: string[] = new Array(count);
      await forEachConcurrently(count, concurrency, async (i) => {
        const session = await Session.open(undefined, options);
        Object.assign(session.data, sessionData(i));
        await session.save();
        ids[i] = session.id;
      });
      return ids;
    },
    async cycle(id) {
      const session = await Session.open(request(id), options);
      session.data.visits = (session.data.visits as number) + 1;
      await session.save();
    },
    async load(id) {
      return (await Session.open(request(id), options)).data;
    },
    async close() {
      if (backend === 'redis') await RedisNamespaceManager.closeConnections();
    },
  };
}

type Callback<T> = (error: unknown, value?: T) => void;

function promisify<T>(call: (callback: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    call((error, value) => (error ? reject(error) : resolve(value as T)));
  });
}

/** An express-session store, with the session object express-session would give it. */
export interface PeerStore {
  readonly store: Store;
  close(): Promise<void>;
}

/** Creates a peer store as its README configures it (quiet, no background reaping). */
export async function createPeerStore(peer: Peer, env: Environment): Promise<PeerStore> {
  switch (peer) {
    case 'MemoryStore':
      return { store: new session.MemoryStore(), close: async () => {} };
    case 'FileStore': {
      const FileStore = FileStoreFactory(session);
      const store = new FileStore({
        path: path.join(env.dir, 'session-file-store'),
        ttl: TIMEOUT_SECONDS,
        reapInterval: -1,
        logFn: () => {},
      });
      return { store, close: async () => {} };
    }
    case 'RedisStore': {
      if (!env.redisUrl) throw new Error('connect-redis needs a redis-server');
      const client = createClient({ url: env.redisUrl });
      client.on('error', () => {});
      await client.connect();
      const store = new RedisStore({ client, prefix: 'bench-peer:' });
      return { store, close: async () => void (await client.quit()) };
    }
  }
}

/** The session object express-session hands its store: the data plus its cookie. */
export function peerSession(data: Record<string, unknown>): SessionData {
  const maxAge = TIMEOUT_SECONDS * 1000;
  return {
    cookie: {
      originalMaxAge: maxAge,
      expires: new Date(Date.now() + maxAge),
      secure: false,
      httpOnly: true,
      path: '/',
      sameSite: 'lax',
    },
    ...data,
  } as unknown as SessionData;
}

export function storeGet(store: Store, sid: string): Promise<SessionData | null | undefined> {
  return promisify((callback) => store.get(sid, callback));
}

export function storeSet(store: Store, sid: string, data: SessionData): Promise<void> {
  return promisify((callback) => store.set(sid, data, callback));
}

let peerIds = 0;

/** A peer store through its own get/set API. */
export async function peerSystem(peer: Peer, env: Environment): Promise<SessionSystem> {
  const { store, close } = await createPeerStore(peer, env);
  return {
    name: PEER_NAME[peer],
    async seed(count, concurrency = 8) {
      const sids = Array.from(
        { length: count },
        () => `peer${process.pid}x${(peerIds++).toString(36).padStart(12, '0')}`,
      );
      await forEachConcurrently(count, concurrency, (i) =>
        storeSet(store, sids[i] as string, peerSession(sessionData(i))),
      );
      return sids;
    },
    async cycle(sid) {
      const data = (await storeGet(store, sid)) as unknown as Record<string, number>;
      data.visits = (data.visits as number) + 1;
      await storeSet(store, sid, data as unknown as SessionData);
    },
    load: (sid) => storeGet(store, sid),
    close,
  };
}

/** Runs `task(i)` for i in [0, count), at most `concurrency` at once. */
export async function forEachConcurrently(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** `count` indexes in [0, size), uniformly at random, fixed by `seed`. */
export function randomPicks(count: number, size: number, seed = 42): Uint32Array {
  const next = randomSequence(seed);
  const picks = new Uint32Array(count);
  for (let i = 0; i < count; i++) picks[i] = Math.floor(next() * size);
  return picks;
}
