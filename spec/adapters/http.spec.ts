import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { type SessionHandler, withSession } from '../../lib/adapters/http.js';
import { MemoryStore } from '../../lib/index.js';
import { adapterConformance, type StartServer } from '../conformance/adapter.suite.js';
import { abandonmentLog, goneWaiter, leaveWhileHandled } from '../fixtures/gone-waiter.js';
import { cookieFrom, get } from '../fixtures/http-client.js';
import { listen, type RunningServer } from '../fixtures/http-server.js';

const start: StartServer = (options, action, observe, failed) => {
  const log = (line: string) => {
    if (line.startsWith('sessionlock: ')) failed?.(line);
    options.log?.(line);
  };
  const listener = withSession(
    async (req, res) => {
      const reply = await action({ path: req.url ?? '/', session: req.session });
      if (reply.cookie) res.setHeader('set-cookie', reply.cookie);
      if (reply.redirect) {
        res.writeHead(302, { location: reply.redirect }).end();
        return;
      }
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json' });
      if (reply.stream) Readable.from(reply.stream).pipe(res);
      else res.end(JSON.stringify(reply.json));
    },
    { ...options, log },
  );
  return listen(
    http.createServer((req, res) => {
      observe?.(req, res);
      listener(req, res);
    }),
  );
};

adapterConformance('node:http', start);

describe('node:http adapter', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));
  const serve = async (handler: SessionHandler, lock = true) => {
    const logs: string[] = [];
    const server = await listen(
      http.createServer(withSession(handler, { key: 'sid', store: new MemoryStore(), lock, log: (l) => logs.push(l) })),
    );
    servers.push(server);
    return { url: server.url, logs };
  };

  it('answers a synchronous throw with a 500, logs it, and releases the lock', async () => {
    const { url, logs } = await serve((req, res) => {
      if (req.url === '/throw') throw new Error('sync failure (expected by the test)');
      req.session.data.n = (req.session.data.n ?? 0) + 1;
      res.end(String(req.session.data.n));
    });
    const first = await get(`${url}/`);
    const cookie = cookieFrom(first, 'sid');
    const failed = await get(`${url}/throw`, cookie);
    assert.equal(failed.status, 500);
    assert.equal(failed.body, 'Internal Server Error\n');
    assert.ok(logs.some((line) => line.includes('sync failure')));
    assert.equal((await get(`${url}/`, cookie)).body, 2);
  });

  it("sends every value of a header that writeHead's flat array repeats", async () => {
    const { url } = await serve((req, res) => {
      req.session.data.user = 'ann';
      res.setHeader('vary', 'Origin');
      res.writeHead(200, [
        'Link',
        '</a.css>; rel=preload',
        'Link',
        '</b.js>; rel=preload',
        'Vary',
        'Accept',
        'Vary',
        'Cookie',
      ]);
      res.end('ok');
    });
    const response = await fetch(url);
    assert.equal(await response.text(), 'ok');
    assert.equal(response.headers.get('link'), '</a.css>; rel=preload, </b.js>; rel=preload');
    assert.equal(response.headers.get('vary'), 'Accept, Cookie', "the array's values replace the earlier one");
    assert.equal(response.headers.getSetCookie().length, 1, "the session's cookie");
  });

  it('serves a handler that answers later from a callback, without returning a promise', async () => {
    const { url } = await serve((req, res) => {
      req.session.data.user = 'ann';
      setImmediate(() => {
        res.statusCode = 201;
        res.end('later');
      });
    });
    const response = await get(url);
    assert.equal(response.status, 201);
    assert.equal(response.body, 'later');
    const cookie = cookieFrom(response, 'sid');
    assert.equal((await get(url, cookie)).status, 201, 'the lock was released');
  });

  it('streams a piped body in order after the save', async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(4, '0')}${'.'.repeat(4000)}\n`);
    const { url } = await serve((req, res) => {
      req.session.data.streamed = true;
      res.setHeader('content-type', 'text/plain');
      Readable.from(chunks).pipe(res);
    });
    const response = await get(url);
    assert.equal(response.status, 200);
    assert.equal(response.body, chunks.join(''));
    const again = await get(`${url}/`, cookieFrom(response, 'sid'));
    assert.equal(again.status, 200);
  });

  it('keeps Set-Cookie values given to writeHead, as an object or a flat array', async () => {
    const { url } = await serve((req, res) => {
      req.session.data.user = 'ann';
      if (req.url === '/array') res.writeHead(200, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-Test', 'yes']);
      else res.writeHead(200, 'Fine', { 'Set-Cookie': ['a=1', 'b=2'], 'X-Test': 'yes' });
      res.end('ok');
    });
    for (const path of ['/object', '/array']) {
      const response = await fetch(`${url}${path}`);
      const cookies = response.headers.getSetCookie();
      assert.deepEqual(cookies.slice(0, 2), ['a=1', 'b=2'], path);
      assert.match(cookies[2] ?? '', /^sid=/);
      assert.equal(response.headers.get('x-test'), 'yes');
      if (path === '/object') assert.equal(response.statusText, 'Fine');
    }
  });

  it('cuts a response whose handler throws after sending its headers, and releases the lock', async () => {
    const { url } = await serve(async (req, res) => {
      req.session.data.n = (req.session.data.n ?? 0) + 1;
      if (req.url === '/partial') {
        res.write('partial');
        await new Promise((resolve) => res.write(' more', resolve));
        throw new Error('late failure (expected by the test)');
      }
      res.end(String(req.session.data.n));
    });
    const cookie = cookieFrom(await get(url), 'sid');
    await assert.rejects(get(`${url}/partial`, cookie));
    assert.equal((await get(url, cookie)).body, 3, 'the partial request saved before it failed; the lock is free');
  });

  it('saves nothing of a handler that throws right after starting its response (at once or a few microtasks later)', async () => {
    const { url } = await serve((req, res) => {
      if (req.url === '/init') {
        req.session.data.balance = 100;
        res.end('ok');
        return;
      }
      if (req.url === '/show') {
        res.end(String(req.session.data.balance));
        return;
      }
      req.session.data.balance -= 30;
      if (req.url === '/write-head') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        throw new Error('thrown after writeHead (expected by the test)');
      }
      if (req.url === '/end') {
        res.end('done');
        throw new Error('thrown after end (expected by the test)');
      }
      res.write('row1\n');
      return Promise.resolve()
        .then(() => {})
        .then(() => {
          throw new Error('thrown microtasks after write (expected by the test)');
        });
    });
    const cookie = cookieFrom(await get(`${url}/init`), 'sid');
    for (const [path, status, body] of [
      ['/write-head', 500, 'Internal Server Error\n'],
      ['/write', 500, 'Internal Server Error\n'],
      ['/end', 200, 'done'],
    ] as const) {
      const response = await get(`${url}${path}`, cookie);
      assert.equal(response.status, status, path);
      assert.equal(response.body, body, path);
      assert.equal((await get(`${url}/show`, cookie)).body, 100, `${path}: the failed request saved nothing`);
    }
  });

  it('neither runs the handler of, nor keeps the lock of, a request whose client left while it waited for the lock', async () => {
    const scenario = goneWaiter();
    const listener = withSession(
      async (req, res) => {
        if (req.url === '/holder') await scenario.hold();
        else if (req.url === '/waiter' && scenario.gone(req, res)) return; // no answer for a client that went away
        req.session.data.n = (req.session.data.n ?? 0) + 1;
        res.end(String(req.session.data.n));
      },
      { key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 1000, log: () => {} },
    );
    const server = await listen(
      http.createServer((req, res) => {
        scenario.observe(req, res);
        listener(req, res);
      }),
    );
    servers.push(server);
    const { url } = server;
    const cookie = cookieFrom(await get(url), 'sid');
    assert.equal((await scenario.run(url, cookie)).body, 2);
    const next = await get(url, cookie);
    assert.equal(next.status, 200, 'the lock of the abandoned request was released');
    assert.equal(next.body, 3);
    assert.equal(scenario.waiterRuns, 0, "the waiter's handler did not run");
  });

  it('does not report as a failure the LockCompromisedError of a session it gave up when the client left', async () => {
    const events = new EventEmitter();
    const { log, lines: logs } = abandonmentLog(events, 'logged');
    const listener = withSession(
      async (req, res) => {
        if (req.url === '/leave') {
          const closed = once(res, 'close');
          events.emit('entered');
          await closed;
          req.session.data.n = 2;
          await req.session.save(); // throws: the session was given up, its lock released
        }
        req.session.data.n = 1;
        res.end('ok');
      },
      { key: 'sid', store: new MemoryStore(), lock: true, log },
    );
    const server = await listen(http.createServer(listener));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    const logged = once(events, 'logged');
    await leaveWhileHandled(`${server.url}/leave`, cookie, once(events, 'entered'));
    await logged;
    assert.equal(logs.length, 1, 'one line');
    assert.doesNotMatch(logs[0] ?? '', /^sessionlock: /, 'a debug line, not a failure reported');
  });

  it('abandons a session whose client left while its save before the response waited, so a lock its handler takes later is refused', async () => {
    const events = new EventEmitter();
    let releaseHolder = () => {};
    const held = new Promise<void>((resolve) => {
      releaseHolder = resolve;
    });
    let letWriterWrite = () => {};
    const writerMayWrite = new Promise<void>((resolve) => {
      letWriterWrite = resolve;
    });
    let letWriterGoOn = () => {};
    const writerGoesOn = new Promise<void>((resolve) => {
      letWriterGoOn = resolve;
    });
    const outcome: string[] = [];
    const listener = withSession(
      async (req, res) => {
        if (req.url === '/holder') {
          events.emit('holding');
          await held;
        } else if (req.url === '/writer') {
          events.emit('loaded');
          await writerMayWrite;
          req.session.data.w = 'first';
          const closed = once(res, 'close');
          res.write('part 1'); // held back: the adapter saves first, behind the holder's lock
          events.emit('entered');
          await closed;
          events.emit('closed');
          await writerGoesOn;
          await req.session.lock().then(
            () => outcome.push('locked'),
            (error: { code?: string }) => outcome.push(error.code ?? 'other'),
          );
          events.emit('done');
          return; // gives up without answering: only the adapter could release a lock now
        } else req.session.data.w ??= 'init';
        res.end(String(req.session.data.w));
      },
      {
        key: 'sid',
        store: new MemoryStore(),
        lock: (req) => req.url !== '/writer',
        lockTimeout: 3000,
        log: () => {},
      },
    );
    const server = await listen(http.createServer(listener));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    const loaded = once(events, 'loaded');
    const left = leaveWhileHandled(`${server.url}/writer`, cookie, once(events, 'entered'));
    await loaded; // loaded before the holder takes the lock: an unlocked load would wait for it
    const holding = once(events, 'holding');
    const holder = get(`${server.url}/holder`, cookie);
    await holding;
    const closed = once(events, 'closed');
    letWriterWrite();
    await left;
    await closed; // the client left while the writer's save waits for the holder's lock
    releaseHolder();
    await holder;
    assert.equal((await get(server.url, cookie)).body, 'first', "the writer's save has landed");
    const done = once(events, 'done');
    letWriterGoOn();
    await done;
    assert.deepEqual(outcome, ['ERR_LOCK_COMPROMISED']);
    assert.equal((await get(server.url, cookie)).status, 200, 'no lock left held');
  });

  it('lets a complete response go when the handler throws after ending it', async () => {
    const { url } = await serve((_req, res) => {
      res.end('done');
      throw new Error('failure after the response (expected by the test)');
    });
    const response = await get(url);
    assert.equal(response.status, 200);
    assert.equal(response.body, 'done');
  });

  it('checks its options when it is created', () => {
    assert.throws(() => withSession(() => {}, { lock: 'yes' as never }), /lock must be/);
    assert.throws(() => withSession(() => {}, { timeout: -1 }), /timeout/);
    assert.throws(() => withSession(undefined as never), /handler/);
  });

  it('runs the inner handler with the outer session when wrapped twice (no deadlock, one cookie, failures answered)', async () => {
    const options = { key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 3000, cookieExpires: 60 };
    const inner = withSession(
      (req, res) => {
        if (req.url === '/throw') throw new Error('inner failure (expected by the test)');
        req.session.data.n = (req.session.data.n ?? 0) + 1;
        res.end(String(req.session.data.n));
      },
      { ...options, log: () => {} },
    );
    const server = await listen(http.createServer(withSession(inner, { ...options, log: () => {} })));
    servers.push(server);
    const first = await get(server.url);
    assert.equal(first.status, 200);
    const cookie = cookieFrom(first, 'sid');
    const second = await get(server.url, cookie);
    assert.equal(second.status, 200, 'the inner wrapper did not wait for the lock the outer one holds');
    assert.equal(second.body, 2);
    assert.equal(second.setCookies.filter((header) => header.startsWith('sid=')).length, 1);
    assert.equal((await get(`${server.url}/throw`, cookie)).status, 500);
    assert.equal((await get(server.url, cookie)).body, 3);
  });

  it('gives up the session of an HTTP/2 stream its client cancelled mid-response: a later save is refused, not stored', async () => {
    const events = new EventEmitter();
    const outcome: string[] = [];
    const server = http2.createServer(
      withSession(
        async (req, res) => {
          if (req.url !== '/stream') {
            req.session.data.n = 1;
            res.end('stored');
            return;
          }
          const closed = once(res, 'close');
          res.write('part 1');
          await closed;
          req.session.data.late = 'after the cancel';
          await req.session.save().then(
            () => outcome.push('saved'),
            (error: { code?: string }) => outcome.push(error.code ?? 'other'),
          );
          events.emit('done');
        },
        { key: 'sid', store: new MemoryStore(), log: () => {} },
      ) as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const first = client.request({ ':path': '/' });
      const [headers] = (await once(first, 'response')) as [http2.IncomingHttpHeaders];
      for await (const _ of first);
      const cookie = headers['set-cookie']?.[0]?.split(';')[0] as string;
      const stream = client.request({ ':path': '/stream', cookie });
      await once(stream, 'data');
      const done = once(events, 'done');
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await done;
      assert.deepEqual(outcome, ['ERR_LOCK_COMPROMISED'], 'the cancelled request is abandoned, as a client that left');
    } finally {
      client.close();
      server.close();
    }
  });

  it('saves none of the changes a handler made after its response went out when it then fails', async () => {
    const { url, logs } = await serve(async (req, res) => {
      if (req.url === '/fail-late') {
        await new Promise((resolve) => res.write('sent', resolve)); // the adapter saved the session first
        res.end();
        req.session.data.late = 'from a failed request';
        throw new Error('failure after the response (expected by the test)');
      }
      req.session.data.user ??= 'ann';
      res.end(JSON.stringify(req.session.data));
    }, false);
    const cookie = cookieFrom(await get(url), 'sid');
    const decided = new Promise<string>((resolve) => {
      const push = logs.push.bind(logs);
      logs.push = (...lines: string[]) => {
        for (const line of lines) if (/after its save|while its response went out/.test(line)) resolve(line);
        return push(...lines);
      };
    });
    assert.equal((await get(`${url}/fail-late`, cookie)).body, 'sent');
    assert.match(await decided, /its request failed; what it changed after its save is not saved$/);
    assert.deepEqual((await get(url, cookie)).body, { user: 'ann' });
  });

  it('serves an HTTP/2 compat server without a process warning (no status message read or set)', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const server = http2.createServer(
      withSession(
        (req, res) => {
          if (req.url === '/throw') throw new Error('h2 failure (expected by the test)');
          req.session.data.n = (req.session.data.n ?? 0) + 1;
          res.write('n=');
          res.end(String(req.session.data.n));
        },
        { key: 'sid', store: new MemoryStore(), lock: true, log: () => {} },
        // The compat API's request and response stand in for node:http's.
      ) as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const request = async (path: string, cookie?: string) => {
      const stream = client.request({ ':path': path, ...(cookie ? { cookie } : {}) });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      let body = '';
      for await (const chunk of stream) body += chunk;
      return { status: headers[':status'], body, cookie: headers['set-cookie']?.[0]?.split(';')[0] };
    };
    try {
      const first = await request('/');
      assert.deepEqual([first.status, first.body], [200, 'n=1']);
      assert.equal((await request('/throw', first.cookie)).status, 500);
      assert.equal((await request('/', first.cookie)).body, 'n=2');
      await new Promise(setImmediate);
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      client.close();
      server.close();
    }
  });
});
