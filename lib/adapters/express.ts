/**
 * The Express adapter: `app.use(sessionlock(options))` gives every later handler `req.session`.
 *
 * ```ts
 * import express from 'express';
 * import { sessionlock } from 'sessionlock/express';
 *
 * const app = express();
 * app.use(sessionlock({ dataDir: './sessions', secret: process.env.SESSION_SECRET }));
 * app.post('/login', async (req, res) => {
 *   await req.session.regenerate(); // a new id at login: session fixation defence
 *   req.session.data.user = 'ann';
 *   res.redirect('/');
 * });
 * ```
 * @module sessionlock/express
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { Session } from '../session.js';
import {
  type AdapterSessionData,
  adapterConfig,
  attachSession,
  finishBeforeResponse,
  mountedAgain,
  openSession,
  type SessionMiddlewareOptions,
} from './core.js';

export type { SessionMiddlewareOptions } from './core.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request's sessionlock session (set by the `sessionlock/express` middleware; it cannot be replaced). */
    readonly session: Session<AdapterSessionData>;
  }
}

/**
 * Express middleware that loads the request's session into `req.session` (and locks it,
 * with the `lock` option). The response is held back from its first write until the
 * session is saved (if modified), its Set-Cookie appended and its lock released, so a
 * redirect right after a change is safe. A response with a status of 500 or more (how
 * Express answers an error passed to `next` by default) saves nothing; the lock is released
 * all the same, also when the connection closes first. While the response is held,
 * `res.headersSent` is `true`, as it would be without the hold: a handler that throws after
 * starting its response gets its connection cut by Express's error handling, and saves
 * nothing. A request whose client left while its session loaded (or waited for its lock)
 * goes no further: its response is destroyed, and `next` is not called. A storage failure
 * while loading is passed to `next`. Mounted again on the path
 * of a request that has its session (app-level and router-level), it does nothing.
 */
export function sessionlock(options: SessionMiddlewareOptions = {}): RequestHandler {
  const config = adapterConfig(options);
  return (req: Request, res: Response, next: NextFunction): void => {
    // Mounted twice on a path (app and router): the request has its session, and its lock.
    if (req.session instanceof Session) {
      mountedAgain(req.session, config);
      next();
      return;
    }
    openSession(req, config)
      .then(
        (session) => {
          attachSession(req, session);
          if (finishBeforeResponse(session, res, config)) next();
        },
        (error: unknown) => next(error),
      )
      .catch((error: unknown) => config.report(error, 'the session middleware failed'));
  };
}
