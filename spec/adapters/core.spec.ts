/** The shared adapter core, on real Sessions over memory storage and real node:http response objects. */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import {
  adapterConfig,
  finishSession,
  openSession,
  releaseSession,
  type SessionMiddlewareOptions,
} from '../../lib/adapters/core.js';
import { LockCompromisedError, MemoryStore, SerializationError, Session } from '../../lib/index.js';
import { instrumentedMemory } from '../fixtures/instrumented-storage.js';

const request = (cookie?: string) => {
  const req = new http.IncomingMessage(new net.Socket());
  req.url = '/';
  if (cookie) req.headers.cookie = cookie;
  return req;
};
const response = () => new http.ServerResponse(request());

function setup(options: SessionMiddlewareOptions = {}) {
  const { probe, namespaceClass } = instrumentedMemory();
  const logs: string[] = [];
  const config = adapterConfig({
    key: 'sid',
    store: new MemoryStore(),
    namespaceClass,
    log: (line) => logs.push(line),
    ...options,
  });
  /** A stored session; returns its cookie pair. */
  const stored = async (data: Record<string, unknown>) => {
    const session = await openSession(request(), config, false);
    Object.assign(session.data, data);
    const res = response();
    await finishSession(session, res, { statusCode: 200 }, config);
    return String(res.getHeader('set-cookie')).split(';')[0] as string;
  };
  const load = async (cookie: string) => (await Session.open(request(cookie), config.session)).data;
  return { config, probe, logs, stored, load };
}

describe('adapter core', () => {
  it('defaults invalidateCorrupt to true unless set, and keeps lock out of the Session options', () => {
    assert.equal(adapterConfig({}).session.invalidateCorrupt, true);
    assert.equal(adapterConfig({ invalidateCorrupt: false }).session.invalidateCorrupt, false);
    assert.equal('lock' in adapterConfig({ lock: true }).session, false);
  });

  it('checks the options at once, naming the bad one', () => {
    assert.throws(() => adapterConfig({ lock: 1 as never }), /lock must be true, false or a function, received 1/);
    assert.throws(() => adapterConfig({ key: 'bad key' }), /key must be a valid cookie name/);
    assert.throws(() => adapterConfig(null as never), /options must be an object/);
  });

  it('decides the lock per request', async () => {
    const config = adapterConfig({ store: new MemoryStore(), lock: (req) => req.method === 'POST' });
    const get = request();
    get.method = 'GET';
    const post = request();
    post.method = 'POST';
    assert.equal(config.lock(get), false);
    const locked = await openSession(post, config);
    assert.equal(locked.locked, true);
    await releaseSession(locked, config);
    assert.equal(locked.locked, false);
  });

  it('saves only a modified session, and appends its cookie to the Set-Cookie values already set', async () => {
    const { config, probe, stored, load } = setup();
    const cookie = await stored({ user: 'ann' });
    const writes = probe.writes;
    const untouched = await openSession(request(cookie), config, true);
    const res = response();
    res.setHeader('set-cookie', 'theme=dark');
    await finishSession(untouched, res, { statusCode: 200 }, config);
    assert.equal(probe.writes, writes);
    assert.equal(untouched.locked, false);
    assert.equal(res.getHeader('set-cookie'), 'theme=dark');

    const fresh = await openSession(request(), config, false);
    fresh.data.cart = [1];
    const res2 = response();
    res2.setHeader('set-cookie', ['a=1', 'b=2']);
    await finishSession(fresh, res2, { statusCode: 302 }, config);
    const cookies = res2.getHeader('set-cookie') as string[];
    assert.deepEqual(cookies.slice(0, 2), ['a=1', 'b=2']);
    assert.match(cookies[2] ?? '', /^sid=/);
    assert.deepEqual(await load(String(cookies[2]).split(';')[0] as string), { cart: [1] });
  });

  it('saves nothing of a failed request, but still sends the cookie of a session it regenerated', async () => {
    const { config, stored, load } = setup();
    const cookie = await stored({ n: 1 });
    for (const outcome of [{ statusCode: 500 }, { statusCode: 404, failed: true }]) {
      const session = await openSession(request(cookie), config, true);
      session.data.n = 99;
      await finishSession(session, response(), outcome, config);
      assert.equal(session.locked, false);
      assert.deepEqual(await load(cookie), { n: 1 });
    }
    const session = await openSession(request(cookie), config, false);
    await session.regenerate();
    const res = response();
    await finishSession(session, res, { statusCode: 500 }, config);
    assert.match(String(res.getHeader('set-cookie')), /^sid=/);
  });

  it('releases the lock when the save throws, and rethrows', async () => {
    const { config, stored } = setup();
    const session = await openSession(request(await stored({ n: 1 })), config, true);
    session.data.f = () => {};
    await assert.rejects(finishSession(session, response(), { statusCode: 200 }, config), SerializationError);
    assert.equal(session.locked, false);
  });

  it('reports, instead of throwing, a cookie that comes after the headers were sent', async () => {
    const { config, logs } = setup();
    const session = await openSession(request(), config, false);
    session.data.a = 1;
    await finishSession(
      session,
      { headersSent: true, getHeader: () => undefined, setHeader: () => {} },
      { statusCode: 200 },
      config,
    );
    assert.ok(logs.some((line) => line.includes('cannot set the cookie')));
  });

  it('does not save a locked session whose lock the safety net released before it finished', async () => {
    const { config, stored, load } = setup();
    const cookie = await stored({ n: 1 });
    const abandoned = await openSession(request(cookie), config, true);
    abandoned.data.n = 2;
    await releaseSession(abandoned, config);
    const other = await openSession(request(cookie), config, true);
    other.data.n = 10;
    await finishSession(other, response(), { statusCode: 200 }, config);
    await finishSession(abandoned, response(), { statusCode: 200 }, config);
    assert.deepEqual(await load(cookie), { n: 10 });
  });

  it("refuses the saves of a handler's own withLock once the safety net released its lock", async () => {
    const { config, stored, load } = setup();
    const cookie = await stored({ n: 1 });
    const session = await openSession(request(cookie), config, false);
    let resume: () => void = () => {};
    const paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let entered: () => void = () => {};
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const handler = session.withLock(async (s) => {
      const n = s.data.n as number;
      entered();
      await paused;
      s.data.n = n + 10;
    });
    await inside;
    await releaseSession(session, config);
    assert.equal(session.locked, false);
    const other = await openSession(request(cookie), config, true);
    other.data.n = (other.data.n as number) + 1;
    await finishSession(other, response(), { statusCode: 200 }, config);
    resume();
    await assert.rejects(handler, LockCompromisedError);
    await assert.rejects(session.save(), LockCompromisedError);
    await assert.rejects(session.lock(), LockCompromisedError);
    assert.deepEqual(await load(cookie), { n: 2 }, "the other request's increment stands");
  });

  it('leaves the lock of a session being finished to the finish', async () => {
    const { config, probe, stored, load } = setup();
    const cookie = await stored({ n: 1 });
    const session = await openSession(request(cookie), config, true);
    session.data.n = 2;
    probe.writeDelay = 20;
    const finished = finishSession(session, response(), { statusCode: 200 }, config);
    await releaseSession(session, config);
    assert.equal(session.locked, true, 'still held while saving');
    await finished;
    assert.equal(session.locked, false);
    assert.deepEqual(await load(cookie), { n: 2 });
  });
});
