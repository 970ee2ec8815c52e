import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import Koa from 'koa';
import { sessionlock } from '../../lib/adapters/koa.js';
import { MemoryStore } from '../../lib/index.js';
import { adapterConformance, type StartServer } from '../conformance/adapter.suite.js';
import { abandonmentLog, leaveWhileHandled } from '../fixtures/gone-waiter.js';
import { cookieFrom, get, streamingGet } from '../fixtures/http-client.js';
import { listen, type RunningServer } from '../fixtures/http-server.js';

const start: StartServer = (options, action, observe, failed) => {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    observe?.(ctx.req, ctx.res);
    try {
      await next();
    } catch (error) {
      failed?.(error);
      ctx.status = (error as { statusCode?: number }).statusCode ?? 500;
      ctx.body = { error: (error as { code?: string }).code };
    }
  });
  app.use(sessionlock(options));
  app.use(async (ctx) => {
    const reply = await action({ path: ctx.url, session: ctx.session });
    if (reply.cookie) ctx.append('Set-Cookie', reply.cookie);
    if (reply.redirect) {
      ctx.redirect(reply.redirect);
      return;
    }
    ctx.status = reply.status ?? 200;
    ctx.body = reply.stream ? Readable.from(reply.stream) : reply.json;
    if (reply.stream) ctx.type = 'json';
  });
  return listen(http.createServer(app.callback()));
};

adapterConformance('Koa', start);

describe('Koa adapter', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));

  /** A quiet app whose first middleware records what downstream throws, in `seen`, and answers it with `answer`. */
  const catchingApp = (seen: unknown[], answer: (ctx: Koa.Context) => void) => {
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        seen.push(error);
        answer(ctx);
      }
    });
    return app;
  };

  it('finishes the session of a response downstream writes itself (ctx.respond = false) before its first write', async () => {
    const events = new EventEmitter();
    const app = new Koa();
    app.silent = true;
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 2000 }));
    app.use(async (ctx) => {
      if (ctx.path !== '/stream') {
        ctx.body = ctx.session.data;
        return;
      }
      ctx.session.data.streamed = true;
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'text/plain' });
      ctx.res.write('part 1');
      await once(events, 'end stream');
      ctx.res.end('part 2');
    });
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const response = await streamingGet(`${server.url}/stream`);
    assert.match(response.cookie, /^sid=/, "the new session's cookie came with the response");
    const other = await get(`${server.url}/whoami`, response.cookie);
    events.emit('end stream');
    await response.rest();
    assert.equal(other.status, 200, 'a locked request of the session did not wait for the stream');
    assert.deepEqual(other.body, { streamed: true });
  });

  it('saves nothing of a request that throws after setting ctx.respond = false, whatever status Koa answers', async () => {
    const app = new Koa();
    app.silent = true;
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true }));
    app.use(async (ctx) => {
      if (ctx.path === '/throw') {
        ctx.session.data.thrown = true;
        ctx.respond = false;
        ctx.throw(400, 'bad request (expected by the test)');
      }
      ctx.session.data.n ??= 0;
      ctx.body = ctx.session.data;
    });
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    assert.equal((await get(`${server.url}/throw`, cookie)).status, 400);
    assert.deepEqual((await get(server.url, cookie)).body, { n: 0 });
  });

  it('rethrows downstream errors to error-handling middleware upstream, with the lock released', async () => {
    const seen: unknown[] = [];
    const app = catchingApp(seen, (ctx) => {
      ctx.status = 418;
      ctx.body = { locked: ctx.session.locked };
    });
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true }));
    app.use((ctx) => {
      ctx.session.data.n = (ctx.session.data.n ?? 0) + 1;
      if (ctx.path === '/throw') throw new Error('thrown (expected by the test)');
      ctx.body = ctx.session.data.n;
    });
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    const failed = await get(`${server.url}/throw`, cookie);
    assert.equal(failed.status, 418);
    assert.deepEqual(failed.body, { locked: false });
    assert.equal(seen.length, 1);
    assert.equal((await get(server.url, cookie)).body, 2);
  });

  it("refuses koa-session's logout by assignment (ctx.session = null) with a TypeError, and warns of data set on the session itself", async () => {
    const seen: unknown[] = [];
    const app = catchingApp(seen, (ctx) => {
      ctx.status = 500;
    });
    app.use(sessionlock({ key: 'sid', store: new MemoryStore() }));
    app.use((ctx) => {
      if (ctx.path === '/logout') (ctx as { session: unknown }).session = null;
      else if (ctx.path === '/naive') Object.assign(ctx.session, { views: 1 });
      else ctx.session.data.user = 'ann';
      ctx.body = { user: ctx.session.data.user ?? null };
    });
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    assert.equal((await get(`${server.url}/logout`, cookie)).status, 500);
    assert.ok(seen[0] instanceof TypeError && /to log out, await session\.invalidate\(\)/.test(seen[0].message));
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      assert.deepEqual((await get(`${server.url}/naive`, cookie)).body, { user: 'ann' });
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(
      warnings.some(
        (w) =>
          (w as { code?: string }).code === 'SESSIONLOCK_UNSTORED_PROPERTY' && w.message.includes('session.data.views'),
      ),
      warnings.map((w) => w.message).join('\n'),
    );
  });

  it('does not rethrow the LockCompromisedError of a session it gave up when the client left', async () => {
    const events = new EventEmitter();
    const { log, lines: logs } = abandonmentLog(events, 'settled');
    const app = new Koa();
    app.silent = true;
    const reported: unknown[] = [];
    app.on('error', (error) => reported.push(error));
    app.use(async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        reported.push(error);
        events.emit('settled');
        throw error;
      }
    });
    app.use(sessionlock({ key: 'sid', store: new MemoryStore(), lock: true, log }));
    app.use(async (ctx) => {
      if (ctx.path === '/leave') {
        const closed = once(ctx.res, 'close');
        events.emit('entered');
        await closed;
        ctx.session.data.n = 2;
        await ctx.session.save(); // throws: the session was given up, its lock released
      }
      ctx.session.data.n = 1;
      ctx.body = 'ok';
    });
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const cookie = cookieFrom(await get(server.url), 'sid');
    const settled = once(events, 'settled');
    await leaveWhileHandled(`${server.url}/leave`, cookie, once(events, 'entered'));
    await settled;
    assert.deepEqual(reported, [], 'neither rethrown upstream nor an app error event');
    assert.equal(logs.length, 1, 'one debug line');
  });

  it('does nothing when mounted again for a request that has its session (no deadlock, one cookie)', async () => {
    const options = { key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 3000, cookieExpires: 60 };
    const inner = sessionlock(options);
    const app = new Koa();
    app.silent = true;
    app.use(sessionlock(options));
    // A composed section with its own session middleware, as koa-mount or a router builds it.
    app.use((ctx, next) =>
      inner(ctx, async () => {
        ctx.session.data.n = (ctx.session.data.n ?? 0) + 1;
        ctx.body = ctx.session.data.n;
        await next();
      }),
    );
    const server = await listen(http.createServer(app.callback()));
    servers.push(server);
    const first = await get(server.url);
    assert.equal(first.status, 200);
    const second = await get(server.url, cookieFrom(first, 'sid'));
    assert.equal(second.status, 200, 'the inner middleware did not wait for the lock the outer one holds');
    assert.equal(second.body, 2);
    assert.equal(second.setCookies.filter((header) => header.startsWith('sid=')).length, 1);
  });
});
