/**
 * The node:http adapter: `http.createServer(withSession(handler, options))`.
 *
 * ```ts
 * import http from 'node:http';
 * import { withSession } from 'sessionlock/http';
 *
 * http.createServer(withSession((req, res) => {
 *   req.session.data.visits = (req.session.data.visits ?? 0) + 1;
 *   res.end(`visit ${req.session.data.visits}`);
 * }, { dataDir: './sessions', lock: true })).listen(3000);
 * ```
 * @module sessionlock/http
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LockTimeoutError, StorageError } from '../errors.js';
import type { Session } from '../session.js';
import {
  type AdapterConfig,
  type AdapterSessionData,
  adapterConfig,
  attachSession,
  finishBeforeResponse,
  logIfAbandonment,
  markFailed,
  mountedAgain,
  openSession,
  type SessionMiddlewareOptions,
  sessionResponse,
} from './core.js';
import { respondError } from './defer-response.js';

export type { SessionMiddlewareOptions } from './core.js';

/** A node:http request with its loaded session. */
export type RequestWithSession<Data extends object = AdapterSessionData> = IncomingMessage & {
  readonly session: Session<Data>;
};

/** A node:http request handler that gets the request's session as `req.session`. */
export type SessionHandler<Data extends object = AdapterSessionData> = (
  req: RequestWithSession<Data>,
  res: ServerResponse,
) => unknown;

/**
 * Wraps `handler` into a request listener for `http.createServer`. Before the handler runs,
 * the session is loaded into `req.session` (and locked, with the `lock` option). When the
 * handler starts its response (`writeHead`, `write`, `end` or `flushHeaders`), the response
 * is held back until the session is saved (if modified), its Set-Cookie appended and its
 * lock released; then it goes out unchanged.
 *
 * Errors never crash the process nor leave the request hanging: when the handler throws or
 * rejects before responding, or the storage fails, the lock is released and the client gets
 * a short 500; the error goes to `log` (or stderr). The changes of a failed request are not
 * saved. A request whose client left while its session loaded (or waited for its lock) does
 * not run the handler; when the client leaves while the handler runs, the session is
 * abandoned, and the LockCompromisedError its later save, lock or removal throws is not
 * reported as a failure. Options are checked here, once: a bad one throws a TypeError. Wrapped again (a
 * handler of `withSession` inside another), the inner one only runs its handler, with the
 * session the outer one opened.
 */
export function withSession<Data extends object = AdapterSessionData>(
  handler: SessionHandler<Data>,
  options: SessionMiddlewareOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  if (typeof handler !== 'function') throw new TypeError('withSession needs a handler function');
  const config = adapterConfig(options);
  return (req, res) => {
    handle(req, res, handler as SessionHandler, config).catch((error: unknown) => {
      config.report(error, 'request failed');
      respondError(res);
    });
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  handler: SessionHandler,
  config: AdapterConfig,
): Promise<void> {
  // Wrapped twice: the request has its session, and its lock.
  let response = sessionResponse(res);
  if (response) mountedAgain((req as RequestWithSession).session, config);
  else {
    let session: Session;
    try {
      session = await openSession(req, config);
    } catch (error) {
      config.report(error, 'could not load the session');
      respondError(res, error instanceof LockTimeoutError || error instanceof StorageError ? error.statusCode : 500);
      return;
    }
    attachSession(req, session);
    response = finishBeforeResponse(session, res, config);
    if (!response) return;
  }
  try {
    await handler(req as RequestWithSession, res);
  } catch (error) {
    const { session } = req as RequestWithSession;
    if (!logIfAbandonment(session, error, config)) config.report(error, 'the handler failed');
    markFailed(session);
    response.fail();
  }
}
