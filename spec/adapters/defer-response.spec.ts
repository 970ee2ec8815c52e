import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { type DeferredResponse, deferResponse, unheldHeaders } from '../../lib/adapters/defer-response.js';
import { get } from '../fixtures/http-client.js';
import { listen, type RunningServer } from '../fixtures/http-server.js';

interface Seen {
  hookRuns: number;
  /** What the hook saw: status, whether the headers were really sent, whether anything was on the wire, a header. */
  atHook?: { statusCode: number; headersSent: boolean; bytesWritten: number; header: unknown };
  /** The `failed` the hook was given. */
  failedAtHook?: unknown;
  errors: unknown[];
}

/** A server whose handler runs with its response deferred behind `hook`. */
async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, deferred: DeferredResponse) => unknown,
  hook: (res: ServerResponse) => Promise<void> = async () => {},
): Promise<RunningServer & { seen: Seen }> {
  const seen: Seen = { hookRuns: 0, errors: [] };
  const server = await listen(
    http.createServer((req, res) => {
      const deferred = deferResponse(
        res,
        async (failed) => {
          seen.hookRuns++;
          seen.failedAtHook = failed;
          seen.atHook = {
            statusCode: res.statusCode,
            headersSent: realHeadersSent(res),
            bytesWritten: res.socket?.bytesWritten ?? -1,
            header: res.getHeader('x-test'),
          };
          await hook(res);
        },
        (error) => seen.errors.push(error),
      );
      handler(req, res, deferred);
    }),
  );
  return { ...server, seen };
}

/** What node's own getter says, past the one deferResponse puts on a held response. */
const realHeadersSent = (res: ServerResponse): boolean =>
  Reflect.get(http.ServerResponse.prototype, 'headersSent', res);

describe('deferResponse', () => {
  const servers: RunningServer[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));
  const track = <T extends RunningServer>(server: T) => {
    servers.push(server);
    return server;
  };

  it('runs the hook once, before anything is sent, and replays the calls in order', async () => {
    const callbacks: string[] = [];
    const server = track(
      await serve(
        (_req, res) => {
          res.writeHead(202, { 'x-test': 'from writeHead' });
          res.write('a', () => callbacks.push('write'));
          res.write('b');
          res.end('c', () => callbacks.push('end'));
        },
        async (res) => {
          unheldHeaders(res).setHeader('x-hook', 'ran');
        },
      ),
    );
    const response = await fetch(server.url);
    assert.equal(response.status, 202);
    assert.equal(await response.text(), 'abc');
    assert.equal(response.headers.get('x-hook'), 'ran');
    assert.equal(response.headers.get('x-test'), 'from writeHead');
    assert.equal(server.seen.hookRuns, 1);
    assert.deepEqual(server.seen.atHook, {
      statusCode: 202,
      headersSent: false,
      bytesWritten: 0,
      header: 'from writeHead',
    });
    assert.deepEqual(callbacks, ['write', 'end']);
  });

  it('holds back flushHeaders too', async () => {
    const server = track(
      await serve((_req, res) => {
        res.statusCode = 204;
        res.flushHeaders();
        res.end();
      }),
    );
    assert.equal((await get(server.url)).status, 204);
    assert.equal(server.seen.atHook?.bytesWritten, 0);
    assert.equal(server.seen.atHook?.statusCode, 204);
  });

  it("signals backpressure while held, and emits 'drain' once the writes went out", async () => {
    const server = track(
      await serve((_req, res) => {
        const accepted = res.write('first');
        assert.equal(accepted, false);
        res.once('drain', () => res.end('second'));
      }),
    );
    assert.equal((await get(server.url)).body, 'firstsecond');
  });

  it('replaces the queued response with a 500 when the hook fails', async () => {
    const failure = new Error('save failed (expected by the test)');
    const server = track(
      await serve(
        (_req, res) => {
          res.setHeader('content-type', 'application/json');
          res.setHeader('set-cookie', 'kept=1');
          res.end('{"ok":true}');
        },
        async () => {
          throw failure;
        },
      ),
    );
    const response = await get(server.url);
    assert.equal(response.status, 500);
    assert.equal(response.body, 'Internal Server Error\n');
    assert.deepEqual(response.setCookies, ['kept=1']);
    assert.deepEqual(server.seen.errors, [failure]);
  });

  it('answers a failure before any response with a 500 that still passes through the hook', async () => {
    const server = track(
      await serve((_req, res, deferred) => {
        res.setHeader('content-length', '999');
        deferred.fail();
      }),
    );
    const response = await get(server.url);
    assert.equal(response.status, 500);
    assert.equal(server.seen.hookRuns, 1);
    assert.equal(server.seen.atHook?.statusCode, 500);
  });

  it('lets a complete response go, and replaces an incomplete one, when the handler fails during the hook', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = track(
      await serve(
        (req, res, deferred) => {
          if (req.url === '/complete') res.end('complete');
          else res.write('partial');
          deferred.fail();
          release();
        },
        () => gate,
      ),
    );
    const complete = await get(`${server.url}/complete`);
    assert.equal(complete.status, 200);
    assert.equal(complete.body, 'complete');
    const incomplete = await get(`${server.url}/incomplete`);
    assert.equal(incomplete.status, 500);
  });

  it('reports headersSent while a call is held (so a framework cuts rather than starts another response), then the real value', async () => {
    const reported: boolean[] = [];
    const server = track(
      await serve((_req, res) => {
        reported.push(res.headersSent);
        res.write('a');
        reported.push(res.headersSent);
        res.once('drain', () => {
          reported.push(res.headersSent, Object.hasOwn(res, 'headersSent'));
          res.end('b');
        });
      }),
    );
    assert.equal((await get(server.url)).body, 'ab');
    assert.deepEqual(reported, [false, true, true, false]);
    assert.equal(server.seen.atHook?.headersSent, false, 'the real value, under the held one');
  });

  it('tells the hook that the handler failed right after its first write (at once, or microtasks later)', async () => {
    const server = track(
      await serve((req, res, deferred) => {
        res.write('partial');
        if (req.url === '/sync') deferred.fail();
        else
          Promise.resolve()
            .then(() => {})
            .then(() => deferred.fail());
      }),
    );
    for (const path of ['/sync', '/microtasks']) {
      const response = await get(`${server.url}${path}`);
      assert.equal(response.status, 500, path);
      assert.equal(server.seen.failedAtHook, true, path);
    }
    const fine = track(await serve((_req, res) => res.end('fine')));
    assert.equal((await get(fine.url)).body, 'fine');
    assert.equal(fine.seen.failedAtHook, false);
  });

  it("behaves as node's response does once its headers are out: header changes throw, nothing is replayed after the first end", async () => {
    const outcomes: Record<string, unknown> = {};
    const attempt = (name: string, call: () => unknown) => {
      try {
        call();
        outcomes[name] = 'ok';
      } catch (error) {
        outcomes[name] = (error as { code?: string }).code;
      }
    };
    const errors: unknown[] = [];
    const server = track(
      await serve((_req, res) => {
        res.on('error', (error) => errors.push((error as { code?: string }).code));
        res.statusCode = 401;
        res.end('denied');
        attempt('setHeader', () => res.setHeader('x-test', 'changed'));
        attempt('removeHeader', () => res.removeHeader('content-length'));
        attempt('appendHeader', () => res.appendHeader('x-test', 'appended'));
        attempt('writeHead', () => res.writeHead(200, { 'x-test': 'second' }));
        res.statusCode = 200;
        res.end('secret', (error?: Error) => {
          outcomes.endCallback = (error as { code?: string } | undefined)?.code;
        });
      }),
    );
    const response = await fetch(server.url);
    assert.equal(response.status, 401);
    assert.equal(await response.text(), 'denied');
    assert.equal(response.headers.get('x-test'), null);
    assert.deepEqual(outcomes, {
      setHeader: 'ERR_HTTP_HEADERS_SENT',
      removeHeader: 'ERR_HTTP_HEADERS_SENT',
      appendHeader: 'ERR_HTTP_HEADERS_SENT',
      writeHead: 'ERR_HTTP_HEADERS_SENT',
      endCallback: 'ERR_STREAM_WRITE_AFTER_END',
    });
    assert.deepEqual(errors, ['ERR_STREAM_WRITE_AFTER_END'], 'one error, for the second end, as node emits it');
    assert.equal(server.seen.atHook?.statusCode, 401, 'the status the response went out with');
    assert.equal(server.seen.hookRuns, 1);
    assert.deepEqual(server.seen.errors, []);
  });

  it('cuts a response that failed after its headers went out', async () => {
    const server = track(
      await serve(async (_req, res, deferred) => {
        res.write('partial');
        await once(res, 'drain');
        deferred.fail();
      }),
    );
    await assert.rejects(get(server.url));
  });
});
