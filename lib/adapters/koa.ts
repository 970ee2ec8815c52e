/**
 * The Koa adapter: `app.use(sessionlock(options))` gives every later middleware `ctx.session`.
 *
 * ```ts
 * import Koa from 'koa';
 * import { sessionlock } from 'sessionlock/koa';
 *
 * const app = new Koa();
 * app.use(sessionlock({ dataDir: './sessions', lock: true }));
 * app.use((ctx) => {
 *   ctx.session.data.visits = (ctx.session.data.visits ?? 0) + 1;
 *   ctx.body = { visits: ctx.session.data.visits };
 * });
 * ```
 * @module sessionlock/koa
 */
import type { Middleware, ParameterizedContext } from 'koa';
import { Session } from '../session.js';
import type { AdapterSessionData } from './core.js';
import {
  adapterConfig,
  attachSession,
  finishSession,
  holdUntilFinished,
  logIfAbandonment,
  markFailed,
  mountedAgain,
  openSession,
  releaseOnClose,
  releaseSession,
  type SessionMiddlewareOptions,
} from './core.js';

export type { SessionMiddlewareOptions } from './core.js';

declare module 'koa' {
  interface DefaultContext {
    /** The request's sessionlock session (set by the `sessionlock/koa` middleware; it cannot be replaced). */
    readonly session: Session<AdapterSessionData>;
  }
}

/**
 * Koa middleware that loads the request's session into `ctx.session` (and locks it, with
 * the `lock` option), runs the downstream middleware, then saves the session (if modified)
 * and appends its Set-Cookie before Koa sends the response; a response downstream writes
 * itself (`ctx.respond = false`, set before writing) has its first write to `ctx.res` held
 * until then. The lock is released in every case. When downstream throws, nothing is saved
 * and the error is rethrown for Koa to answer (a 500 by default); a storage failure is thrown the same way. A request whose client left
 * while its session loaded (or waited for its lock) runs no downstream middleware; when the
 * client leaves while downstream runs, the session is abandoned, and the LockCompromisedError
 * its later save, lock or removal throws is not rethrown. Mounted again for a request
 * that has its session (the app's middleware, and a router's or a composed section's), it
 * does nothing.
 */
export function sessionlock(options: SessionMiddlewareOptions = {}): Middleware {
  const config = adapterConfig(options);
  return async (ctx, next) => {
    // Mounted twice on a path: the request has its session, and its lock.
    if (ctx.session instanceof Session) {
      mountedAgain(ctx.session, config);
      return next();
    }
    const session = await openSession(ctx.req, config);
    attachSession(ctx, session);
    if (!releaseOnClose(session, ctx.res, config)) return;
    const writesItself = holdWhenRespondingItself(ctx, () => holdUntilFinished(session, ctx.res, config));
    try {
      await next();
      if (!writesItself()) await finishSession(session, ctx.res, { statusCode: ctx.status }, config);
    } catch (error) {
      // Koa's error response may still go through the hold: it must save nothing.
      if (writesItself()) markFailed(session);
      if (!logIfAbandonment(session, error, config)) throw error;
    } finally {
      // A response the handler writes itself releases the lock at its first write, or when it closes.
      if (!writesItself()) await releaseSession(session, config);
    }
  };
}

/**
 * Watches `ctx.respond`: once downstream sets it to `false` (it writes `ctx.res` itself,
 * maybe long after it returns), `hold` holds that response's first write until the session is
 * finished, as node:http's adapter does. Returns whether that happened.
 */
function holdWhenRespondingItself(ctx: ParameterizedContext, hold: () => void): () => boolean {
  let respond = ctx.respond;
  let held = false;
  Object.defineProperty(ctx, 'respond', {
    configurable: true,
    enumerable: true,
    get: () => respond,
    set(value: boolean | undefined) {
      respond = value;
      if (value === false && !held) {
        held = true;
        hold();
      }
    },
  });
  return () => held;
}
