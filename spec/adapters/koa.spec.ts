import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import Koa from 'koa';
import { sessionlock } from '../../lib/adapters/koa.js';
import { MemoryStore } from '../../lib/index.js';
import { adapterConformance, type StartServer } from '../conformance/adapter.suite.js';
import { cookieFrom, get } from '../fixtures/http-client.js';
import { listen, type RunningServer } from '../fixtures/http-server.js';

const start: StartServer = (options, action, observe) => {
  const app = new Koa();
  app.silent = true;
  app.use((ctx, next) => {
    observe?.(ctx.req, ctx.res);
    return next();
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
    ctx.body = reply.json;
  });
  return listen(http.createServer(app.callback()));
};

adapterConformance('Koa', start);

describe('Koa adapter', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));

  it('rethrows downstream errors to error-handling middleware upstream, with the lock released', async () => {
    const app = new Koa();
    app.silent = true;
    const seen: unknown[] = [];
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        seen.push(error);
        ctx.status = 418;
        ctx.body = { locked: ctx.session.locked };
      }
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
