/**
 * The Fastify adapter: `app.register(sessionlock, options)` gives every request of the app
 * `request.session`.
 *
 * ```ts
 * import Fastify from 'fastify';
 * import { sessionlock } from 'sessionlock/fastify';
 *
 * const app = Fastify();
 * await app.register(sessionlock, { dataDir: './sessions' });
 * app.post('/cart', { config: { sessionLock: true } }, async (request) => {
 *   request.session.data.cart = [...(request.session.data.cart ?? []), request.body ?? null];
 *   return request.session.data.cart;
 * });
 * ```
 * @module sessionlock/fastify
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import { Session } from '../session.js';
import {
  type AdapterConfig,
  type AdapterSessionData,
  adapterConfig,
  attachSession,
  finishSession,
  type HeaderTarget,
  holdUntilFinished,
  mountedAgain,
  openSession,
  releaseOnClose,
  releaseSession,
  type SessionMiddlewareOptions,
} from './core.js';

export type { SessionMiddlewareOptions } from './core.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's sessionlock session (set by the `sessionlock/fastify` plugin; it cannot be replaced). */
    readonly session: Session<AdapterSessionData>;
  }
  interface FastifyContextConfig {
    /** Hold the session's lock for the whole request on this route; overrides the plugin's `lock` option. */
    sessionLock?: boolean | undefined;
  }
}

/**
 * The Fastify plugin. It applies to the whole app (it is not encapsulated: no need for
 * fastify-plugin). Each request's session is loaded in `onRequest` into `request.session`,
 * locked with the `lock` option or the route's `config: { sessionLock: true }`, and saved (if
 * modified) in `onSend`, with its Set-Cookie appended (the app's, set on the reply or on
 * `reply.raw`, also by a later `onSend` hook, go out too), before the payload goes out. A
 * hijacked reply (`reply.hijack()`), which skips `onSend`, has its first write to `reply.raw`
 * held until the session is saved, its cookie added and its lock released. A request
 * that failed (the error handler ran) saves nothing; an `onSend` hook registered after this
 * plugin runs after the save, so its failure cannot undo it. The lock is always released: in
 * `onSend`, and else in `onError`, `onResponse`, `onRequestAbort`, or when the connection
 * closes. A request whose client left while its session loaded or waited for its lock is
 * stopped there (`reply.hijack()`, its response destroyed): no later hook nor the handler
 * runs. A storage failure while loading becomes the request's error (a 500 by default), for
 * the error handler to answer. Registered
 * more than once where a request goes (twice in one context, or in a parent and a child
 * context, in either order), the first to run for the request opens its session and the
 * others pass it on.
 */
export const sessionlock: FastifyPluginCallback<SessionMiddlewareOptions> = Object.assign(
  (
    fastify: Parameters<FastifyPluginCallback<SessionMiddlewareOptions>>[0],
    options: SessionMiddlewareOptions,
    done: (error?: Error) => void,
  ): void => {
    let config: AdapterConfig;
    try {
      config = adapterConfig(options);
    } catch (error) {
      done(error as Error);
      return;
    }
    /** The requests whose session this registration opened (another registration, where it applies too, may have opened it first). */
    const opened = new WeakSet<FastifyRequest>();
    const failed = new WeakSet<FastifyRequest>();
    const finished = new WeakSet<FastifyRequest>();
    const release = async (request: FastifyRequest): Promise<void> => {
      if (opened.has(request)) await releaseSession(request.session, config);
    };
    if (!fastify.hasRequestDecorator('session')) {
      fastify.decorateRequest('session', null as unknown as Session<AdapterSessionData>);
    }
    fastify.addHook('onRequest', async (request, reply) => {
      if (request.session instanceof Session) {
        mountedAgain(request.session, config);
        return;
      }
      const lock = request.routeOptions.config?.sessionLock ?? config.lock(request.raw);
      const session = await openSession(request.raw, config, lock);
      attachSession(request, session);
      opened.add(request);
      // onRequestAbort may have fired while the session loaded or waited for its lock: the handler must not run.
      if (!releaseOnClose(session, reply.raw, config)) {
        reply.hijack();
        return;
      }
      // A hijacked reply skips onSend: its session is finished before the handler's first write to reply.raw.
      const hijack = reply.hijack;
      reply.hijack = function (this: FastifyReply) {
        if (!finished.has(request)) {
          finished.add(request);
          holdUntilFinished(request.session, reply.raw, config);
        }
        return hijack.call(this);
      };
    });
    fastify.addHook('onSend', async (request, reply, payload) => {
      // Once per request: Fastify runs onSend again for the error payload when a later onSend hook throws.
      if (opened.has(request) && !finished.has(request)) {
        finished.add(request);
        const outcome = { statusCode: reply.statusCode, failed: failed.has(request) };
        await finishSession(request.session, replyHeaders(reply), outcome, config);
      }
      return payload;
    });
    fastify.addHook('onError', async (request) => {
      failed.add(request);
      await release(request);
    });
    fastify.addHook('onResponse', release);
    fastify.addHook('onRequestAbort', release);
    done();
  },
  { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'sessionlock' },
);

/**
 * The reply's headers, including values set on `reply.raw` (which Fastify would let the
 * reply's override). Setting one moves the values of `reply.raw` into the reply's.
 */
function replyHeaders(reply: FastifyReply): HeaderTarget {
  return {
    headersSent: reply.raw.headersSent,
    getHeader(name) {
      const own = reply.getHeader(name);
      const raw = reply.raw.getHeader(name);
      return own === raw || raw === undefined ? own : [raw, own ?? []].flat();
    },
    setHeader(name, value) {
      reply.removeHeader(name).header(name, value);
      keepLaterRawCookies(reply);
    },
  };
}

/**
 * Keeps the Set-Cookie values set on `reply.raw` after the session's cookie went into the
 * reply's (by a later `onSend` hook): when Fastify writes the reply's own Set-Cookie onto
 * `reply.raw` (its `writeHead`, or `setHeader` for a stream), which would replace them, they
 * are appended to it.
 */
function keepLaterRawCookies(reply: FastifyReply): void {
  const raw = reply.raw;
  const withRaw = (value: unknown): unknown => {
    const later = raw.getHeader('set-cookie');
    const ownWritten = value !== undefined && value === reply.getHeader('set-cookie');
    return ownWritten && later !== undefined && later !== value ? [value, later].flat() : value;
  };
  const { setHeader, writeHead } = raw as unknown as Record<'setHeader' | 'writeHead', (...args: unknown[]) => unknown>;
  const patch = (name: string, method: (...args: unknown[]) => unknown): void => {
    Object.defineProperty(raw, name, { value: method, writable: true, configurable: true });
  };
  patch('setHeader', (name: unknown, value: unknown) =>
    setHeader.call(raw, name, String(name).toLowerCase() === 'set-cookie' ? withRaw(value) : value),
  );
  patch('writeHead', (...args: unknown[]) => {
    const headers = args.at(-1);
    if (headers && typeof headers === 'object' && !Array.isArray(headers) && 'set-cookie' in headers) {
      args[args.length - 1] = { ...headers, 'set-cookie': withRaw(headers['set-cookie']) };
    }
    return writeHead.apply(raw, args);
  });
}
