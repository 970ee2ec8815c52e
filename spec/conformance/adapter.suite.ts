/**
 * The adapter suite: every web framework adapter runs it unchanged, through a factory that
 * starts a real server on 127.0.0.1:0 with the given options, answering every request with
 * the framework-neutral {@link Action} below translated into the framework's own calls.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { SessionMiddlewareOptions } from '../../lib/adapters/core.js';
import { MemoryStore, type Session } from '../../lib/index.js';
import { type BackendFixture, createFixture } from '../fixtures/backends.js';
import {
  cookieFrom,
  get,
  type Response,
  rawStatus,
  type StreamingResponse,
  setCookieFor,
  streamingGet,
} from '../fixtures/http-client.js';
import type { RunningServer } from '../fixtures/http-server.js';
import { instrumentedMemory } from '../fixtures/instrumented-storage.js';

/** What a handler answers; each framework's harness turns it into its own calls. */
export interface Reply {
  status?: number;
  json?: unknown;
  /** Answer with a 302 to this location. */
  redirect?: string;
  /** A Set-Cookie header the handler sets itself. */
  cookie?: string;
  /** A JSON body sent as a stream of these chunks (instead of `json`). */
  stream?: AsyncIterable<string>;
}

/** What a handler sees: the request path and the request's session. */
export interface Exchange {
  path: string;
  session: Session;
}

/** A framework-neutral handler. When it throws, the harness lets the error take the framework's own path. */
export type Action = (exchange: Exchange) => Promise<Reply>;

/** Sees every request's node:http request and response before the adapter does. */
export type Observe = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Gets what reaches the framework's error handling: the error its error handler (Express's
 * error middleware, Koa's upstream middleware, Fastify's setErrorHandler) gets, which answers
 * 500 `{ error: code }`; node:http has none, so it gets the adapter's report to `log` (a line).
 */
export type Failed = (failure: unknown) => void;

/**
 * Starts a server of the framework under test with the adapter configured by `options`;
 * `observe`, when given, sees each request before the adapter (a middleware or hook ahead of
 * it), and `failed` what reaches the error handling.
 */
export type StartServer = (
  options: SessionMiddlewareOptions,
  action: Action,
  observe?: Observe,
  failed?: Failed,
) => Promise<RunningServer>;

const KEY = 'sid';
const SECRET = 'adapter-suite-secret';
const CONCURRENCY = 200;

/** Requests under `/locked/` hold the session lock for the whole request. */
const lockLockedPaths = (req: { url?: string | undefined }) => req.url?.startsWith('/locked/') === true;

/**
 * Announces a request to `/hang`, which never answers (until its client gives up), and one to
 * `/hold` ('holding'), which answers once the test emits 'release' (`/hold/x`: 'holding x', 'release x').
 */
const hangs = new EventEmitter();

/** The name of the error a {@link Failed} got: the error's, or the one a node:http report line names. */
function failureName(failure: unknown): string {
  if (failure instanceof Error) return failure.name;
  return /^sessionlock: [^:]+: (\w+)/.exec(String(failure))?.[1] ?? String(failure);
}

/** The application every framework serves. */
const suiteApp: Action = async ({ path, session }) => {
  const route = (path.split('?')[0] ?? '').replace(/^\/locked/, '');
  const [, name, first, second] = route.split('/');
  const data = session.data;
  switch (name) {
    case 'whoami':
      return { json: { id: session.id, isNew: session.isNew, data } };
    case 'login':
      data.user = 'ann';
      return { redirect: '/whoami' };
    case 'set':
      data[first as string] = second;
      return { json: data };
    case 'increment':
      data.n = (data.n ?? 0) + 1;
      return { json: { n: data.n } };
    case 'key':
      data[`k${first}`] = Number(first);
      return { json: {} };
    case 'fail':
      data.n = -1;
      throw new Error('handler failure (expected by the test)');
    case 'cookie':
      data.theme = 'dark';
      return { cookie: 'theme=dark; Path=/', json: {} };
    case 'cookie-only':
      return { cookie: 'theme=dark; Path=/', json: {} };
    case 'logout':
      await session.invalidate();
      return { json: {} };
    case 'regenerate':
      await session.regenerate();
      data.user = 'bob';
      return { json: {} };
    case 'unstorable':
      data.callback = () => {};
      return { json: {} };
    case 'nested':
      await session.withLock((locked) => {
        locked.data.nested = true;
      });
      return { json: { locked: session.locked } };
    case 'hang':
      data.n = -1;
      hangs.emit('hang');
      return new Promise<Reply>(() => {});
    case 'late-lock': {
      // Its client leaves while it waits; then it takes the lock and answers nobody.
      const resumed = once(hangs, 'resume late');
      hangs.emit('holding late');
      await resumed;
      const outcomes = await Promise.allSettled([session.lock(), session.withLock(() => {})]);
      hangs.emit('late outcomes', outcomes);
      return new Promise<Reply>(() => {});
    }
    case 'stream':
      return { stream: changingWhileStreamed(session) };
    case 'saved-stream':
      data.user = 'ann';
      await session.save();
      return { stream: changingWhileStreamed(session) };
    case 'hold': {
      const released = once(hangs, first ? `release ${first}` : 'release');
      hangs.emit(first ? `holding ${first}` : 'holding');
      await released;
      return { json: {} };
    }
    default:
      return { status: 404, json: { error: 'not found' } };
  }
};

/**
 * A body whose second chunk waits for the test's 'stream on' (the test emits it once its
 * client has the first chunk: the response went out) and changes the session before it comes.
 */
async function* changingWhileStreamed(session: Session): AsyncGenerator<string> {
  yield '{"part":';
  await once(hangs, 'stream on');
  session.data.late = 'changed while streaming';
  yield '1}';
}

export function adapterConformance(framework: string, start: StartServer): void {
  describe(`adapter conformance: ${framework}`, () => {
    const servers: RunningServer[] = [];
    const serve = async (options: SessionMiddlewareOptions, observe?: Observe, failed?: Failed) => {
      const server = await start({ key: KEY, ...options }, suiteApp, observe, failed);
      servers.push(server);
      return server.url;
    };
    after(() => Promise.all(servers.map((server) => server.close())));

    /** A stored session with `data`, set through the server; returns its cookie. */
    const storedSession = async (url: string, data: Record<string, string> = { user: 'ann' }) => {
      let cookie: string | undefined;
      for (const [key, value] of Object.entries(data)) {
        const response = await get(`${url}/set/${key}/${value}`, cookie);
        assert.equal(response.status, 200);
        cookie ??= cookieFrom(response, KEY);
      }
      assert.ok(cookie);
      return cookie;
    };
    const whoami = async (url: string, cookie?: string) => {
      const response = await get(`${url}/whoami`, cookie);
      assert.equal(response.status, 200);
      return response as Response & { body: { id: string; isNew: boolean; data: Record<string, unknown> } };
    };

    describe('memory storage', () => {
      const store = new MemoryStore();
      const { probe, namespaceClass } = instrumentedMemory();
      const logs: string[] = [];
      let url: string;
      before(async () => {
        url = await serve({
          store,
          namespaceClass,
          secret: SECRET,
          lock: lockLockedPaths,
          log: (line) => logs.push(line),
        });
      });

      /** Lets a `/stream` or `/saved-stream` response (its first chunk arrived) go on, and waits for the save that follows it. */
      const streamOnAndSave = async (response: StreamingResponse) => {
        const saved = once(probe.events, 'write');
        hangs.emit('stream on');
        await response.rest();
        await saved;
      };

      it('saves what the handler changed while its response streamed, once the response went out', async () => {
        const cookie = cookieFrom(await get(`${url}/set/user/ann`), KEY);
        const response = await streamingGet(`${url}/stream`, cookie);
        assert.equal(response.first, '{"part":');
        await streamOnAndSave(response);
        assert.deepEqual((await whoami(url, cookie)).body.data, { user: 'ann', late: 'changed while streaming' });
      });

      it('saves the changes made while streaming to a new session the handler saved itself', async () => {
        const response = await streamingGet(`${url}/saved-stream`);
        assert.match(response.cookie, /^sid=/);
        await streamOnAndSave(response);
        assert.deepEqual((await whoami(url, response.cookie)).body.data, {
          user: 'ann',
          late: 'changed while streaming',
        });
      });

      it('sets a cookie when a session is first stored, and loads the session from it', async () => {
        const first = await get(`${url}/set/user/ann`);
        assert.equal(first.status, 200);
        const cookie = cookieFrom(first, KEY);
        const second = await whoami(url, cookie);
        assert.equal(second.body.isNew, false);
        assert.deepEqual(second.body.data, { user: 'ann' });
        assert.deepEqual(second.setCookies, [], 'the browser has the right cookie already');
        const third = await get(`${url}/set/color/red`, cookie);
        assert.deepEqual(third.setCookies, []);
        assert.deepEqual((await whoami(url, cookie)).body.data, { user: 'ann', color: 'red' });
      });

      it(`counts exactly ${CONCURRENCY} concurrent locked increments of one session`, async () => {
        await lockedIncrements(url);
      });

      it(`keeps every key of ${CONCURRENCY} concurrent unlocked requests that each change a different key`, async () => {
        const cookie = await storedSession(url);
        const responses = await Promise.all(
          Array.from({ length: CONCURRENCY }, (_, i) => get(`${url}/key/${i}`, cookie)),
        );
        assert.ok(responses.every((response) => response.status === 200));
        const { data } = (await whoami(url, cookie)).body;
        for (let i = 0; i < CONCURRENCY; i++) assert.equal(data[`k${i}`], i, `key k${i}`);
      });

      it('neither saves nor sends a cookie for an untouched session, new or stored', async () => {
        const fresh = await whoami(url);
        assert.equal(fresh.body.isNew, true);
        assert.deepEqual(fresh.setCookies, []);
        const cookie = await storedSession(url);
        const writes = probe.writes;
        const again = await whoami(url, cookie);
        assert.equal(again.body.isNew, false);
        assert.deepEqual(again.setCookies, []);
        assert.equal(probe.writes, writes, 'a read-only request writes nothing');
      });

      it("keeps the handler's own Set-Cookie, alone or next to the session's", async () => {
        const alone = await get(`${url}/cookie-only`);
        assert.deepEqual(alone.setCookies, ['theme=dark; Path=/']);
        const both = await get(`${url}/cookie`);
        assert.equal(both.setCookies.length, 2);
        assert.ok(both.setCookies.includes('theme=dark; Path=/'));
        assert.ok(setCookieFor(both, KEY));
        assert.equal((await whoami(url, cookieFrom(both, KEY))).body.data.theme, 'dark');
      });

      it('releases the lock of a request whose handler throws, and saves nothing of it', async () => {
        const cookie = await storedSession(url, { n: '5' });
        const failed = await get(`${url}/locked/fail`, cookie);
        assert.equal(failed.status, 500);
        assert.equal(setCookieFor(failed, KEY), undefined);
        const next = await get(`${url}/locked/set/after/failure`, cookie);
        assert.equal(next.status, 200);
        assert.deepEqual(
          next.body,
          { n: '5', after: 'failure' },
          'the next locked request ran, without the failed change',
        );
        const unlocked = await get(`${url}/fail`, cookie);
        assert.equal(unlocked.status, 500);
        assert.equal((await whoami(url, cookie)).body.data.n, '5');
      });

      it('releases the lock of a request whose client gives up while the handler still runs', async () => {
        const cookie = await storedSession(url, { n: '5' });
        const entered = once(hangs, 'hang');
        const abort = new AbortController();
        const abandoned = fetch(`${url}/locked/hang`, { headers: { cookie }, signal: abort.signal }).catch(
          () => 'aborted',
        );
        await entered;
        abort.abort();
        assert.equal(await abandoned, 'aborted');
        const next = await get(`${url}/locked/set/after/abandon`, cookie);
        assert.equal(next.status, 200);
        assert.deepEqual(next.body, { n: '5', after: 'abandon' });
      });

      it("keeps the request's lock held across a withLock() inside the handler", async () => {
        const cookie = await storedSession(url);
        assert.deepEqual((await get(`${url}/locked/nested`, cookie)).body, { locked: true });
        assert.deepEqual((await get(`${url}/nested`, cookie)).body, { locked: false });
        assert.equal((await whoami(url, cookie)).body.data.nested, true);
      });

      it('answers a save that fails (a value that cannot be stored) with a 500, and releases the lock', async () => {
        const cookie = await storedSession(url);
        const failed = await get(`${url}/locked/unstorable`, cookie);
        assert.equal(failed.status, 500);
        const next = await get(`${url}/locked/set/after/unstorable`, cookie);
        assert.deepEqual(next.body, { user: 'ann', after: 'unstorable' });
      });

      it('moves the session to a new cookie on regenerate(), and the old cookie loads nothing', async () => {
        const cookie = await storedSession(url);
        const response = await get(`${url}/regenerate`, cookie);
        const renewed = cookieFrom(response, KEY);
        assert.notEqual(renewed, cookie);
        assert.deepEqual((await whoami(url, renewed)).body.data, { user: 'bob' });
        assert.equal((await whoami(url, cookie)).body.isNew, true);
      });

      it('gives a tampered or hostile cookie a new session and a 200', async () => {
        const valid = cookieFrom(await get(`${url}/set/user/ann`), KEY);
        const value = valid.slice(KEY.length + 1);
        const flipped = `${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`;
        const hostile = [
          `${KEY}=${flipped}`,
          `${KEY}=${value.split('.')[0]}`,
          `${KEY}=${value}x`,
          `${KEY}=../../../etc/passwd`,
          `${KEY}=..%2F..%2Fetc%2Fpasswd`,
          `${KEY}=abc%00def`,
          `${KEY}=${'A'.repeat(10 * 1024)}`,
          `${KEY}="unterminated`,
          `${KEY}=%%%; ${KEY}==; ${KEY}`,
          `${KEY}=\u00ff\u00fe; other=1`,
          `${KEY}=${'A'.repeat(43)}.${'B'.repeat(43)}`,
        ];
        for (const cookie of hostile) {
          const response = await whoami(url, cookie);
          assert.equal(response.body.isNew, true, cookie.slice(0, 80));
          assert.deepEqual(response.body.data, {});
          const stored = await get(`${url}/set/user/mallory`, cookie);
          assert.equal(stored.status, 200);
          assert.notEqual(cookieFrom(stored, KEY), valid);
        }
        const rawNul = `GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${KEY}=a\u0000b\r\nConnection: close\r\n\r\n`;
        const status = await rawStatus(url, rawNul);
        assert.ok(status === 200 || status === 400, `a NUL in the header gets ${status}, not a 500`);
        assert.deepEqual((await whoami(url, valid)).body.data, { user: 'ann' }, 'the server still serves');
      });

      it('starts afresh when the stored record is corrupt (invalidateCorrupt defaults to true), and logs it', async () => {
        const cookie = await storedSession(url);
        const { id } = (await whoami(url, cookie)).body;
        store.namespaces.set(id, new Map([['=user', '{not json']]));
        const response = await whoami(url, cookie);
        assert.equal(response.body.isNew, true);
        assert.deepEqual(response.body.data, {});
        assert.ok(logs.some((line) => line.includes(`${id.slice(0, 8)}…`) && line.includes('corrupt')));
      });
    });

    it('neither runs the handler of, nor keeps the lock of, a request whose client left while it waited for the lock', async (t) => {
      // The waiter's handler never answers: unless its lock is released once it gets it, the
      // next request waits out lockTimeout and gets a 500. Run, it would run without the lock.
      let waiterRuns = 0;
      const countRun = () => waiterRuns++;
      hangs.on('hang', countRun);
      t.after(() => hangs.off('hang', countRun));
      const events = new EventEmitter();
      const observe: Observe = (req, res) => {
        if (req.url !== '/locked/hang') return;
        res.once('close', () => events.emit('waiter-closed'));
        events.emit('waiter-arrived');
      };
      const url = await serve(
        { store: new MemoryStore(), lock: lockLockedPaths, lockTimeout: 3000, log: () => {} },
        observe,
      );
      const cookie = await storedSession(url, { n: '5' });
      const holding = once(hangs, 'holding');
      const holder = get(`${url}/locked/hold`, cookie);
      await holding;
      const arrived = once(events, 'waiter-arrived');
      const closed = once(events, 'waiter-closed');
      const abort = new AbortController();
      const waiter = fetch(`${url}/locked/hang`, { headers: { cookie }, signal: abort.signal }).catch(() => 'aborted');
      await arrived;
      abort.abort();
      await closed;
      hangs.emit('release');
      assert.equal((await holder).status, 200);
      assert.equal(await waiter, 'aborted');
      const next = await get(`${url}/locked/set/after/gone`, cookie);
      assert.equal(next.status, 200, "the waiter's lock was released");
      assert.deepEqual(next.body, { n: '5', after: 'gone' });
      assert.equal(waiterRuns, 0, "the waiter's handler did not run");
    });

    it('refuses a lock that a handler takes after its client left, and keeps none', async () => {
      // Nothing would release a lock taken then: the handler answers nobody, the request is over.
      const events = new EventEmitter();
      const observe: Observe = (req, res) => {
        if (req.url === '/late-lock') res.once('close', () => events.emit('closed'));
      };
      const url = await serve(
        { store: new MemoryStore(), lock: lockLockedPaths, lockTimeout: 3000, log: () => {} },
        observe,
      );
      const cookie = await storedSession(url, { n: '5' });
      const holding = once(hangs, 'holding late');
      const closed = once(events, 'closed');
      const abort = new AbortController();
      const gone = fetch(`${url}/late-lock`, { headers: { cookie }, signal: abort.signal }).catch(() => 'aborted');
      await holding;
      abort.abort();
      await closed;
      assert.equal(await gone, 'aborted');
      const settled = once(hangs, 'late outcomes');
      hangs.emit('resume late');
      const [outcomes] = (await settled) as [PromiseSettledResult<void>[]];
      assert.deepEqual(
        outcomes.map((outcome) =>
          outcome.status === 'rejected' ? (outcome.reason as { code?: string }).code : 'locked',
        ),
        ['ERR_LOCK_COMPROMISED', 'ERR_LOCK_COMPROMISED'],
        'lock() and withLock() after the client left',
      );
      const next = await get(`${url}/locked/set/after/late`, cookie);
      assert.equal(next.status, 200, 'no lock was left behind');
      assert.deepEqual(next.body, { n: '5', after: 'late' });
    });

    it('saves nothing of, and releases the lock of, pipelined requests whose connection is gone', async () => {
      // node gives a response queued behind an earlier pipelined one no 'close' when the
      // connection drops: only its request and the socket close.
      const events = new EventEmitter();
      const observe: Observe = (req) => {
        if (!req.url?.startsWith('/locked/set/dead/')) return;
        req.socket.once('close', () => events.emit('socket-closed'));
        events.emit('pipelined');
      };
      const url = await serve({ store: new MemoryStore(), lock: lockLockedPaths, log: () => {} }, observe);
      const cookie = await storedSession(url, { n: '5' });
      const { hostname, port } = new URL(url);
      const socket = net.connect(Number(port), hostname);
      socket.on('error', () => {});
      await once(socket, 'connect');
      const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nCookie: ${cookie}\r\n\r\n`;
      const holding = once(hangs, 'holding');
      socket.write(request('/locked/hold'));
      await holding;
      let arrivals = 0;
      const pipelined = new Promise<void>((resolve) =>
        events.on('pipelined', () => {
          if (++arrivals === 2) resolve();
        }),
      );
      socket.write(request('/locked/set/dead/1') + request('/locked/set/dead/2'));
      await pipelined;
      const closed = once(events, 'socket-closed');
      socket.destroy();
      await closed;
      hangs.emit('release');
      const next = await get(`${url}/locked/set/after/dead`, cookie);
      assert.equal(next.status, 200);
      assert.deepEqual(next.body, { n: '5', after: 'dead' }, 'the pipelined requests of the gone client saved nothing');
    });

    it('answers a corrupt record with a 500 when invalidateCorrupt is false', async () => {
      const store = new MemoryStore();
      const url = await serve({ store, invalidateCorrupt: false, log: () => {} });
      const cookie = await storedSession(url);
      const { id } = (await whoami(url, cookie)).body;
      store.namespaces.set(id, new Map([['=user', '{not json']]));
      assert.equal((await get(`${url}/whoami`, cookie)).status, 500);
    });

    describe('dbm storage', () => {
      let fixture: BackendFixture;
      let url: string;
      before(async () => {
        fixture = await createFixture('dbm');
        url = await serve({ ...fixture.options, type: 'dbm', lock: true });
      });
      after(() => fixture.cleanup());

      it('persists data across requests', async () => {
        const cookie = await storedSession(url, { user: 'ann', color: 'red' });
        const again = await whoami(url, cookie);
        assert.deepEqual(again.body.data, { user: 'ann', color: 'red' });
        assert.deepEqual(again.setCookies, []);
      });

      it(`counts exactly ${CONCURRENCY} concurrent locked increments of one session`, async () => {
        await lockedIncrements(url, '');
      });
    });

    it('completes the save before the response: a redirect right after a change is followed by a request that sees it', async () => {
      const { probe, namespaceClass } = instrumentedMemory();
      probe.writeDelay = 50;
      const url = await serve({ store: new MemoryStore(), namespaceClass });
      for (let i = 0; i < 3; i++) {
        const redirect = await get(`${url}/login`);
        assert.equal(redirect.status, 302);
        assert.match(redirect.location ?? '', /\/whoami$/);
        const followed = await whoami(url, cookieFrom(redirect, KEY));
        assert.equal(followed.body.data.user, 'ann');
      }
    });

    it('does not renew a rolling cookie of a session that another request moved or removed meanwhile', async () => {
      const url = await serve({ store: new MemoryStore(), cookieExpires: 3600 });
      for (const change of ['regenerate', 'logout']) {
        const cookie = await storedSession(url);
        const holding = once(hangs, 'holding');
        const poll = get(`${url}/hold`, cookie);
        await holding;
        const changed = await get(`${url}/${change}`, cookie);
        assert.equal(changed.status, 200);
        assert.ok(setCookieFor(changed, KEY), `${change} sends its own cookie`);
        hangs.emit('release');
        const polled = await poll;
        assert.equal(polled.status, 200);
        assert.equal(setCookieFor(polled, KEY), undefined, `a request overlapping ${change} renews no cookie`);
        if (change === 'regenerate') {
          const moved = cookieFrom(changed, KEY);
          assert.ok(setCookieFor(await get(`${url}/whoami`, moved), KEY), 'the moved session is renewed as before');
        }
      }
    });

    it('renews a rolling cookie without waiting for a request that holds the lock (skipping the renewal)', {
      timeout: 30_000,
    }, async () => {
      const url = await serve({
        store: new MemoryStore(),
        cookieExpires: 3600,
        lock: lockLockedPaths,
        lockTimeout: 120_000,
      });
      const cookie = await storedSession(url);
      assert.ok(setCookieFor(await get(`${url}/whoami`, cookie), KEY), 'renewed while nothing holds the lock');
      const reading = once(hangs, 'holding reader');
      const poll = get(`${url}/hold/reader`, cookie);
      await reading;
      const locking = once(hangs, 'holding locker');
      const holder = get(`${url}/locked/hold/locker`, cookie);
      await locking;
      hangs.emit('release reader');
      const polled = await poll;
      assert.equal(polled.status, 200);
      assert.equal(setCookieFor(polled, KEY), undefined, 'not renewed while another request holds the lock');
      hangs.emit('release locker');
      assert.equal((await holder).status, 200);
    });

    it('writes the Set-Cookie attributes the options ask for', async () => {
      const defaults = await serve({ store: new MemoryStore() });
      const plain = setCookieFor(await get(`${defaults}/set/a/1`), KEY) ?? '';
      assert.match(plain, /^sid=[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);

      const custom = await serve({
        store: new MemoryStore(),
        cookiePath: '/app',
        cookieDomain: 'example.test',
        secure: true,
        httpOnly: false,
        sameSite: 'Strict',
        cookieExpires: 3600,
      });
      const header = setCookieFor(await get(`${custom}/set/a/1`), KEY) ?? '';
      const attributes = header.split('; ').slice(1);
      assert.deepEqual(
        attributes.filter((attribute) => !attribute.startsWith('Expires=')),
        ['Max-Age=3600', 'Domain=example.test', 'Path=/app', 'Secure', 'SameSite=Strict'],
      );
      const expires = Date.parse(attributes.find((attribute) => attribute.startsWith('Expires='))?.slice(8) ?? '');
      assert.ok(Math.abs(expires - (Date.now() + 3600_000)) < 60_000, 'Expires is an hour away');

      const fixed = await serve({ store: new MemoryStore(), cookieExpires: new Date('2040-01-01T00:00:00Z') });
      assert.match(setCookieFor(await get(`${fixed}/set/a/1`), KEY) ?? '', /; Expires=Sun, 01 Jan 2040 00:00:00 GMT;/);
    });

    /**
     * Checks that the one failure the error handling got is `error` (its name and code), answered
     * 503 Service Unavailable: the error's `statusCode`, which the frameworks' error handling
     * (here the harness's, as their default does) and node:http's adapter answer with.
     */
    const assertFailedWith = (response: Response, failures: unknown[], error: { name: string; code: string }) => {
      assert.equal(response.status, 503);
      assert.deepEqual(failures.map(failureName), [error.name], 'what the error handling got');
      if (typeof response.body === 'object') assert.deepEqual(response.body, { error: error.code });
      else assert.equal(response.body, 'Service Unavailable\n', "node:http's own answer");
    };

    it('answers a storage failure while loading with a 503, and serves again once storage is back', async () => {
      const { probe, namespaceClass } = instrumentedMemory();
      const failures: unknown[] = [];
      const url = await serve({ store: new MemoryStore(), namespaceClass, lock: true, log: () => {} }, undefined, (f) =>
        failures.push(f),
      );
      const cookie = await storedSession(url);
      probe.down = true;
      const failed = await get(`${url}/increment`, cookie);
      assertFailedWith(failed, failures, { name: 'StorageError', code: 'ERR_STORAGE' });
      assert.ok(String(failed.body).length < 2000, 'a short body');
      probe.down = false;
      assert.deepEqual((await get(`${url}/increment`, cookie)).body, { n: 1 });
    });

    it('passes a LockTimeoutError while loading to the error handling, which answers it', async () => {
      const failures: unknown[] = [];
      const url = await serve(
        { store: new MemoryStore(), lock: lockLockedPaths, lockTimeout: 200, log: () => {} },
        undefined,
        (f) => failures.push(f),
      );
      const cookie = await storedSession(url);
      const holding = once(hangs, 'holding');
      const holder = get(`${url}/locked/hold`, cookie);
      await holding;
      const timedOut = await get(`${url}/locked/whoami`, cookie);
      hangs.emit('release');
      assert.equal((await holder).status, 200);
      assertFailedWith(timedOut, failures, { name: 'LockTimeoutError', code: 'ERR_LOCK_TIMEOUT' });
    });
  });

  /** Sends CONCURRENCY increments of one stored session at once, and checks that each saw the one before. */
  async function lockedIncrements(url: string, prefix = '/locked') {
    const cookie = cookieFrom(await get(`${url}${prefix}/set/user/ann`), KEY);
    const responses = await Promise.all(
      Array.from({ length: CONCURRENCY }, () => get(`${url}${prefix}/increment`, cookie)),
    );
    assert.deepEqual(
      responses.map((response) => response.status),
      Array(CONCURRENCY).fill(200),
    );
    const counts = responses.map((response) => (response.body as { n: number }).n).sort((a, b) => a - b);
    assert.deepEqual(
      counts,
      Array.from({ length: CONCURRENCY }, (_, i) => i + 1),
      'each request saw the one before',
    );
    const final = await get(`${url}/whoami`, cookie);
    assert.equal((final.body as { data: { n: unknown } }).data.n, CONCURRENCY);
  }
}
