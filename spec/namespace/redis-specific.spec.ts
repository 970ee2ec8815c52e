/** What the redis backend promises beyond the conformance suite, checked against a real redis-server. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import {
  LockCompromisedError,
  RedisNamespaceManager,
  type RedisNamespaceManagerOptions,
  Session,
  SessionCorruptError,
  StorageError,
} from '../../lib/index.js';
import { RedisLeaseLock } from '../../lib/lock/redis-lease-lock.js';
import { READ_CLOCK, RedisConnection } from '../../lib/namespace/redis-connection.js';
import { releaseRedisServer, useRedisServer } from '../fixtures/backends.js';
import { RedisServer, redisSkipReason } from '../fixtures/redis-server.js';
import { TcpProxy } from '../fixtures/tcp-proxy.js';

const skip = redisSkipReason();
if (skip) it('redis backend', { skip }, () => {});
else describe('redis backend', specs);

function specs(): void {
  let server: RedisServer;
  let raw: Redis;
  const prefix = `test-${randomUUID()}:`;
  const create = (namespace: string, options: RedisNamespaceManagerOptions = {}) =>
    new RedisNamespaceManager(namespace, { url: server.url, prefix, ...options });

  before(async () => {
    server = await useRedisServer();
    raw = new Redis(server.url);
  });
  after(async () => {
    await raw.quit();
    await releaseRedisServer();
  });

  describe('storage layout', () => {
    it('keeps a namespace in a hash, one field per key, and its lease beside it under the same hash tag', async () => {
      const ns = create('user-42', { lockStale: 60_000 });
      assert.equal(ns.dataKey, `${prefix}{user-42}:data`);
      assert.equal(ns.leaseKey, `${prefix}{user-42}:lock`);
      await ns.acquireWriteLock();
      assert.match((await raw.get(ns.leaseKey)) ?? '', /^\S{8,}$/, 'the lease holds a token');
      const pttl = await raw.pttl(ns.leaseKey);
      assert.ok(pttl > 0 && pttl <= 60_000, `the lease expires (pttl ${pttl})`);
      ns.set('a', 1);
      ns.set('b', 'two');
      await ns.releaseWriteLock();
      assert.equal(await raw.exists(ns.leaseKey), 0, 'released');
      assert.equal(await raw.type(ns.dataKey), 'hash');
      assert.deepEqual(await raw.hgetall(ns.dataKey), {
        a: ns.serializer.stringify(1),
        b: ns.serializer.stringify('two'),
      });
      await ns.withWriteLock(() => {
        ns.delete('a');
        ns.delete('b');
      });
      assert.equal(await raw.exists(ns.dataKey), 0, 'deleting the last key deletes the hash');
    });

    it('keeps the keys of every namespace whose hash tag is not empty as they were, a } inside included', () => {
      for (const name of ['user-42', 'a}b', '{x}', '%', '%7D']) {
        const ns = create(name);
        assert.equal(ns.dataKey, `${prefix}{${name}}:data`);
        assert.equal(ns.leaseKey, `${prefix}{${name}}:lock`);
      }
    });

    it('caps the ttl derived from a huge Session timeout to one Redis accepts, so saves succeed', async () => {
      const options = { type: 'redis', url: server.url, prefix, key: 'sid', timeout: 1e18 } as const;
      const session = await Session.open({ headers: {} }, options);
      session.data.n = 1;
      await session.save();
      assert.ok((await raw.pttl(create(session.id).dataKey)) > 0, 'the data expires');
      const cookie = (session.cookieHeader as string).split(';')[0] as string;
      assert.equal((await Session.open({ headers: { cookie } }, options)).data.n, 1);
    });

    it('sets the ttl on stored data and refreshes it on every write, not on reads', async () => {
      const ns = create(`ttl-${randomUUID()}`, { ttl: 60_000 });
      await ns.withWriteLock(() => ns.set('a', 1));
      const pttl = await raw.pttl(ns.dataKey);
      assert.ok(pttl > 1000 && pttl <= 60_000, `pttl ${pttl}`);
      await raw.pexpire(ns.dataKey, 1000);
      await ns.withReadLock(() => ns.get('a'));
      assert.ok((await raw.pttl(ns.dataKey)) <= 1000, 'a read leaves the ttl alone');
      await ns.withWriteLock(() => ns.set('a', 2));
      assert.ok((await raw.pttl(ns.dataKey)) > 1000, 'a write sets it anew');

      const forever = create(`no-ttl-${randomUUID()}`);
      await forever.withWriteLock(() => forever.set('a', 1));
      assert.equal(await raw.pttl(forever.dataKey), -1, 'without ttl, data does not expire');
    });

    it('maps a data key that is not a hash to SessionCorruptError naming the namespace, and remove() clears it', async () => {
      const name = `wrongtype-${randomUUID()}`;
      const ns = create(name);
      await raw.set(ns.dataKey, 'garbage');
      const corrupt = (error: unknown) => {
        assert.ok(error instanceof SessionCorruptError);
        assert.equal(error.id, name);
        return true;
      };
      await assert.rejects(ns.acquireReadLock(), corrupt);
      await assert.rejects(ns.acquireWriteLock(), corrupt);
      assert.equal(ns.lockState, 'none');
      assert.equal(await raw.exists(ns.leaseKey), 0, 'the failed write lock was given back');
      await ns.remove();
      await ns.withWriteLock(() => ns.set('fresh', true));
      assert.deepEqual(await ns.withReadLock(() => ns.keys()), ['fresh']);
    });
  });

  describe('round trips', () => {
    let monitor: Redis;
    before(async () => {
      monitor = await raw.monitor();
    });
    after(() => monitor.disconnect());

    /** The commands Redis received from clients (not from scripts) that touch `ns`'s keys while `step` ran. */
    async function commandsOf(ns: RedisNamespaceManager, step: () => Promise<unknown>): Promise<string[][]> {
      const seen: string[][] = [];
      const markers = new Map<string, () => void>();
      const mark = async () => {
        const marker = randomUUID();
        const arrived = new Promise<void>((resolve) => markers.set(marker, resolve));
        await raw.echo(marker);
        await arrived;
      };
      let recording = false;
      const listener = (_time: string, args: string[], source: string) => {
        const marker = markers.get(args[1] ?? '');
        if (marker) {
          recording = !recording;
          marker();
        } else if (recording && source !== 'lua' && (args.includes(ns.dataKey) || args.includes(ns.leaseKey))) {
          seen.push(args);
        }
      };
      monitor.on('monitor', listener);
      try {
        await mark();
        await step();
        await mark();
      } finally {
        monitor.off('monitor', listener);
      }
      return seen;
    }

    it('reads with one command and commits with one script', async () => {
      const ns = create(`trips-${randomUUID()}`, { lockStale: 60_000 });
      await ns.withWriteLock(() => ns.set('warm', 'up'));
      await ns.withReadLock(() => {});

      const read = await commandsOf(ns, () => ns.acquireReadLock());
      assert.equal(read.length, 1, `one command per read: ${JSON.stringify(read)}`);
      assert.match(read[0]?.[0] ?? '', /^eval(sha)?$/i);
      assert.deepEqual(await commandsOf(ns, () => ns.releaseReadLock()), []);

      await ns.acquireWriteLock();
      ns.set('a', 'changed');
      ns.set('b', 'added');
      ns.delete('warm');
      const release = await commandsOf(ns, () => ns.releaseWriteLock());
      assert.deepEqual(
        release.map((args) => args[0]?.toLowerCase()),
        ['evalsha', 'evalsha'],
        'the commit script, then the unlock script',
      );
      const commit = release[0] ?? [];
      for (const field of ['a', 'b', 'warm']) assert.ok(commit.includes(field), `the commit carries ${field}`);
      assert.deepEqual(await ns.withReadLock(() => ns.keys().sort()), ['a', 'b']);
    });

    it('costs a Session one command to load and one to save (applyChanges is one script)', async () => {
      const namespaceOf = (id: string) => create(id);
      const options = { type: 'redis', url: server.url, prefix, key: 'sid' } as const;
      const first = await Session.open({ headers: {} }, options);
      first.data.n = 1;
      await first.save();
      const cookie = (first.cookieHeader as string).split(';')[0] as string;
      const ns = namespaceOf(first.id);
      let session: Session | undefined;
      const load = await commandsOf(ns, async () => {
        session = await Session.open({ headers: { cookie } }, options);
      });
      assert.equal(load.length, 1, `one command per load: ${JSON.stringify(load)}`);
      const save = await commandsOf(ns, async () => {
        (session as Session).data.n = 2;
        await (session as Session).save();
      });
      assert.equal(save.length, 1, `one command per save: ${JSON.stringify(save)}`);
      assert.equal((await Session.open({ headers: { cookie } }, options)).data.n, 2);
    });

    it('costs a load that records the access time one more command', async () => {
      const options = {
        type: 'redis',
        url: server.url,
        prefix,
        key: 'sid',
        timeout: 60,
        accessResolution: 30,
      } as const;
      const first = await Session.open({ headers: {} }, options);
      first.data.n = 1;
      await first.save();
      const cookie = (first.cookieHeader as string).split(';')[0] as string;
      const ns = create(first.id);
      await ns.withWriteLock(() => ns.set('#accessed', Date.now() - 31_000));
      const load = await commandsOf(ns, () => Session.open({ headers: { cookie } }, options));
      assert.deepEqual(
        load.map((args) => args[0]?.toLowerCase().replace('evalsha', 'eval')),
        ['eval', 'eval'],
        'the read, then one script that writes the access time',
      );
      assert.ok(((await ns.withReadLock(() => ns.get('#accessed'))) as number) >= Date.now() - 5_000);
    });
  });

  describe('writes', () => {
    it('saves a Session that changes 100,000 keys at once, unlocked and under its lock', async () => {
      const options = { type: 'redis', url: server.url, prefix, key: 'sid', commandTimeout: 60_000 } as const;
      const session = await Session.open({ headers: {} }, options);
      const setAll = (value: number) => {
        for (let i = 0; i < 100_000; i++) session.data[`k${i}`] = value;
      };
      setAll(1);
      await session.save();
      await session.withLock(() => setAll(2));
      assert.equal(await raw.hlen(create(session.id).dataKey), 100_002, 'the keys and the two times');
      assert.equal(await raw.hget(create(session.id).dataKey, '=k99999'), '2');
    });

    it('sends the commands of operations started in one event-loop turn in one socket write', async () => {
      const client = new Redis(server.url);
      await client.ping();
      type Write = (...args: unknown[]) => unknown;
      const stream = client.stream as unknown as { _write: Write; _writev: Write; writableCorked: number };
      let writes = 0;
      for (const method of ['_write', '_writev'] as const) {
        const original = stream[method];
        stream[method] = function (this: unknown, ...args: unknown[]) {
          writes++;
          return original.apply(this, args);
        };
      }
      try {
        const managers = Array.from(
          { length: 20 },
          () => new RedisNamespaceManager(`batch-${randomUUID()}`, { client, prefix }),
        );
        const applied = await Promise.all(managers.map((ns, i) => ns.applyChanges(new Map([['n', i]]))));
        assert.deepEqual(applied, Array(20).fill(true));
        assert.ok(writes < 5, `20 commands went out in ${writes} writes`);
        assert.equal(stream.writableCorked, 0, 'the socket is not left corked');
        const values = await Promise.all(managers.map((ns) => ns.withReadLock(() => ns.get('n'))));
        assert.deepEqual(
          values,
          Array.from({ length: 20 }, (_, i) => i),
        );
      } finally {
        await client.quit();
      }
    });
  });

  describe('connecting', () => {
    it('lets many commands wait for one connection with one pair of listeners, not one per command', async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      const client = new Redis(server.url, { lazyConnect: true });
      const listeners = () => client.listenerCount('ready') + client.listenerCount('error');
      const idle = listeners();
      try {
        const managers = Array.from(
          { length: 30 },
          (_, i) => new RedisNamespaceManager(`burst-${i}-${randomUUID()}`, { client, prefix }),
        );
        await Promise.all(managers.map((ns) => ns.withReadLock(() => ns.get('k'))));
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning').map(String), []);
        assert.equal(listeners(), idle, 'none left behind');
      } finally {
        process.off('warning', onWarning);
        await client.quit();
      }
    });
  });

  describe('several clients (machines)', () => {
    let clients: Redis[];
    before(() => {
      clients = [new Redis(server.url), new Redis(server.url)];
    });
    after(() => Promise.all(clients.map((client) => client.quit())));
    const on = (index: number, namespace: string, options: RedisNamespaceManagerOptions = {}) =>
      new RedisNamespaceManager(namespace, { client: clients[index] as Redis, prefix, ...options });

    it('exclude each other: two clients × 10 tasks × 10 increments end at exactly 200', async () => {
      const name = `contended-${randomUUID()}`;
      const holder = on(0, name);
      await holder.acquireWriteLock();
      assert.equal(await on(1, name).acquireWriteLock({ wait: false }), false, 'held by the other client');
      await holder.releaseWriteLock();
      await Promise.all(
        Array.from({ length: 20 }, async (_, task) => {
          const ns = on(task % 2, name);
          for (let i = 0; i < 10; i++) {
            await ns.withWriteLock(() => ns.set('n', ((ns.get('n') as number | undefined) ?? 0) + 1));
          }
        }),
      );
      const reader = on(0, name);
      assert.equal(await reader.withReadLock(() => reader.get('n')), 200);
    });

    it('refuse the commit of a holder whose lease expired while it was paused; the next holder’s data stands', async () => {
      const name = `paused-${randomUUID()}`;
      const lockStale = 500;
      const holder = on(0, name, { lockStale });
      await holder.acquireWriteLock();
      holder.set('value', 'from the paused holder');
      const rival = on(1, name, { lockStale });
      const rivalCommitted = rival.withWriteLock(() => rival.set('value', 'from the rival'), { timeout: 30_000 });
      const pauseUntil = Date.now() + lockStale * 3;
      while (Date.now() < pauseUntil) {
        // The holder's process is paused (its event loop blocked): it cannot renew, Redis expires its lease.
      }
      await rivalCommitted;
      await assert.rejects(holder.releaseWriteLock(), LockCompromisedError);
      assert.equal(holder.lockState, 'none');
      const reader = on(0, name);
      assert.equal(await reader.withReadLock(() => reader.get('value')), 'from the rival');
    });

    for (const [what, plant] of [
      ['a string without a TTL', (key: string) => raw.set(key, 'written by something else')],
      ['a hash', (key: string) => raw.hset(key, 'field', 'value')],
    ] as const) {
      it(`take over a lock key that something else left as ${what} after lockStale, instead of waiting for good`, async () => {
        const ns = create(`foreign-lease-${randomUUID()}`, { lockStale: 500 });
        await plant(ns.leaseKey);
        assert.equal(await ns.acquireWriteLock({ timeout: 10_000 }), true);
        ns.set('after', true);
        await ns.releaseWriteLock();
        const reader = create(ns.namespace);
        assert.equal(await reader.withReadLock(() => reader.get('after')), true);
      });
    }

    it('check the lease inside the commit script: a holder whose lock key now holds another token writes nothing', async () => {
      const name = `fenced-${randomUUID()}`;
      const holder = on(0, name, { lockStale: 60_000 });
      await holder.withWriteLock(() => holder.set('value', 'committed'));
      await holder.acquireWriteLock();
      holder.set('value', 'from the lost holder');
      await raw.set(holder.leaseKey, 'another-holder', 'PX', 60_000);
      await assert.rejects(holder.releaseWriteLock(), LockCompromisedError);
      assert.equal(await raw.get(holder.leaseKey), 'another-holder', 'the other holder keeps its lock');
      assert.deepEqual(await raw.hgetall(holder.dataKey), { value: holder.serializer.stringify('committed') });
    });
  });

  describe('leases', () => {
    it('renews a lease longer than the longest timer delay (2^31 - 1 ms) at most that often, not every millisecond', async () => {
      let renewals = 0;
      class CountingLeaseLock extends RedisLeaseLock {
        protected override extend(token: string): Promise<boolean> {
          renewals++;
          return super.extend(token);
        }
      }
      const key = `${prefix}{long-lease-${randomUUID()}}:lock`;
      const lock = new CountingLeaseLock(new RedisConnection(new URL(server.url), 5000), key, {
        stale: 3 * 2 ** 31,
        name: 'long lease',
      });
      assert.equal(await lock.tryAcquire(), true);
      try {
        assert.ok((await raw.pttl(key)) > 2 ** 31, 'the lease is as long as asked');
        await sleep(200);
        assert.equal(renewals, 0);
      } finally {
        await lock.release();
      }
    });
  });

  describe('Redis Cluster', () => {
    let clusterServer: RedisServer;
    let cluster: Cluster;
    before(async () => {
      clusterServer = await RedisServer.start({ cluster: true });
      cluster = new Cluster([{ host: clusterServer.host, port: clusterServer.port }]);
    });
    after(async () => {
      await cluster.quit();
      await clusterServer.destroy();
    });

    it('works through an ioredis Cluster client: a namespace’s keys share one slot', async () => {
      const name = `cluster-${randomUUID()}`;
      const ns = new RedisNamespaceManager(name, { client: cluster, prefix, ttl: 60_000 });
      const slot = (key: string) => clusterServer.command('CLUSTER', 'KEYSLOT', key);
      assert.equal(await slot(ns.dataKey), await slot(ns.leaseKey));
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          const task = new RedisNamespaceManager(name, { client: cluster, prefix });
          for (let i = 0; i < 5; i++) {
            await task.withWriteLock(() => task.set('n', ((task.get('n') as number | undefined) ?? 0) + 1));
          }
        }),
      );
      assert.equal(await ns.withReadLock(() => ns.get('n')), 25);
      await ns.remove();
      assert.deepEqual(await ns.withReadLock(() => ns.keys()), []);
    });

    it('reads under the write lock from the primary, also when the client reads from replicas (scaleReads)', async () => {
      const replica = await RedisServer.start({ replicaOf: clusterServer });
      const reading = new Cluster([{ host: clusterServer.host, port: clusterServer.port }], { scaleReads: 'slave' });
      try {
        const name = `cluster-${randomUUID()}`;
        const ns = () => new RedisNamespaceManager(name, { client: reading, prefix });
        const first = ns();
        await first.withWriteLock(() => first.set('n', 0));
        await replica.command('CLIENT', 'PAUSE', '5000', 'WRITE');
        for (let i = 0; i < 2; i++) {
          const task = ns();
          await task.withWriteLock(() => task.set('n', (task.get('n') as number) + 1));
        }
        await replica.command('CLIENT', 'UNPAUSE');
        const check = new RedisNamespaceManager(name, { client: cluster, prefix });
        assert.equal(await check.withReadLock(() => check.get('n')), 2);
      } finally {
        await reading.quit();
        await replica.destroy();
      }
    });

    it("reads the clock for an unlocked save on the namespace's primary, not on another, maybe hung, one", async () => {
      const first = await RedisServer.start({ cluster: true });
      const second = await RedisServer.start({ secondPrimaryOf: first });
      const slot = async (key: string) => Number((await first.command('CLUSTER', 'KEYSLOT', key)).slice(1));
      try {
        let name = `clock-${randomUUID()}`;
        while ((await slot(new RedisNamespaceManager(name, { url: first.url, prefix }).dataKey)) >= 8192) {
          name = `clock-${randomUUID()}`;
        }
        second.pause();
        for (let i = 0; i < 6; i++) {
          const client = new Cluster([{ host: first.host, port: first.port }], { enableReadyCheck: false });
          try {
            const ns = new RedisNamespaceManager(name, { client, prefix, commandTimeout: 2000 });
            assert.equal(await ns.applyChanges(new Map([['n', i]])), true, `client ${i}`);
          } finally {
            client.disconnect();
          }
        }
      } finally {
        second.resume();
        await second.destroy();
        await first.destroy();
      }
    });

    it('keeps both keys of any namespace in one slot, empty or starting with } included, each namespace apart', async () => {
      const names = ['', '}', '}abc', '%', '%7D', '%%7Dabc', '%}', 'a}b', '{x}', '{}', 'user-42'];
      const slot = (key: string) => clusterServer.command('CLUSTER', 'KEYSLOT', key);
      const managers = names.map((name) => new RedisNamespaceManager(name, { client: cluster, prefix }));
      for (const ns of managers) {
        assert.equal(await slot(ns.dataKey), await slot(ns.leaseKey), JSON.stringify(ns.namespace));
        await ns.withWriteLock(() => ns.set('name', ns.namespace));
      }
      const keys = managers.flatMap((ns) => [ns.dataKey, ns.leaseKey]);
      assert.equal(new Set(keys).size, keys.length, 'no two namespaces share a key');
      for (const ns of managers) {
        const reader = new RedisNamespaceManager(ns.namespace, { client: cluster, prefix });
        assert.deepEqual(await reader.withReadLock(() => reader.keys()), ['name']);
        assert.equal(await reader.withReadLock(() => reader.get('name')), ns.namespace);
        await reader.remove();
      }
    });
  });

  describe('outage', () => {
    let own: RedisServer;
    before(async () => {
      own = await RedisServer.start();
    });
    after(() => own.destroy());

    /**
     * With Redis made unavailable by `begin`: a commit, a read and a lock each reject with a
     * StorageError naming the address (and matching `reason`), no lock stays held and no
     * rejection goes unhandled. After `end`, it works again.
     */
    async function checkOutage(begin: () => unknown, end: () => unknown, reason: RegExp): Promise<void> {
      const unhandled: unknown[] = [];
      const onUnhandled = (error: unknown) => unhandled.push(error);
      process.on('unhandledRejection', onUnhandled);
      const storageError = (error: unknown) => {
        assert.ok(error instanceof StorageError, String(error));
        assert.equal(error.code, 'ERR_STORAGE');
        assert.ok(error.message.includes(`127.0.0.1:${own.port}`), error.message);
        assert.match(error.message, reason);
        return true;
      };
      try {
        const options = { url: own.url, prefix, commandTimeout: 500, lockStale: 1000 };
        const name = `outage-${randomUUID()}`;
        const holder = new RedisNamespaceManager(name, options);
        await holder.acquireWriteLock();
        holder.set('during', true);
        await begin();
        await assert.rejects(holder.releaseWriteLock(), storageError, 'commit');
        assert.equal(holder.lockState, 'none');
        const ns = new RedisNamespaceManager(name, options);
        await assert.rejects(ns.acquireReadLock(), storageError, 'read');
        await assert.rejects(ns.acquireWriteLock(), storageError, 'lock');
        assert.equal(ns.lockState, 'none');
        await end();
        await eventually(() => ns.withWriteLock(() => ns.set('after', true)));
        assert.equal(await ns.withReadLock(() => ns.get('after')), true, 'works again');
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    }

    /** Runs `test` with a TCP proxy in front of the outage server; closes the proxy and the url clients after it. */
    async function throughProxy(test: (proxy: TcpProxy, url: string) => Promise<void>): Promise<void> {
      const proxy = await TcpProxy.start(own.port);
      try {
        await test(proxy, `redis://127.0.0.1:${proxy.port}`);
      } finally {
        await RedisNamespaceManager.closeConnections();
        await proxy.close();
      }
    }

    it('rejects commit, read and lock with a StorageError naming the address while Redis is down, then recovers', () =>
      checkOutage(
        () => own.stop(),
        () => own.start(),
        /ECONNREFUSED|closed|isn't writeable/,
      ));

    it('rejects them after commandTimeout when Redis stops answering (a hung server), then recovers', () =>
      checkOutage(
        () => own.pause(),
        () => own.resume(),
        /no reply within 500 ms/,
      ));

    it('refuses every command when the url names a database the server refuses, instead of writing to database 0', async () => {
      const options = { url: `${own.url}/99`, prefix, commandTimeout: 2000 };
      try {
        for (let i = 0; i < 3; i++) {
          const ns = new RedisNamespaceManager(`baddb-${i}`, options);
          await assert.rejects(ns.applyChanges(new Map([['k', i]])), StorageError);
        }
        const database0 = new Redis(own.url);
        try {
          assert.deepEqual(await database0.keys(`${prefix}*baddb*`), []);
        } finally {
          await database0.quit();
        }
      } finally {
        await RedisNamespaceManager.closeConnections();
      }
    });

    it('rejects a command in flight when its connection drops at once, not after commandTimeout, then works', () =>
      throughProxy(async (proxy, url) => {
        const options = { url, prefix, commandTimeout: 5000 };
        const ns = new RedisNamespaceManager(`dropped-${randomUUID()}`, options);
        await ns.withWriteLock(() => ns.set('before', true));
        const lost = proxy.swallowNext();
        const read = ns.acquireReadLock();
        await lost;
        proxy.cut();
        await assert.rejects(read, (error: unknown) => {
          assert.ok(error instanceof StorageError, String(error));
          assert.doesNotMatch(String((error as Error).cause), /commandTimeout/);
          return true;
        });
        assert.equal(await ns.withReadLock(() => ns.get('before')), true);
      }));

    for (const firstTime of ['on time', 'delayed on the way to Redis']) {
      it(`never applies an unlocked save that reaches Redis after its commandTimeout over a newer save (first TIME ${firstTime})`, () =>
        throughProxy(async (proxy, url) => {
          const name = `late-${randomUUID()}`;
          const late = new RedisNamespaceManager(name, { url, prefix, commandTimeout: 1000 });
          await late.withReadLock(() => {});
          if (firstTime !== 'on time') {
            proxy.hold();
            await assert.rejects(late.applyChanges(new Map([['cart', 'first']])), StorageError);
            await sleep(1000);
            proxy.deliverHeld();
          }
          await late.applyChanges(new Map([['cart', 'first']]));
          proxy.hold();
          await assert.rejects(late.applyChanges(new Map([['cart', 'stale']])), StorageError);
          const other = new RedisNamespaceManager(name, { url: own.url, prefix });
          await other.applyChanges(new Map([['cart', 'newer']]));
          proxy.deliverHeld();
          // Sent after the held save on the same connection, so it runs after it.
          assert.equal(await late.withReadLock(() => late.get('cart')), 'newer');
        }));
    }

    it("measures Redis's clock again when the reply to TIME came late, instead of refusing every later unlocked save", () =>
      throughProxy(async (proxy, url) => {
        const ns = new RedisNamespaceManager(`clock-${randomUUID()}`, { url, prefix, commandTimeout: 1000 });
        await ns.withReadLock(() => {});
        proxy.hold('replies');
        await assert.rejects(ns.applyChanges(new Map([['cart', 'first']])), StorageError);
        await sleep(2000);
        proxy.deliverHeld();
        await ns.applyChanges(new Map([['cart', 'second']]));
        assert.equal(await ns.withReadLock(() => ns.get('cart')), 'second');
      }));

    it("measures Redis's clock again on each new connection of a client (it may reach another server)", async () => {
      const client = new Redis(own.url);
      const monitor = await client.monitor();
      const sent: string[] = [];
      const clockSha = createHash('sha1').update(READ_CLOCK.lua).digest('hex');
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source === 'lua') return;
        const [command, script] = [String(args[0]).toLowerCase(), String(args[1])];
        const readsClock = script === clockSha || script === READ_CLOCK.lua;
        sent.push(readsClock ? `clock ${command}` : command);
      });
      try {
        const ns = new RedisNamespaceManager(`clock-${randomUUID()}`, { client, prefix });
        await ns.applyChanges(new Map([['n', 1]]));
        await ns.applyChanges(new Map([['n', 2]]));
        client.disconnect(true);
        await eventually(() => ns.applyChanges(new Map([['n', 3]])));
        await ns.applyChanges(new Map([['n', 4]]));
        await client.echo('done');
        while (!sent.includes('echo')) await sleep(10);
        assert.equal(
          sent.filter((command) => command.startsWith('clock')).length,
          2,
          'one reading of the clock per connection',
        );
      } finally {
        client.disconnect();
        monitor.disconnect();
      }
    });

    it('sends a release lost with its connection again, so the lock is free at once, not after lockStale', () =>
      throughProxy(async (proxy, url) => {
        const options = { url, prefix, commandTimeout: 5000, lockStale: 60_000 };
        const holder = new RedisNamespaceManager(`release-dropped-${randomUUID()}`, options);
        await holder.acquireWriteLock();
        const lost = proxy.swallowNext();
        const release = holder.releaseWriteLock();
        await lost;
        proxy.cut();
        await release;
        const direct = new Redis(own.url);
        try {
          assert.equal(await direct.exists(holder.leaseKey), 0, 'the lease is gone');
        } finally {
          await direct.quit();
        }
      }));

    it('leaves no lease behind when a lock request timed out on a hung server that runs it later', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (error: unknown) => unhandled.push(error);
      process.on('unhandledRejection', onUnhandled);
      try {
        const options = { url: own.url, prefix, commandTimeout: 300 };
        const ns = new RedisNamespaceManager(`strand-${randomUUID()}`, options);
        await eventually(() => ns.withWriteLock(() => ns.set('k', 1)));
        own.pause();
        try {
          await assert.rejects(ns.acquireWriteLock(), StorageError);
        } finally {
          own.resume();
        }
        // Answered on the same connection after whatever was sent before it.
        const other = new RedisNamespaceManager(`strand-other-${randomUUID()}`, options);
        await eventually(() => other.withReadLock(() => {}));
        assert.equal(await own.command('EXISTS', ns.leaseKey), ':0\r\n', 'the lease Redis took late is gone');
        const reader = new RedisNamespaceManager(ns.namespace, { ...options, lockTimeout: 0 });
        assert.equal(await reader.withReadLock(() => reader.get('k')), 1);
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    it('closeConnections() disconnects a client whose QUIT a hung server does not answer within commandTimeout', async () => {
      const ns = new RedisNamespaceManager(`close-${randomUUID()}`, { url: own.url, prefix, commandTimeout: 300 });
      await eventually(() => ns.withWriteLock(() => ns.set('k', 1)));
      own.pause();
      let resumed = false;
      // Only so that a close that waits for Redis ends the test instead of hanging it.
      const resume = setTimeout(() => {
        resumed = true;
        own.resume();
      }, 15_000);
      try {
        await RedisNamespaceManager.closeConnections();
        assert.equal(resumed, false, 'closeConnections() waited for the hung server to answer');
      } finally {
        clearTimeout(resume);
        own.resume();
      }
      await eventually(() => ns.withReadLock(() => ns.get('k')));
      assert.equal(await ns.withReadLock(() => ns.get('k')), 1, 'a later use opens a new connection');
    });
  });

  describe('loading and options', () => {
    it('does not load ioredis until a redis namespace is used', () => {
      const script = `
        import { createRequire } from 'node:module';
        const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('/ioredis/'));
        const { RedisNamespaceManager } = await import(${JSON.stringify(new URL('../../lib/index.ts', import.meta.url).href)});
        const ns = new RedisNamespaceManager('x', { url: ${JSON.stringify(server.url)} });
        const before = loaded();
        await ns.withReadLock(() => {});
        console.log(JSON.stringify([before, loaded()]));`;
      const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
      assert.deepEqual(JSON.parse(output.toString()), [false, true]);
    });

    it('keeps the process alive until closeConnections() has closed the connection, so code after it runs', () => {
      const script = `
        const { RedisNamespaceManager } = await import(${JSON.stringify(new URL('../../lib/index.ts', import.meta.url).href)});
        async function main() {
          const ns = new RedisNamespaceManager('shutdown', { url: ${JSON.stringify(server.url)}, prefix: ${JSON.stringify(prefix)} });
          await ns.withWriteLock(() => ns.set('k', 1));
          await RedisNamespaceManager.closeConnections();
          console.log('after closeConnections');
        }
        main().catch((error) => console.log(String(error)));`;
      const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
      assert.equal(output.toString(), 'after closeConnections\n');
    });

    it('throws a TypeError naming the option and the value for bad options', () => {
      const cases: [RedisNamespaceManagerOptions, RegExp][] = [
        [{ prefix: 'a{b}' }, /prefix.*"a\{b\}"/],
        [{ commandTimeout: 0 }, /commandTimeout.*0/],
        [{ commandTimeout: 2 ** 31 }, /commandTimeout must be a number >= 1 and <= 2147483647, received 2147483648/],
        [{ ttl: -5 }, /ttl.*-5/],
        [{ ttl: 1e21 }, /ttl must be a number >= 1 and <= 9007199254740991, received 1e\+21/],
        [{ ttl: 2 ** 53 }, /ttl.*9007199254740992/],
        [{ url: 'http://localhost' }, /url.*"http:\/\/localhost"/],
        [{ client: 'redis://localhost' as unknown as Redis }, /client.*"redis:\/\/localhost"/],
        [{ client: raw, url: server.url }, /client or url/],
      ];
      for (const [options, message] of cases) {
        assert.throws(
          () => new RedisNamespaceManager('x', options),
          (error: unknown) => {
            assert.ok(error instanceof TypeError);
            assert.match(error.message, message);
            return true;
          },
        );
      }
    });
  });
}

/** Retries `operation` while it fails with StorageError (a client reconnecting), up to 50 times. */
async function eventually(operation: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await operation();
      return;
    } catch (error) {
      if (!(error instanceof StorageError) || attempt === 50) throw error;
      await sleep(100);
    }
  }
}
