import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import { sessionlock } from '../../lib/adapters/express.js';
import { MemoryStore, StorageError } from '../../lib/index.js';
import { adapterConformance, type StartServer } from '../conformance/adapter.suite.js';
import { goneWaiter } from '../fixtures/gone-waiter.js';
import { cookieFrom, get } from '../fixtures/http-client.js';
import { listen, type RunningServer } from '../fixtures/http-server.js';
import { instrumentedMemory } from '../fixtures/instrumented-storage.js';

const start: StartServer = (options, action, observe, failed) => {
  const app = express();
  app.use((req, res, next) => {
    observe?.(req, res);
    next();
  });
  app.use(sessionlock(options));
  app.use(async (req, res) => {
    const reply = await action({ path: req.originalUrl, session: req.session });
    if (reply.cookie) res.append('Set-Cookie', reply.cookie);
    if (reply.redirect) res.redirect(302, reply.redirect);
    else if (reply.stream) Readable.from(reply.stream).pipe(res.status(reply.status ?? 200).type('json'));
    else res.status(reply.status ?? 200).json(reply.json);
  });
  app.use((error: { code?: string; statusCode?: number }, _req: Request, res: Response, _next: NextFunction) => {
    failed?.(error);
    res.status(error.statusCode ?? 500).json({ error: error.code });
  });
  return listen(http.createServer(app));
};

adapterConformance('Express', start);

describe('Express adapter', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));
  const serve = async (app: express.Express) => {
    const server = await listen(http.createServer(app));
    servers.push(server);
    return server.url;
  };
  const appWith = (options = {}) => {
    const app = express();
    app.set('env', 'test');
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true, ...options }));
    return app;
  };

  it('warns once when a router mounts it again with other options, which do not apply, and not for the same options', async () => {
    const store = new MemoryStore();
    const options = { key: 'sid', store };
    const app = express();
    app.use(sessionlock(options));
    const same = express.Router();
    same.use(sessionlock({ ...options, lock: false, secret: undefined, log: () => {} }));
    same.get('/', (_req, res) => res.json('same'));
    app.use('/same', same);
    const admin = express.Router();
    admin.use(sessionlock({ key: 'admin_sid', store, lock: true }));
    admin.get('/', (req, res) => res.json({ locked: req.session.locked }));
    app.use('/admin', admin);
    const url = await serve(app);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      assert.equal((await get(`${url}/same`)).body, 'same');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(
        warnings,
        [],
        'the same cookie, lock and storage (defaults spelled out, a log): nothing to warn of',
      );
      assert.deepEqual((await get(`${url}/admin`)).body, { locked: false }, "the router's lock: true did not apply");
      await get(`${url}/admin`);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(
      warnings.map((w) => (w as { code?: string }).code),
      ['SESSIONLOCK_MOUNTED_TWICE'],
    );
  });

  it("releases the lock through Express's default error handler, for thrown errors and next(error)", async () => {
    const app = appWith();
    app.get('/count', (req, res) => {
      req.session.data.n = (req.session.data.n ?? 0) + 1;
      res.json(req.session.data.n);
    });
    app.get('/throw', (req) => {
      req.session.data.n = -1;
      throw new Error('thrown (expected by the test)');
    });
    app.get('/next', (req, _res, next) => {
      req.session.data.n = -1;
      setImmediate(() => next(new Error('passed on (expected by the test)')));
    });
    const url = await serve(app);
    const cookie = cookieFrom(await get(`${url}/count`), 'sid');
    assert.equal((await get(`${url}/throw`, cookie)).status, 500);
    assert.equal((await get(`${url}/next`, cookie)).status, 500);
    assert.equal((await get(`${url}/count`, cookie)).body, 2);
  });

  /** An app that stores a session at `/`, and `loadWhileDown()`: a request of that session while its storage is down. */
  const appWithFailingStorage = () => {
    const { probe, namespaceClass } = instrumentedMemory();
    const app = appWith({ namespaceClass });
    app.get('/', (req, res) => {
      req.session.data.user = 'ann';
      res.send('ok');
    });
    const loadWhileDown = async () => {
      const url = await serve(app);
      const cookie = cookieFrom(await get(url), 'sid');
      probe.down = true;
      return get(url, cookie);
    };
    return { app, loadWhileDown };
  };

  it('passes a storage failure while loading to the error handlers', async () => {
    const { app, loadWhileDown } = appWithFailingStorage();
    let received: unknown;
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      received = error;
      res.status(503).send('try later');
    });
    const response = await loadWhileDown();
    assert.equal(response.status, 503);
    assert.ok(received instanceof StorageError);
  });

  it("answers a storage failure while loading with a 503 through Express's default error handler", async () => {
    const response = await appWithFailingStorage().loadWhileDown();
    assert.equal(response.status, 503, "Express's default handler answers the error's statusCode");
  });

  it('cuts, without crashing, a response whose handler throws after starting it; saves nothing and releases the lock', async () => {
    const app = appWith({ log: () => {} });
    app.get('/init', (req, res) => {
      req.session.data.balance = 100;
      res.send('ok');
    });
    app.get('/write-head', (req, res) => {
      req.session.data.balance -= 30;
      res.writeHead(200, { 'content-type': 'text/plain' });
      throw new Error('thrown after writeHead (expected by the test)');
    });
    app.get('/write', (req, res) => {
      req.session.data.balance -= 30;
      res.type('text').write('row1\n');
      throw new Error('thrown after write (expected by the test)');
    });
    app.get('/write-microtask', async (req, res) => {
      req.session.data.balance -= 30;
      res.type('text').write('row1\n');
      await Promise.resolve();
      throw new Error('thrown a microtask after write (expected by the test)');
    });
    app.get('/show', (req, res) => {
      res.json(req.session.data.balance);
    });
    const url = await serve(app);
    const cookie = cookieFrom(await get(`${url}/init`), 'sid');
    for (const path of ['/write-head', '/write', '/write-microtask']) {
      const outcome = await get(`${url}${path}`, cookie).then(
        (response) => response.status,
        () => 'cut',
      );
      assert.ok(outcome === 'cut' || outcome === 500, `${path}: ${outcome}`);
      const shown = await get(`${url}/show`, cookie);
      assert.equal(shown.status, 200, `${path}: the lock was released`);
      assert.equal(shown.body, 100, `${path}: the failed request saved nothing`);
    }
  });

  it('neither runs the handler of, nor keeps the lock of, a request whose client left while it waited for the lock', async () => {
    const scenario = goneWaiter();
    const app = express();
    app.set('env', 'test');
    app.use((req, res, next) => {
      scenario.observe(req, res);
      next();
    });
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 1000, log: () => {} }));
    app.get('/count', (req, res) => {
      req.session.data.n = (req.session.data.n ?? 0) + 1;
      res.json(req.session.data.n);
    });
    app.get('/holder', async (_req, res) => {
      await scenario.hold();
      res.send('held');
    });
    app.get('/waiter', (req, res) => {
      if (!scenario.gone(req, res)) res.send('waited');
    });
    const url = await serve(app);
    const cookie = cookieFrom(await get(`${url}/count`), 'sid');
    assert.equal((await scenario.run(url, cookie)).status, 200);
    const next = await get(`${url}/count`, cookie);
    assert.equal(next.status, 200, 'the lock of the abandoned request was released');
    assert.equal(next.body, 2);
    assert.equal(scenario.waiterRuns, 0, "the waiter's handler did not run");
  });

  it('survives a handler that answers twice: the second send throws in the handler, as without the hold', async () => {
    const thrown: unknown[] = [];
    const app = appWith({ log: () => {} });
    app.get('/init', (req, res) => {
      req.session.data.n = 1;
      res.send('ok');
    });
    app.get('/double', (req, res) => {
      req.session.data.n = 2;
      res.status(401).send('denied');
      try {
        res.send('secret');
      } catch (error) {
        thrown.push((error as { code?: string }).code);
        throw error;
      }
    });
    app.get('/json-twice', (_req, res) => {
      res.json({ a: 1 });
      res.json({ b: 2 });
    });
    app.get('/show', (req, res) => {
      res.json(req.session.data.n);
    });
    const url = await serve(app);
    const cookie = cookieFrom(await get(`${url}/init`), 'sid');
    for (const path of ['/double', '/json-twice']) {
      const outcome = await get(`${url}${path}`, cookie).then(
        (response) => response.body,
        () => 'cut',
      );
      assert.ok(
        outcome === 'cut' || outcome === 'denied' || (outcome as { a?: number }).a === 1,
        `${path}: ${outcome}`,
      );
      const shown = await get(`${url}/show`, cookie);
      assert.equal(shown.status, 200, `${path}: the server still serves, and the lock was released`);
    }
    assert.deepEqual(thrown, ['ERR_HTTP_HEADERS_SENT']);
  });

  it('does nothing when mounted again on the path of a request that has its session (no deadlock)', async () => {
    const options = { key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 3000, log: () => {} };
    const app = express();
    app.use(sessionlock(options));
    const router = express.Router();
    router.use(sessionlock(options));
    router.get('/count', (req, res) => {
      req.session.data.n = (req.session.data.n ?? 0) + 1;
      res.json(req.session.data.n);
    });
    app.use('/r', router);
    const url = await serve(app);
    const first = await get(`${url}/r/count`);
    assert.equal(first.status, 200);
    const cookie = cookieFrom(first, 'sid');
    const second = await get(`${url}/r/count`, cookie);
    assert.equal(second.status, 200, 'the second middleware did not wait for the lock the first one holds');
    assert.equal(second.body, 2);
  });

  it('holds back a response written in pieces until the session is saved', async () => {
    const app = appWith();
    app.get('/stream', (req, res) => {
      req.session.data.user = 'ann';
      res.type('text').write('a');
      res.write('b');
      res.end('c');
    });
    const url = await serve(app);
    const response = await get(`${url}/stream`);
    assert.equal(response.body, 'abc');
    assert.ok(cookieFrom(response, 'sid'));
  });
});
