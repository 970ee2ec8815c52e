/**
 * The Session suite: every backend runs it unchanged.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cipherFor } from '../../lib/cipher.js';
import {
  createNamespaceManager,
  type EncodedChanges,
  type EncodedEntries,
  LockStateError,
  type MemoryNamespaceManager,
  type NamespaceManager,
  namespaceManagerClass,
  SerializationError,
  Session,
  SessionCorruptError,
  SessionNotLoadedError,
  type SessionOptions,
  StorageError,
  UndecodableValueError,
} from '../../lib/index.js';
import { type BackendFixture, type BackendType, createFixture } from '../fixtures/backends.js';
import { spawnScript } from '../fixtures/processes.js';
import { stateAfter } from '../fixtures/promise-state.js';

const SESSION_WORKER = fileURLToPath(new URL('../fixtures/session-worker.ts', import.meta.url));

/** A request carrying `cookie` among unrelated cookies. */
function requestWith(cookie?: string) {
  return { headers: { cookie: cookie ? `theme=dark; ${cookie}; other=1` : 'theme=dark' } };
}

/** `name=value` of a Set-Cookie header. */
function cookiePair(setCookie: string | undefined): string {
  assert.ok(setCookie, 'a Set-Cookie header is due');
  return setCookie.split(';')[0] as string;
}

export function sessionConformance(type: BackendType): void {
  describe(`Session conformance: ${type}`, () => {
    let backend: BackendFixture;
    let options: SessionOptions;
    let logs: string[];

    before(async () => {
      backend = await createFixture(type);
      logs = [];
      options = {
        ...backend.options,
        type,
        key: 'sid',
        log: (line) => logs.push(line),
      };
    });
    after(() => backend.cleanup());

    /** The storage of session `id`, through a manager given the backend's options (not the Session's `type` and `key`). */
    const storageOf = (id: string, extra: Record<string, unknown> = {}): NamespaceManager => {
      const { type: _type, key: _key, ...storage } = options as Record<string, unknown>;
      return createNamespaceManager(type, id, { ...storage, log: () => {}, ...extra });
    };
    const storedKeys = async (id: string) => {
      const manager = storageOf(id);
      return manager.withReadLock(() => manager.keys());
    };
    const storedValue = async (id: string, key: string) => {
      const manager = storageOf(id);
      return manager.withReadLock(() => manager.get(key));
    };
    const setStored = async (id: string, key: string, value: unknown) => {
      const manager = storageOf(id);
      await manager.withWriteLock(() => manager.set(key, value));
    };
    /** A stored session with `data`; returns its cookie pair. */
    const storedSession = async (data: Record<string, unknown> = {}, extra: SessionOptions = {}) => {
      const session = await Session.open(requestWith(), { ...options, ...extra });
      Object.assign(session.data, data);
      await session.save();
      return { id: session.id, cookie: cookiePair(session.cookieHeader) };
    };
    /** Counts the commits a Session makes to storage, through a `namespaceClass` subclass of the backend. */
    const countingOptions = (counter: { writes: number }): SessionOptions => {
      const Base = namespaceManagerClass(type) as unknown as typeof MemoryNamespaceManager;
      class Counting extends Base {
        protected override writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
          counter.writes++;
          return super.writeCommitted(changes, entries);
        }
        protected override async applyAtomically(changes: EncodedChanges, requireKey: string | undefined) {
          const outcome = await super.applyAtomically(changes, requireKey);
          if (outcome === 'applied') counter.writes++;
          return outcome;
        }
      }
      return { ...options, namespaceClass: Counting };
    };

    describe('loading and saving', () => {
      it('starts a new session without a cookie, stores it on save(), and loads it from its cookie', async () => {
        const first = new Session(requestWith(), options);
        await first.load();
        assert.equal(first.isNew, true);
        assert.equal(first.wasInvalidated, false);
        assert.equal(first.cookieHeader, undefined, 'nothing to point to before a save');
        first.data.user = 'ann';
        await first.save();
        const cookie = cookiePair(first.cookieHeader);
        assert.deepEqual(await storedKeys(first.id).then((keys) => keys.includes('=user')), true);

        const second = await Session.open(requestWith(cookie), options);
        assert.equal(second.isNew, false);
        assert.equal(second.id, first.id);
        assert.equal(second.data.user, 'ann');
        assert.equal(second.accessed.getTime(), first.accessed.getTime(), 'accessed is the previous access');
        assert.equal(second.cookieHeader, undefined, 'the browser has the right cookie already');
      });

      it('stores an explicitly saved new session even when it is empty', async () => {
        const session = await Session.open(requestWith(), options);
        await session.save();
        const again = await Session.open(requestWith(cookiePair(session.cookieHeader)), options);
        assert.equal(again.isNew, false);
      });

      it('reloads its current id when load() is called again: saved, never saved, regenerated, removed elsewhere', async () => {
        const fresh = await Session.open(requestWith(), options);
        fresh.data.n = 1;
        await fresh.save();
        const savedId = fresh.id;
        fresh.data.n = 2;
        await fresh.load();
        assert.equal(fresh.id, savedId, 'the saved session, not another new one');
        assert.equal(fresh.isNew, false);
        assert.deepEqual(fresh.data, { n: 1 }, 'the unsaved change is dropped');
        assert.ok(fresh.cookieHeader?.startsWith(`sid=`), 'the browser still needs the cookie');

        const unsaved = await Session.open(requestWith(), options);
        const unsavedId = unsaved.id;
        unsaved.data.x = 1;
        await unsaved.load();
        assert.equal(unsaved.id, unsavedId);
        assert.deepEqual(unsaved.data, {});

        const { id: oldId, cookie } = await storedSession({ v: 1 });
        const moved = await Session.open(requestWith(cookie), options);
        await moved.regenerate();
        const newId = moved.id;
        await moved.load();
        assert.equal(moved.id, newId, 'the regenerated id, not the removed one from the cookie');
        assert.notEqual(newId, oldId);
        assert.deepEqual(moved.data, { v: 1 });

        const timed = { ...options, timeout: 1 };
        const { id: idleId, cookie: idleCookie } = await storedSession({ v: 1 }, timed);
        await setStored(idleId, '#accessed', Date.now() - 2000);
        const restarted = await Session.open(requestWith(idleCookie), timed);
        assert.equal(restarted.wasInvalidated, true);
        restarted.data.w = 1;
        await restarted.save();
        await restarted.load();
        assert.equal(restarted.wasInvalidated, false, 'this load invalidated nothing');
        assert.deepEqual(restarted.data, { w: 1 });

        const gone = await Session.open(requestWith(cookiePair(fresh.cookieHeader)), options);
        await storageOf(savedId).remove();
        await gone.load();
        assert.notEqual(gone.id, savedId, 'removed by another request: a new session');
        assert.equal(gone.isNew, true);
        assert.equal(gone.wasInvalidated, true);
      });

      it('round trips a key named __proto__ as an own key, and reports a getter that throws as SerializationError', async () => {
        const session = await Session.open(requestWith(), options);
        session.data = JSON.parse('{"__proto__": {"role": "admin"}, "user": "eve"}');
        await session.save();
        const loaded = await Session.open(requestWith(cookiePair(session.cookieHeader)), options);
        assert.deepEqual(Object.keys(loaded.data).sort(), ['__proto__', 'user']);
        assert.ok(Object.hasOwn(loaded.data, '__proto__'));
        assert.equal(Object.getPrototypeOf(loaded.data), Object.prototype, 'the prototype is untouched');
        assert.equal((loaded.data as { role?: string }).role, undefined);
        loaded.data.other = 1;
        await loaded.save();
        const again = await Session.open(requestWith(cookiePair(session.cookieHeader)), options);
        assert.deepEqual(Object.keys(again.data).sort(), ['__proto__', 'other', 'user'], 'an unrelated save keeps it');
        assert.deepEqual(Object.getOwnPropertyDescriptor(again.data, '__proto__')?.value, { role: 'admin' });

        const getter = await Session.open(requestWith(), options);
        getter.data = Object.defineProperty({}, 'g', {
          enumerable: true,
          get() {
            throw new Error('no');
          },
        });
        await assert.rejects(
          getter.save(),
          (error: unknown) =>
            error instanceof SerializationError && /data\.g: its getter threw: no/.test(error.message),
        );
      });

      it('loads back every value it saves: refuses objects nested more than 1000 deep with SerializationError', async () => {
        const nest = (depth: number) => {
          let value: unknown = new Date(0);
          for (let i = 0; i < depth; i++) value = { a: value };
          return value;
        };
        const { cookie } = await storedSession({ deep: nest(1000) });
        assert.deepEqual((await Session.open(requestWith(cookie), options)).data.deep, nest(1000));
        const session = await Session.open(requestWith(cookie), options);
        session.data.deeper = nest(1001);
        await assert.rejects(
          session.save(),
          (e: unknown) => e instanceof SerializationError && e.path === 'data.deeper' && /1000 deep/.test(e.message),
        );
      });

      it('takes only a plain object as data: a Map, a Date or a class instance is a TypeError, not a lost save', async () => {
        const { cookie } = await storedSession({ user: 'ann' });
        const session = await Session.open(requestWith(cookie), options);
        class Cart {
          items = ['x'];
        }
        for (const data of [new Map([['user', 'bob']]), new Date(), new Cart(), [], Object.create({ user: 'bob' })]) {
          assert.throws(
            () => {
              session.data = data;
            },
            (e: unknown) => e instanceof TypeError && /data must be a plain object/.test(e.message),
          );
        }
        await session.save();
        assert.deepEqual((await Session.open(requestWith(cookie), options)).data, { user: 'ann' });
        session.data = Object.assign(Object.create(null), { user: 'cy' });
        await session.save();
        assert.deepEqual({ ...(await Session.open(requestWith(cookie), options)).data }, { user: 'cy' });
      });

      it('refuses data keys and namespace names it cannot store with SerializationError naming them as written', async () => {
        const counter = { writes: 0 };
        const { cookie } = await storedSession({ n: 1 });
        const session = await Session.open(requestWith(cookie), countingOptions(counter));
        const refused = (path: string, reason: RegExp) => (e: unknown) =>
          e instanceof SerializationError && e.path === path && reason.test(e.message) && !e.message.includes('"=');
        for (const key of ['x\udc00', 'k'.repeat(1024), '名'.repeat(342)]) {
          session.revert();
          session.data[key] = 1;
          await assert.rejects(session.save(), refused(`data.${key}`, /well-formed|too long/), key.slice(0, 9));
        }
        assert.equal(counter.writes, 0);
        for (const name of ['n\ud800', 'n'.repeat(1023), '='.repeat(341), '名'.repeat(120)]) {
          assert.throws(() => session.namespace(name), refused(`namespace(${name})`, /well-formed|too long/));
        }
        session.revert();
        session.data['k'.repeat(1023)] = 1;
        session.namespace('名'.repeat(110)).k = 2;
        session.namespace('a=b%c').k = 3;
        await session.save();
        const loaded = await Session.open(requestWith(cookie), options);
        assert.equal(loaded.data['k'.repeat(1023)], 1);
        assert.equal(loaded.namespace('名'.repeat(110)).k, 2);
        assert.equal(loaded.namespace('a=b%c').k, 3);
      });

      it('keeps namespace keys stored by earlier versions through load(), withLock() and save()', async () => {
        const { id, cookie } = await storedSession({ n: 1 });
        const manager = storageOf(id);
        const name = '名 /x';
        await manager.withWriteLock(() => manager.set(`:${encodeURIComponent(name)}=k`, 'old'));
        const session = await Session.open(requestWith(cookie), options);
        assert.equal(session.modified, false, 'nothing to rewrite');
        await session.withLock((s) => {
          s.data.z = 1;
        });
        assert.equal(session.namespace(name).k, 'old');
        const other = await Session.open(requestWith(cookie), options);
        other.namespace(name).k = 'new';
        await other.save();
        await session.save();
        const loaded = await Session.open(requestWith(cookie), options);
        assert.equal(loaded.namespace(name).k, 'new', "another request's change is not overwritten");
        assert.deepEqual(
          (await storedKeys(id)).filter((key) => key.startsWith(':')),
          [`:${encodeURIComponent(name)}=k`],
        );
      });

      it('refuses symbol keys and non-enumerable properties of data and namespaces instead of dropping them', async () => {
        const { cookie } = await storedSession({ n: 1 });
        const cases: [(session: Session) => void, string, RegExp][] = [
          [(session) => Object.assign(session.data, { [Symbol('cart')]: [1] }), 'data', /symbol keys/],
          [(session) => Object.defineProperty(session.data, 'cart', { value: [1] }), 'data.cart', /non-enumerable/],
          [(session) => Object.assign(session.namespace('shop'), { [Symbol('c')]: 1 }), 'namespace(shop)', /symbol/],
        ];
        for (const [change, path, reason] of cases) {
          const session = await Session.open(requestWith(cookie), options);
          change(session);
          await assert.rejects(
            session.save(),
            (e: unknown) => e instanceof SerializationError && e.path === path && reason.test(e.message),
          );
        }
      });

      it('names the property or method used before load() in SessionNotLoadedError', async () => {
        const session = new Session(requestWith(), options);
        const uses: [() => unknown, string][] = [
          [() => session.data, 'Session.data needs'],
          [() => session.id, 'Session.id needs'],
          [() => session.namespace('x'), 'Session.namespace() needs'],
        ];
        for (const [use, message] of uses) {
          assert.throws(use, (e: unknown) => e instanceof SessionNotLoadedError && e.message.startsWith(message));
        }
        await assert.rejects(session.save(), (e: unknown) => (e as Error).message.startsWith('Session.save() needs'));
      });

      it('works without a request, with useCookies: false and an id', async () => {
        const { id } = await storedSession({ n: 7 });
        const session = await Session.open(undefined, { ...options, useCookies: false, id });
        assert.equal(session.isNew, false);
        assert.equal(session.data.n, 7);
        assert.equal(session.cookieHeader, undefined);
      });

      it('round trips Dates, and rejects a function, a symbol or a cycle with SerializationError before writing', async () => {
        const counter = { writes: 0 };
        const { cookie } = await storedSession({ when: new Date('2021-05-06T07:08:09.010Z') });
        const session = await Session.open(requestWith(cookie), countingOptions(counter));
        assert.deepEqual(session.data.when, new Date('2021-05-06T07:08:09.010Z'));
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        for (const bad of [() => 1, Symbol('s'), cyclic]) {
          session.data.fine = 'x';
          session.data.bad = bad;
          await assert.rejects(
            session.save(),
            (e: unknown) => e instanceof SerializationError && /data\.bad/.test(e.message),
          );
        }
        assert.equal(counter.writes, 0);
      });
    });

    describe('concurrency', () => {
      it('loads 20 concurrent requests of one unlocked session without any waiting for another', async () => {
        const { cookie } = await storedSession({ n: 1 });
        logs.length = 0;
        const sessions = await Promise.all(
          Array.from({ length: 20 }, () => Session.open(requestWith(cookie), options)),
        );
        assert.ok(sessions.every((s) => s.data.n === 1 && !s.isNew));
        assert.deepEqual(
          logs.filter((line) => line.includes('waiting')),
          [],
        );
      });

      it('makes a load wait while another request holds lock(), then shows what it saved', async () => {
        const { cookie } = await storedSession({ n: 1 });
        const a = await Session.open(requestWith(cookie), options);
        await a.lock();
        assert.equal(a.locked, true);
        a.data.n = 2;
        logs.length = 0;
        let bSettled = false;
        const b = Session.open(requestWith(cookie), options).then((s) => {
          bSettled = true;
          return s;
        });
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(bSettled, false, 'the load waits for the lock');
        await a.save();
        await a.unlock();
        assert.equal((await b).data.n, 2);
        assert.ok(
          logs.some((line) => line.startsWith('waiting for the read lock')),
          'the wait is logged',
        );
      });

      it('loads under the lock with load({ lock: true }): others wait, and new or invalidated sessions are locked too', async () => {
        const { cookie } = await storedSession({ n: 1 });
        const a = new Session(requestWith(cookie), options);
        await a.load({ lock: true });
        assert.equal(a.locked, true);
        a.data.n = 2;
        const b = Session.open(requestWith(cookie), options);
        assert.equal(await stateAfter(b, 100), 'pending');
        await a.save();
        await a.unlock();
        assert.equal((await b).data.n, 2);

        const fresh = new Session(requestWith('sid=nothing-stored-under-this-id'), options);
        await fresh.load({ lock: true });
        assert.equal(fresh.isNew, true);
        assert.equal(fresh.locked, true);
        await fresh.unlock();

        const timed = { ...options, timeout: 1 };
        const idle = await storedSession({ old: true }, timed);
        await setStored(idle.id, '#accessed', Date.now() - 2000);
        const expired = new Session(requestWith(idle.cookie), timed);
        await expired.load({ lock: true });
        assert.equal(expired.wasInvalidated, true);
        assert.equal(expired.locked, true);
        assert.deepEqual(await storedKeys(idle.id), []);
        await expired.unlock();
      });

      it('always unlocks after withLock, also when the function throws, and undoes what the function changed', async () => {
        const { cookie } = await storedSession({ n: 1 });
        const a = await Session.open(requestWith(cookie), options);
        a.data.before = true;
        await assert.rejects(
          a.withLock((s) => {
            s.data.n = 99;
            s.namespace('cart').items = ['x'];
            throw new Error('handler failed');
          }),
          /handler failed/,
        );
        assert.equal(a.locked, false);
        assert.deepEqual(a.data, { n: 1, before: true }, 'changes made before withLock stay, its own are undone');
        assert.deepEqual(a.namespace('cart'), {});
        await assert.rejects(
          a.withLock(async (s) => {
            s.data.n = 2;
            await s.save();
            s.data.n = 3;
            throw new Error('handler failed after saving');
          }),
          /after saving/,
        );
        assert.equal(a.data.n, 2, 'what the function saved stays; only what it changed after is undone');
        a.data.n = 1;
        await a.save();
        const b = await Session.open(requestWith(cookie), { ...options, lockTimeout: 5000 });
        assert.equal(b.data.n, 1, 'a throwing withLock saves nothing');
        await b.withLock((s) => {
          s.data.n += 1;
        });
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 2);
      });

      it('undoes what a withLock function changed when its save fails, so a retry applies it once', async () => {
        const failures = { left: 0 };
        const Base = namespaceManagerClass(type) as unknown as typeof MemoryNamespaceManager;
        class Failing extends Base {
          protected override writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
            if (failures.left-- > 0) return Promise.reject(new StorageError('test://', 'write'));
            return super.writeCommitted(changes, entries);
          }
        }
        const { cookie } = await storedSession({ n: 0 });
        const a = await Session.open(requestWith(cookie), { ...options, namespaceClass: Failing });
        failures.left = 1;
        await assert.rejects(
          a.withLock((s) => {
            s.data.n += 1;
          }),
          StorageError,
        );
        assert.deepEqual(a.data, { n: 0 });
        await (await Session.open(requestWith(cookie), options)).withLock((s) => {
          s.data.n += 10;
        });
        await a.withLock((s) => {
          s.data.n += 1;
        });
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 11);
      });

      it("rejects with the function's or the save's own error when releasing the lock fails too, and logs the release's", async () => {
        const failing = { writes: 0, releases: 0, removals: 0 };
        const Base = namespaceManagerClass(type) as unknown as typeof MemoryNamespaceManager;
        class Failing extends Base {
          protected override writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
            if (failing.writes-- > 0) return Promise.reject(new StorageError('test://', 'write'));
            return super.writeCommitted(changes, entries);
          }
          protected override removeCommitted(): Promise<void> {
            if (failing.removals-- > 0) return Promise.reject(new StorageError('test://', 'remove'));
            return super.removeCommitted();
          }
          protected override async unlockStorage(): Promise<void> {
            await super.unlockStorage();
            if (failing.releases-- > 0) throw new StorageError('test://', 'unlock');
          }
        }
        const { cookie } = await storedSession({ n: 0 });
        const lines: string[] = [];
        const failingOptions = { ...options, namespaceClass: Failing, log: (line: string) => lines.push(line) };
        const a = await Session.open(requestWith(cookie), failingOptions);
        const own = new Error('the function failed');
        failing.releases = 1;
        await assert.rejects(
          a.withLock(() => {
            throw own;
          }),
          (error) => error === own,
        );
        Object.assign(failing, { writes: 1, releases: 1 });
        await assert.rejects(
          a.withLock((s) => {
            s.data.n += 1;
          }),
          (error) => error instanceof StorageError && error.message.includes('write'),
        );
        Object.assign(failing, { writes: 1, releases: 2 }); // the new id's lock, then the old one's
        await assert.rejects(
          a.regenerate(),
          (error) => error instanceof StorageError && error.message.includes('write'),
        );
        const idle = await storedSession({ old: true });
        await setStored(idle.id, '#accessed', Date.now() - 2000);
        Object.assign(failing, { removals: 1, releases: 1 });
        await assert.rejects(
          Session.open(requestWith(idle.cookie), { ...failingOptions, timeout: 1 }),
          (error) => error instanceof StorageError && error.message.includes('remove'),
        );
        assert.equal(
          lines.filter((line) => /could not release the lock of session .* after an error/.test(line)).length,
          4,
          lines.join('\n'),
        );
        assert.equal(a.locked, false);
        const b = await Session.open(requestWith(cookie), { ...options, lockTimeout: 5000 });
        await b.withLock((s) => {
          s.data.n += 1;
        });
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 1);
      });

      it('shares one lock among overlapping lock(), withLock(), save() and unlock() calls of one Session, and frees it', async () => {
        const overlapping: [string, (session: Session) => Promise<unknown>[]][] = [
          ['lock, lock', (session) => [session.lock(), session.lock()]],
          [
            'withLock, withLock',
            (session) => [
              session.withLock(async (s) => {
                await new Promise((resolve) => setTimeout(resolve, 5));
                s.data.a = 1;
              }),
              session.withLock((s) => {
                s.data.b = 1;
              }),
            ],
          ],
          ['withLock, lock', (session) => [session.withLock(() => {}), session.lock()]],
          ['lock, withLock', (session) => [session.lock(), session.withLock(() => {})]],
          ['lock, save', (session) => [session.lock(), session.save()]],
          ['lock, unlock', (session) => [session.lock(), session.unlock()]],
        ];
        for (const [label, calls] of overlapping) {
          const { id, cookie } = await storedSession({ n: 1 });
          const session = await Session.open(requestWith(cookie), options);
          session.data.q = 1;
          const outcomes = await Promise.allSettled(calls(session));
          assert.deepEqual(
            outcomes.map((outcome) => (outcome.status === 'rejected' ? String(outcome.reason) : 'ok')),
            outcomes.map(() => 'ok'),
            label,
          );
          if (session.locked) await session.unlock();
          const other = await Session.open(requestWith(cookie), options);
          await other.lock({ timeout: 0 });
          await other.unlock();
          const saves = label.includes('save') || label.includes('withLock');
          assert.equal(other.data.q, saves ? 1 : undefined, `${label}: what was saved`);
          assert.equal(other.id, id);
        }
        await assert.rejects(
          (async () => {
            const session = await Session.open(requestWith(), options);
            const locking = session.lock();
            await session.load().finally(() => locking.then(() => session.unlock()));
          })(),
          LockStateError,
          'load() while a lock() is under way',
        );
      });

      it('runs overlapping withLock() calls of one Session under one lock, each to its end', async () => {
        const { cookie } = await storedSession({ counter: 0 });
        const session = await Session.open(requestWith(cookie), options);
        const seen: boolean[] = [];
        const slowIncrement = session.withLock(async (s) => {
          const before = s.data.counter as number;
          await new Promise((resolve) => setTimeout(resolve, 20));
          seen.push(s.locked);
          s.data.counter = before + 1;
        });
        const quick = session.withLock(async (s) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          seen.push(s.locked);
          s.data.quick = true;
        });
        const other = (async () => {
          const second = await Session.open(requestWith(cookie), options);
          await second.withLock((s) => {
            s.data.counter += 1;
          });
        })();
        await Promise.all([slowIncrement, quick, other]);
        assert.deepEqual(seen, [true, true], 'each function ran under the lock to its end');
        const stored = await Session.open(requestWith(cookie), options);
        assert.equal(stored.data.counter, 2, 'no increment of another request lost');
        assert.equal(stored.data.quick, true);

        const nested = await session.withLock((s) => s.withLock(() => s.locked));
        assert.equal(nested, true, 'a withLock inside withLock runs at once, under the same lock');
        assert.equal(session.locked, false);

        const pinned = session.withLock(() => {});
        await session.lock();
        await pinned;
        assert.equal(session.locked, true, 'a lock() that joined a withLock() holds the lock until unlock()');
        await session.unlock();

        const locking = session.lock();
        session.data.late = 'kept';
        await locking;
        await session.save();
        await session.unlock();
        assert.equal(
          (await Session.open(requestWith(cookie), options)).data.late,
          'kept',
          'a change made while lock() waited',
        );
      });

      it('keeps its lock state right when unlock(), load({ lock }), regenerate(), invalidate() and abandon() overlap', async () => {
        const free = async (id: string) => {
          const manager = storageOf(id);
          assert.equal(await manager.acquireWriteLock({ wait: false }), true, `the lock of ${id} is free`);
          await manager.releaseWriteLock();
        };
        const { id, cookie } = await storedSession({ n: 0 });
        const session = await Session.open(requestWith(cookie), options);
        await session.lock();
        void session.unlock();
        const other = (async () => {
          const second = await Session.open(requestWith(cookie), options);
          await second.withLock((s) => {
            s.data.n += 1;
          });
        })();
        const locked = await session.withLock((s) => {
          s.data.n += 1;
          return s.locked;
        });
        await other;
        assert.equal(locked, true, 'a withLock() after an unlock() not awaited runs under the lock');
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 2, 'no increment lost');

        const loading = new Session(requestWith(cookie), options);
        const first = loading.load({ lock: true });
        await assert.rejects(loading.load(), LockStateError, 'a second load() while one is under way');
        await first;
        const saving = loading.save();
        await saving;
        await loading.unlock();
        await free(id);

        const regenerated = await Session.open(requestWith(cookie), options);
        await regenerated.lock();
        await Promise.all([regenerated.regenerate(), regenerated.regenerate()]);
        regenerated.data.after = true;
        await regenerated.save();
        await regenerated.unlock();
        assert.equal(
          (await Session.open(undefined, { ...options, useCookies: false, id: regenerated.id })).data.after,
          true,
        );
        await free(regenerated.id);

        const invalidated = await Session.open(requestWith(cookie), options);
        await invalidated.lock();
        await invalidated.invalidate();
        assert.equal(invalidated.locked, true, 'invalidate() keeps a lock() on the new id');
        await invalidated.unlock();
        await free(invalidated.id);

        const { id: heldId, cookie: heldCookie } = await storedSession({ n: 0 });
        const holder = await Session.open(requestWith(heldCookie), options);
        const waiter = await Session.open(requestWith(heldCookie), options);
        await holder.lock();
        const waiting = waiter.lock();
        await new Promise((resolve) => setTimeout(resolve, 20));
        await waiter.abandon('the client went away');
        await holder.unlock();
        await assert.rejects(waiting, /client went away/);
        assert.equal(waiter.locked, false);
        await free(heldId);
      });

      it('never resurrects a session that another request invalidated (logout) while it was loaded', async () => {
        const { id, cookie } = await storedSession({ user: 'ann' });
        const slow = await Session.open(requestWith(cookie), options);
        const logout = await Session.open(requestWith(cookie), options);
        await logout.invalidate();
        slow.data.lastPage = '/account';
        await slow.save();
        assert.deepEqual(await storedKeys(id), [], 'the logged-out record stays gone');
        assert.equal(slow.wasInvalidated, true);
        assert.notEqual(slow.id, id, 'the refused session starts over under a new id');
        assert.deepEqual(slow.data, {}, 'without the logged-out data');
        assert.match(slow.cookieHeader ?? '', /^sid=;.*Max-Age=0/, "the browser's cookie is cleared");
        slow.data.again = true;
        await slow.save();
        assert.deepEqual(await storedKeys(id), [], 'a second save does not recreate the logged-out record either');
        assert.equal((await Session.open(requestWith(cookie), options)).isNew, true);
        assert.deepEqual((await Session.open(requestWith(cookiePair(slow.cookieHeader)), options)).data, {
          again: true,
        });
      });

      it('regenerate() moves what other requests saved meanwhile, with its own changes on top', async () => {
        const { id, cookie } = await storedSession({ cart: ['book'], user: 'guest' });
        const login = await Session.open(requestWith(cookie), options);
        const other = await Session.open(requestWith(cookie), options);
        other.data.cart = ['book', 'pen'];
        other.data.seen = true;
        await other.save();
        login.data.user = 'ann';
        await login.regenerate();
        assert.notEqual(login.id, id);
        assert.deepEqual(login.data, { cart: ['book', 'pen'], user: 'ann', seen: true }, 'reloaded under the lock');
        assert.equal(login.modified, false);
        const moved = await Session.open(requestWith(cookiePair(login.cookieHeader)), options);
        assert.deepEqual(moved.data, { cart: ['book', 'pen'], user: 'ann', seen: true });
        assert.deepEqual(await storedKeys(id), [], 'the old record is removed');
      });

      it('regenerate() does not bring back a session that another request invalidated (logout)', async () => {
        const { id, cookie } = await storedSession({ user: 'ann' });
        const late = await Session.open(requestWith(cookie), options);
        const logout = await Session.open(requestWith(cookie), options);
        await logout.invalidate();
        await late.regenerate();
        assert.equal(late.isNew, true);
        assert.equal(late.wasInvalidated, true);
        assert.deepEqual(late.data, {});
        assert.equal(late.locked, false);
        assert.match(late.cookieHeader ?? '', /^sid=;.*Max-Age=0/, "the browser's cookie is cleared");
        assert.deepEqual(await storedKeys(id), []);
        assert.deepEqual(await storedKeys(late.id), [], 'nothing stored under a new id either');
      });

      it('merges concurrent saves key by key: one request sets a, another b, both survive', async () => {
        const { cookie } = await storedSession({ base: true });
        const [one, two] = await Promise.all([
          Session.open(requestWith(cookie), options),
          Session.open(requestWith(cookie), options),
        ]);
        (one as Session).data.a = 1;
        (two as Session).data.b = 2;
        await Promise.all([(one as Session).save(), (two as Session).save()]);
        const merged = await Session.open(requestWith(cookie), options);
        assert.deepEqual(merged.data, { base: true, a: 1, b: 2 });
      });

      it('is exact for 4 processes × 250 withLock increments', {
        skip: type === 'memory',
      }, async () => {
        const { cookie } = await storedSession({ n: 0 });
        const childOptions = { ...backend.options, type, key: 'sid' };
        const workers = Array.from({ length: 4 }, () =>
          spawnScript(SESSION_WORKER, { options: childOptions, cookie, count: 250 }),
        );
        await Promise.all(workers.map((worker) => worker.next('done')));
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 1000);
      });
    });

    describe('modification tracking', () => {
      it('saves nested mutation without a flag, and writes nothing for an unmodified session', async () => {
        const counter = { writes: 0 };
        const counting = countingOptions(counter);
        const { cookie } = await storedSession({ cart: ['apple'], profile: { name: 'ann' } });
        const session = await Session.open(requestWith(cookie), counting);
        assert.equal(session.modified, false);
        await session.save();
        assert.equal(counter.writes, 0, 'an unmodified save writes nothing');
        session.data.cart.push('pear');
        assert.equal(session.modified, true);
        await session.save();
        assert.equal(counter.writes, 1);
        assert.equal(session.modified, false);
        await session.save();
        assert.equal(counter.writes, 1);
        const again = await Session.open(requestWith(cookie), options);
        assert.deepEqual(again.data.cart, ['apple', 'pear']);
      });

      it('saveIfModified() writes only what modified reports, and never stores an empty new session', async () => {
        const counter = { writes: 0 };
        const counting = countingOptions(counter);
        const fresh = await Session.open(requestWith(''), counting);
        assert.equal(await fresh.saveIfModified(), false);
        assert.equal(fresh.cookieHeader, undefined, 'an empty new session is not stored');
        fresh.data.n = 1;
        assert.equal(await fresh.saveIfModified(), true);
        assert.equal(counter.writes, 1);
        const cookie = cookiePair(fresh.cookieHeader);
        const loaded = await Session.open(requestWith(cookie), counting);
        assert.equal(await loaded.saveIfModified(), false);
        loaded.data.n = 2;
        assert.equal(await loaded.saveIfModified(), true);
        assert.equal(await loaded.saveIfModified(), false);
        assert.equal(counter.writes, 2);
        assert.equal((await Session.open(requestWith(cookie), options)).data.n, 2);
      });

      it('stores deletions and undefined values as removed keys', async () => {
        const { cookie } = await storedSession({ a: 1, b: 2, c: 3 });
        const session = await Session.open(requestWith(cookie), options);
        delete session.data.a;
        session.data.b = undefined;
        await session.save();
        assert.deepEqual((await Session.open(requestWith(cookie), options)).data, { c: 3 });
      });

      it('revert() restores the loaded state', async () => {
        const { cookie } = await storedSession({ list: [1], n: 1 });
        const session = await Session.open(requestWith(cookie), options);
        session.data.list.push(2);
        session.data.n = 5;
        session.data.extra = true;
        session.revert();
        assert.deepEqual(session.data, { list: [1], n: 1 });
        assert.equal(session.modified, false);
      });

      it('keeps the data and namespace objects the application holds through withLock() and revert()', async () => {
        const { cookie } = await storedSession({ n: 1 });
        const session = await Session.open(requestWith(cookie), options);
        const data = session.data;
        const shop = session.namespace('shop');
        await session.withLock(() => {
          shop.items = ['a'];
          data.n = 2;
        });
        const loaded = await Session.open(requestWith(cookie), options);
        assert.deepEqual(loaded.namespace('shop'), { items: ['a'] }, 'a namespace fetched before the lock is saved');
        assert.equal(loaded.data.n, 2);
        const loadedData = loaded.data;
        const loadedShop = loaded.namespace('shop');
        loadedData.n = 3;
        loaded.revert();
        loadedData.m = 4;
        loadedShop.more = true;
        assert.equal(loaded.modified, true, 'changes through objects fetched before revert() count');
        await loaded.save();
        const reloaded = await Session.open(requestWith(cookie), options);
        assert.deepEqual(reloaded.data, { n: 2, m: 4 });
        assert.deepEqual(reloaded.namespace('shop'), { items: ['a'], more: true });
      });

      it('keeps namespaces isolated from each other and from data, stored with the session', async () => {
        const { cookie } = await storedSession({ color: 'data' });
        const session = await Session.open(requestWith(cookie), options);
        session.namespace('products.foo').color = 'red';
        session.namespace('products.bar').color = 'blue';
        await session.save();
        const again = await Session.open(requestWith(cookie), options);
        assert.equal(again.namespace('products.foo').color, 'red');
        assert.equal(again.namespace('products.bar').color, 'blue');
        assert.equal(again.data.color, 'data');
        assert.deepEqual(again.namespace('never.used'), {});
      });
    });

    describe('timeout', () => {
      it('invalidates a session idle longer than timeout and removes its data', async () => {
        const timed = { ...options, timeout: 1 };
        const { id, cookie } = await storedSession({ secret: 'x' }, timed);
        await setStored(id, '#accessed', Date.now() - 2000);
        logs.length = 0;
        const session = await Session.open(requestWith(cookie), timed);
        assert.equal(session.isNew, true);
        assert.equal(session.wasInvalidated, true);
        assert.notEqual(session.id, id);
        assert.deepEqual(session.data, {});
        assert.deepEqual(await storedKeys(id), [], 'the old data is gone from storage');
        assert.ok(logs.some((line) => line.includes(`invalidated session ${id.slice(0, 8)}…`)));
      });

      it('releases the lock when removing a timed-out session fails, also under load({ lock: true })', async () => {
        const Base = namespaceManagerClass(type) as unknown as typeof MemoryNamespaceManager;
        class FailingRemove extends Base {
          protected override removeCommitted(): Promise<void> {
            return Promise.reject(new Error('the disk said no'));
          }
        }
        const timed = { ...options, timeout: 1 };
        const { id, cookie } = await storedSession({ v: 1 }, timed);
        await setStored(id, '#accessed', Date.now() - 2000);
        for (const lock of [false, true]) {
          await assert.rejects(
            new Session(requestWith(cookie), { ...timed, namespaceClass: FailingRemove }).load({ lock }),
            /the disk said no/,
          );
          const manager = storageOf(id);
          assert.equal(await manager.acquireWriteLock({ wait: false }), true, `lock: ${lock}: the lock is free`);
          await manager.releaseWriteLock();
        }
      });

      it('keeps a timed-out session that another request used and saved between the read and the removal', async () => {
        const timed = { ...options, timeout: 1 };
        const { id, cookie } = await storedSession({ v: 1 }, timed);
        await setStored(id, '#accessed', Date.now() - 2000);
        // The other request loaded the session just before it timed out: a longer timeout stands for that.
        let otherRequest: (() => Promise<void>) | undefined = async () => {
          const other = await Session.open(requestWith(cookie), { ...options, timeout: 60, accessResolution: 1 });
          assert.equal(other.isNew, false);
          other.data.w = 'saved';
          await other.save();
          assert.equal(other.isNew, false, 'the save is acknowledged');
        };
        const Base = namespaceManagerClass(type) as unknown as typeof MemoryNamespaceManager;
        class OtherRequestAfterRead extends Base {
          override async withReadLock<T>(fn: () => T | Promise<T>): Promise<T> {
            const result = await super.withReadLock(fn);
            const run = otherRequest;
            otherRequest = undefined;
            await run?.();
            return result;
          }
        }
        const session = await Session.open(requestWith(cookie), { ...timed, namespaceClass: OtherRequestAfterRead });
        assert.equal(otherRequest, undefined, 'the other request ran after the read');
        assert.equal(await storedValue(id, '=w'), 'saved', "the other request's save is still stored");
        assert.equal(session.isNew, false);
        assert.equal(session.wasInvalidated, false);
        assert.equal(session.id, id);
        assert.deepEqual(session.data, { v: 1, w: 'saved' }, 'the load has what the other request saved');
        const manager = storageOf(id);
        assert.equal(await manager.acquireWriteLock({ wait: false }), true, 'the load left no lock held');
        await manager.releaseWriteLock();
      });

      it('writes the access time at most once per accessResolution', async () => {
        const counter = { writes: 0 };
        const timed = { ...countingOptions(counter), timeout: 60, accessResolution: 30 };
        const { id, cookie } = await storedSession({ n: 1 }, timed);
        counter.writes = 0;
        for (let i = 0; i < 5; i++) await Session.open(requestWith(cookie), timed);
        assert.equal(counter.writes, 0, 'accessed within the resolution: no writes');
        await setStored(id, '#accessed', Date.now() - 31_000);
        for (let i = 0; i < 5; i++) {
          const session = await Session.open(requestWith(cookie), timed);
          assert.equal(session.isNew, false);
        }
        assert.equal(counter.writes, 1, 'one write once the stored time is older than the resolution');
        assert.ok(
          ((await storedValue(id, '#accessed')) as number) >= Date.now() - 5_000,
          'the access time written is now',
        );
      });

      it('writes the access time over one recorded by a clock an hour ahead (else a ttl derived from timeout ends a session in use)', async () => {
        const timed = { ...options, timeout: 60, accessResolution: 30 };
        const { id, cookie } = await storedSession({ n: 1 }, timed);
        await setStored(id, '#accessed', Date.now() + 3_600_000);
        const session = await Session.open(requestWith(cookie), timed);
        assert.equal(session.isNew, false);
        assert.ok(((await storedValue(id, '#accessed')) as number) <= Date.now(), 'the access time written is now');
      });

      it('leaves an access time a little ahead of this clock (a skew under half the timeout) as it is', async () => {
        const counter = { writes: 0 };
        const timed = { ...countingOptions(counter), timeout: 1800, accessResolution: 60 };
        const { id, cookie } = await storedSession({ n: 1 }, timed);
        await setStored(id, '#accessed', Date.now() + 120_000);
        counter.writes = 0;
        for (let i = 0; i < 3; i++) await Session.open(requestWith(cookie), timed);
        assert.equal(counter.writes, 0, 'servers whose clocks differ by two minutes do not overwrite each other');
      });
    });

    describe('corrupt data', () => {
      const corrupt = (id: string) => backend.corrupt(id);

      it('throws SessionCorruptError naming the id without invalidateCorrupt', async () => {
        const { id, cookie } = await storedSession({ n: 1 });
        await corrupt(id);
        await assert.rejects(
          Session.open(requestWith(cookie), options),
          (e: unknown) => e instanceof SessionCorruptError && e.id === id,
        );
      });

      it('starts a fresh session with wasInvalidated with invalidateCorrupt', async () => {
        const { id, cookie } = await storedSession({ n: 1 });
        await corrupt(id);
        const session = await Session.open(requestWith(cookie), { ...options, invalidateCorrupt: true });
        assert.equal(session.isNew, true);
        assert.equal(session.wasInvalidated, true);
        assert.notEqual(session.id, id);
        session.data.ok = true;
        await session.save();
      });
      it('takes a stored value the serializer would refuse to store again as corrupt, so invalidateCorrupt starts afresh', async () => {
        for (const raw of ['{"$date":"garbage"}', '-0', '1e400']) {
          const { id, cookie } = await storedSession({ n: 1 });
          const manager = storageOf(id);
          await manager.withWriteLock(() => manager.setEncoded('=bad', null, raw));
          await assert.rejects(
            Session.open(requestWith(cookie), options),
            (e: unknown) => e instanceof SessionCorruptError && e.id === id,
            raw,
          );
          const fresh = await Session.open(requestWith(cookie), { ...options, invalidateCorrupt: true });
          assert.equal(fresh.wasInvalidated, true, raw);
          fresh.data.n = 2;
          await fresh.save();
        }
      });
      it('takes a creation or access time that is not a finite number as corrupt, whatever the serializer reads', async () => {
        const withJson = { ...options, serializer: JSON };
        for (const key of ['#created', '#accessed']) {
          const { id, cookie } = await storedSession({ n: 1 }, withJson);
          const manager = createNamespaceManager(type, id, { ...backend.options, serializer: JSON });
          await manager.withWriteLock(() => manager.setEncoded(key, Number.POSITIVE_INFINITY, '1e999'));
          await assert.rejects(
            Session.open(requestWith(cookie), withJson),
            (e: unknown) => e instanceof SessionCorruptError && e.id === id && e.message.includes(key),
          );
        }
      });
    });

    describe('encryption at rest', () => {
      it('leaves a session encrypted with a key it was not given in storage, honouring invalidateCorrupt for the request', async () => {
        const right = { ...options, encryptKey: 'the right key, long enough' };
        const { id, cookie } = await storedSession({ card: '4111' }, right);
        for (const misconfigured of [{ ...options, encryptKey: 'the wrong key, long enough' }, options]) {
          await assert.rejects(
            Session.open(requestWith(cookie), misconfigured),
            (e: unknown) => e instanceof UndecodableValueError && e.unknownKey && e.id === id,
          );
          const fresh = await Session.open(requestWith(cookie), { ...misconfigured, invalidateCorrupt: true });
          assert.equal(fresh.wasInvalidated, true);
          assert.deepEqual(fresh.data, {});
          assert.notEqual(fresh.id, id);
        }
        const intact = await Session.open(requestWith(cookie), right);
        assert.equal(intact.id, id);
        assert.deepEqual(intact.data, { card: '4111' }, 'a correctly configured process still reads it');
      });

      it('starts afresh, with invalidateCorrupt, from a value encrypted with the right key but altered', async () => {
        const right = { ...options, encryptKey: 'the right key, long enough' };
        const { id, cookie } = await storedSession({ card: '4111' }, right);
        const raw = storageOf(id, { serializer: { stringify: String, parse: (text: string) => text } });
        const sealed = (await raw.withReadLock(() => raw.get('=card'))) as string;
        await raw.withWriteLock(() =>
          raw.set('=card', `${sealed.slice(0, -3)}${sealed.endsWith('AAA') ? 'BBB' : 'AAA'}`),
        );
        await assert.rejects(
          Session.open(requestWith(cookie), right),
          (e: unknown) => e instanceof UndecodableValueError && !e.keyMismatch,
        );
        const fresh = await Session.open(requestWith(cookie), { ...right, invalidateCorrupt: true });
        assert.equal(fresh.wasInvalidated, true);
        assert.deepEqual(await storedKeys(id), [], 'the damaged session is removed');
      });

      it('encrypts a session stored with an older key again with the first when its access time is written, so the old key can go', async () => {
        const oldKey = 'old key, long enough';
        const newKey = 'new key, long enough';
        for (const lock of [false, true]) {
          const stored = await Session.open(requestWith(), { ...options, encryptKey: oldKey });
          stored.data.a = 1;
          stored.namespace('shop').b = 2;
          await stored.save();
          const { id } = stored;
          const cookie = cookiePair(stored.cookieHeader);
          const rotated = { ...options, encryptKey: [newKey, oldKey], accessResolution: 0 };
          const session = new Session(requestWith(cookie), rotated);
          await session.load({ lock });
          assert.deepEqual(session.data, { a: 1 });
          if (lock) await session.unlock();
          const newOnly = await Session.open(requestWith(cookie), { ...options, encryptKey: newKey });
          assert.equal(newOnly.id, id, `lock: ${lock}`);
          assert.deepEqual([newOnly.data, newOnly.namespace('shop')], [{ a: 1 }, { b: 2 }], `lock: ${lock}`);
        }
      });

      it('writes no more often than the access time while processes disagree on the first key (a rotation rolling out)', async () => {
        const [a, b] = ['key a, long enough', 'key b, long enough'];
        const { cookie } = await storedSession({ n: 1 }, { encryptKey: a });
        const counter = { writes: 0 };
        const counting = countingOptions(counter);
        for (let i = 0; i < 6; i++) {
          const session = await Session.open(requestWith(cookie), { ...counting, encryptKey: i % 2 ? [a, b] : [b, a] });
          assert.deepEqual(session.data, { n: 1 });
        }
        assert.equal(counter.writes, 0, 'the access time is not due');
      });

      it('names the key as the application wrote it when values are encrypted and no encryptKey is given', async () => {
        for (const [stored, name] of [
          ['=secret', 'data.secret'],
          [':shop=card', 'namespace(shop).card'],
          ['#accessed', "the session's access time"],
        ] as const) {
          const { id, cookie } = await storedSession({ n: 1 });
          const sealed = cipherFor('a key, long enough')?.seal('"x"', id, stored) as string;
          const manager = storageOf(id);
          await manager.withWriteLock(() => manager.setEncoded(stored, 'x', sealed));
          await assert.rejects(
            Session.open(requestWith(cookie), options),
            (e: unknown) =>
              e instanceof SessionCorruptError &&
              e.message.includes(`the value of ${name} is encrypted: give the encryptKey it was stored with`),
          );
          await assert.rejects(
            storageOf(id).acquireReadLock(),
            (e: unknown) =>
              e instanceof SessionCorruptError && e.message.includes(`${JSON.stringify(stored)} is encrypted`),
            'a NamespaceManager names the key as stored',
          );
        }
      });

      it('reads and merges encrypted sessions like plain ones', async () => {
        const keyed = { ...options, encryptKey: ['new key, long enough', 'old key, long enough'] };
        const { cookie } = await storedSession({ a: 1 }, { encryptKey: 'old key, long enough' });
        const [one, two] = await Promise.all([
          Session.open(requestWith(cookie), keyed),
          Session.open(requestWith(cookie), keyed),
        ]);
        (one as Session).data.b = 2;
        (two as Session).data.c = 3;
        await Promise.all([(one as Session).save(), (two as Session).save()]);
        assert.deepEqual((await Session.open(requestWith(cookie), keyed)).data, { a: 1, b: 2, c: 3 });
      });
    });

    describe('ids and cookies from clients', () => {
      it('generates URL-safe ids of at least 128 random bits', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 200; i++) {
          const session = await Session.open(requestWith(), options);
          assert.match(session.id, /^[a-z2-7]{32}$/, '32 base32 characters: 160 bits');
          ids.add(session.id);
        }
        assert.equal(ids.size, 200);
      });

      it('never adopts a malformed, hostile, unknown or badly signed id, and never throws for one', async () => {
        const signed = { ...options, secret: 'k1' };
        const { id } = await storedSession({ n: 1 }, signed);
        const hostile = [
          'sid=',
          'sid=../../etc/passwd',
          'sid=a%00b',
          `sid=${'a'.repeat(10_000)}`,
          `sid=${id}`,
          `sid=${id}.AAAA`,
          `sid=${id}.${'A'.repeat(43)}`,
          `sid=${randomUUID().replace(/-/g, '')}.x`,
          'sid="\u0000"',
          'sid',
          '=;;;=sid=',
        ];
        logs.length = 0;
        for (const cookie of hostile) {
          const session = await Session.open({ headers: { cookie } }, signed);
          assert.equal(session.isNew, true, cookie.slice(0, 40));
          assert.notEqual(session.id, id);
        }
        assert.ok(logs.filter((line) => line.startsWith('rejected')).length >= hostile.length - 2);
        const unknown = await Session.open(requestWith(`sid=${'b'.repeat(32)}`), options);
        assert.equal(unknown.isNew, true, 'a never-stored id is not adopted');
        assert.notEqual(unknown.id, 'b'.repeat(32));
      });

      it('signs with the first secret and accepts any, re-signing cookies made with an older one', async () => {
        const old = await storedSession({ n: 1 }, { ...options, secret: 'old' });
        const rotated = { ...options, secret: ['new', 'old'] };
        const session = await Session.open(requestWith(old.cookie), rotated);
        assert.equal(session.isNew, false);
        const fresh = cookiePair(session.cookieHeader);
        assert.notEqual(fresh, old.cookie);
        const again = await Session.open(requestWith(fresh), { ...options, secret: 'new' });
        assert.equal(again.id, old.id);
        assert.equal(again.cookieHeader, undefined);
        const unsigned = await Session.open(requestWith(old.cookie), { ...options, secret: 'other' });
        assert.equal(unsigned.isNew, true);
      });

      it('invalidate() and regenerate() leave the old cookie loading nothing; delete() keeps the session usable', async () => {
        const a = await storedSession({ user: 'ann' });
        const session = await Session.open(requestWith(a.cookie), options);
        await session.regenerate();
        assert.notEqual(session.id, a.id);
        const moved = cookiePair(session.cookieHeader);
        assert.equal((await Session.open(requestWith(a.cookie), options)).isNew, true, 'the old id is gone');
        assert.equal((await Session.open(requestWith(moved), options)).data.user, 'ann');

        const out = await Session.open(requestWith(moved), options);
        await out.invalidate();
        assert.equal(out.isNew, true);
        assert.equal(out.wasInvalidated, true);
        assert.match(out.cookieHeader ?? '', /^sid=; Max-Age=0/, 'the browser is told to drop the cookie');
        assert.equal((await Session.open(requestWith(moved), options)).isNew, true);

        const b = await storedSession({ n: 1 });
        const kept = await Session.open(requestWith(b.cookie), options);
        await kept.delete();
        assert.deepEqual(await storedKeys(b.id), []);
        kept.data.n = 2;
        await kept.save();
        assert.equal((await Session.open(requestWith(b.cookie), options)).data.n, 2);
      });
    });
  });
}
