import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import type { SessionMiddlewareOptions } from '../../lib/adapters/core.js';
import { sessionlock } from '../../lib/adapters/fastify.js';
import { MemoryStore } from '../../lib/index.js';
import { adapterConformance, type StartServer } from '../conformance/adapter.suite.js';
import { cookieFrom, get, streamingGet } from '../fixtures/http-client.js';
import type { RunningServer } from '../fixtures/http-server.js';

async function listen(app: FastifyInstance): Promise<RunningServer> {
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, close: () => app.close() };
}

const start: StartServer = async (options, action, observe, failed) => {
  const app = Fastify({ forceCloseConnections: true });
  app.addHook('onRequest', async (request, reply) => observe?.(request.raw, reply.raw));
  app.setErrorHandler((error: { code?: string; statusCode?: number }, _request, reply) => {
    failed?.(error);
    return reply.code(error.statusCode ?? 500).send({ error: error.code });
  });
  await app.register(sessionlock, options);
  app.all('/*', async (request, reply) => {
    const result = await action({ path: request.url, session: request.session });
    if (result.cookie) reply.header('set-cookie', result.cookie);
    if (result.redirect) return reply.redirect(result.redirect, 302);
    if (result.stream) return reply.type('application/json').send(Readable.from(result.stream));
    return reply.code(result.status ?? 200).send(result.json);
  });
  return listen(app);
};

adapterConformance('Fastify', start);

describe('Fastify adapter', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));
  const serve = async (options: SessionMiddlewareOptions, routes: (app: FastifyInstance) => void) => {
    const app = Fastify({ forceCloseConnections: true });
    await app.register(sessionlock, { key: 'sid', store: new MemoryStore(), ...options });
    routes(app);
    const server = await listen(app);
    servers.push(server);
    return server.url;
  };

  it('finishes the session of a hijacked reply before its first write: saved, cookie sent, lock released while it streams', async () => {
    const events = new EventEmitter();
    const url = await serve({ lock: true, lockTimeout: 2000 }, (app) => {
      app.get('/stream', async (request, reply) => {
        request.session.data.streamed = true;
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/plain' });
        reply.raw.write('part 1');
        await once(events, 'end stream');
        reply.raw.end('part 2');
      });
      app.get('/whoami', async (request) => request.session.data);
    });
    const response = await streamingGet(`${url}/stream`);
    assert.match(response.cookie, /^sid=/, "the new session's cookie came with the hijacked reply");
    const other = await get(`${url}/whoami`, response.cookie);
    events.emit('end stream');
    await response.rest();
    assert.equal(other.status, 200, 'a locked request of the session did not wait for the stream');
    assert.deepEqual(other.body, { streamed: true });
  });

  it("locks a route by its config: { sessionLock: true }, and the route's false overrides the lock option", async () => {
    const increment = async (request: { session: { data: Record<string, number> } }) => {
      request.session.data.n = (request.session.data.n ?? 0) + 1;
      return { n: request.session.data.n };
    };
    const url = await serve({}, (app) => {
      app.get('/locked', { config: { sessionLock: true } }, increment);
      app.get('/start', async (request) => {
        request.session.data.n = 0;
        return { locked: request.session.locked };
      });
    });
    const first = await get(`${url}/start`);
    assert.deepEqual(first.body, { locked: false });
    const cookie = cookieFrom(first, 'sid');
    const responses = await Promise.all(Array.from({ length: 100 }, () => get(`${url}/locked`, cookie)));
    assert.deepEqual(
      responses.map((response) => (response.body as { n: number }).n).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );

    const optedOut = await serve({ lock: true }, (app) => {
      app.get('/free', { config: { sessionLock: false } }, async (request) => ({ locked: request.session.locked }));
      app.get('/held', async (request) => ({ locked: request.session.locked }));
    });
    assert.deepEqual((await get(`${optedOut}/free`)).body, { locked: false });
    assert.deepEqual((await get(`${optedOut}/held`)).body, { locked: true });
  });

  it('keeps the error status of a thrown HTTP error, saves nothing of it, and releases the lock', async () => {
    const url = await serve({ lock: true }, (app) => {
      app.get('/count', async (request) => {
        request.session.data.n = (request.session.data.n ?? 0) + 1;
        return request.session.data.n;
      });
      app.get('/forbidden', async (request) => {
        request.session.data.n = -1;
        throw Object.assign(new Error('no (expected by the test)'), { statusCode: 403 });
      });
    });
    const cookie = cookieFrom(await get(`${url}/count`), 'sid');
    assert.equal((await get(`${url}/forbidden`, cookie)).status, 403);
    assert.equal((await get(`${url}/count`, cookie)).body, 2);
  });

  it('finishes a session once when a later onSend hook fails: one Set-Cookie, the lock released', async () => {
    const url = await serve({ lock: true }, (app) => {
      app.addHook('onSend', async (request, _reply, payload) => {
        if (request.url === '/fail') throw new Error('onSend failure (expected by the test)');
        return payload;
      });
      app.get('/fail', async (request) => {
        request.session.data.n = 1;
        return 'x';
      });
      app.get('/count', async (request) => {
        request.session.data.n = (request.session.data.n ?? 0) + 1;
        return request.session.data.n;
      });
    });
    const failed = await get(`${url}/fail`);
    assert.equal(failed.status, 500);
    assert.equal(failed.setCookies.filter((header) => header.startsWith('sid=')).length, 1);
    const cookie = cookieFrom(failed, 'sid');
    const next = await get(`${url}/count`, cookie);
    assert.equal(next.status, 200);
    assert.equal(next.body, 2, 'the save came before the failing hook, and stands');
  });

  it("keeps the app's cookies set on reply.raw or the reply, before the session's or after it, also for a stream", async () => {
    const url = await serve({}, (app) => {
      app.addHook('onSend', async (_request, reply, payload) => {
        reply.raw.setHeader('set-cookie', 'late=raw');
        return payload;
      });
      app.get('/:kind', async (request, reply) => {
        request.session.data.n = 1;
        reply.raw.setHeader('set-cookie', 'early=raw');
        reply.header('set-cookie', 'own=reply');
        return (request.params as { kind: string }).kind === 'stream' ? Readable.from(['streamed']) : 'plain';
      });
    });
    for (const kind of ['plain', 'stream']) {
      const response = await get(`${url}/${kind}`);
      assert.equal(response.body, kind === 'stream' ? 'streamed' : 'plain');
      const names = response.setCookies.map((header) => header.split('=')[0]).sort();
      assert.deepEqual(names, ['early', 'late', 'own', 'sid'], kind);
    }
  });

  it('keeps a cookie set on reply.raw by a later onSend hook over HTTP/2 too', async () => {
    const app = Fastify({ http2: true, forceCloseConnections: true });
    await app.register(sessionlock, { key: 'sid', store: new MemoryStore() });
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.raw.setHeader('set-cookie', 'late=raw');
      return payload;
    });
    app.get('/', async (request) => {
      request.session.data.n = 1;
      return 'ok';
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    servers.push({ url, close: () => app.close() });
    const client = http2.connect(url);
    const stream = client.request({ ':path': '/' });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    stream.resume();
    await once(stream, 'end');
    client.close();
    const names = (headers['set-cookie'] ?? []).map((header) => header.split('=')[0]).sort();
    assert.deepEqual(names, ['late', 'sid']);
  });

  it('fails registration for bad options', async () => {
    const app = Fastify();
    app.register(sessionlock, { lock: 'always' as never });
    await assert.rejects(async () => {
      await app.ready();
    }, /lock must be/);
    await app.close();
  });

  it('does nothing when registered again where it applies (twice, and in a child context)', async () => {
    const options = { key: 'sid', store: new MemoryStore(), lock: true, lockTimeout: 3000, cookieExpires: 60 };
    const app = Fastify({ forceCloseConnections: true });
    await app.register(sessionlock, options);
    await app.register(sessionlock, options);
    await app.register(async (child) => {
      await child.register(sessionlock, options);
      child.get('/count', async (request) => {
        request.session.data.n = (request.session.data.n ?? 0) + 1;
        return request.session.data.n;
      });
    });
    const server = await listen(app);
    servers.push(server);
    const first = await get(`${server.url}/count`);
    assert.equal(first.status, 200);
    const second = await get(`${server.url}/count`, cookieFrom(first, 'sid'));
    assert.equal(second.status, 200);
    assert.equal(second.body, 2);
    assert.equal(second.setCookies.filter((header) => header.startsWith('sid=')).length, 1);
  });

  it('opens one session per request when registered in a child context and then at the root', async () => {
    for (const lock of [true, false]) {
      const options = { key: 'sid', store: new MemoryStore(), lock, lockTimeout: 3000, cookieExpires: 60 };
      const app = Fastify({ forceCloseConnections: true });
      await app.register(async (child) => {
        await child.register(sessionlock, options);
        child.get('/count', async (request) => {
          request.session.data.n = (request.session.data.n ?? 0) + 1;
          return request.session.data.n;
        });
      });
      await app.register(sessionlock, options);
      const server = await listen(app);
      servers.push(server);
      const first = await get(`${server.url}/count`);
      assert.equal(first.status, 200, `lock: ${lock}`);
      assert.equal(first.setCookies.filter((header) => header.startsWith('sid=')).length, 1, `lock: ${lock}`);
      const second = await get(`${server.url}/count`, cookieFrom(first, 'sid'));
      assert.equal(second.status, 200, `lock: ${lock}`);
      assert.equal(second.body, 2);
    }
  });
});
