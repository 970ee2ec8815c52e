/**
 * The node:http core every framework adapter shares: options, opening a request's session
 * (optionally locked for the whole request), and finishing it (save what changed, append its
 * cookie, unlock — always) before the response goes out.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { LockCompromisedError } from '../errors.js';
import { describe } from '../options.js';
import { Session } from '../session.js';
import { shortenSessionIds } from '../session-id.js';
import { DEFAULT_KEY, type SessionOptions, sessionConfig } from '../session-options.js';
import { appendHeader, connectionGone, type DeferredResponse, deferResponse, unheldHeaders } from './defer-response.js';

/**
 * The data of the sessions the adapters hand to handlers: Express's `req.session.data`,
 * Fastify's `request.session.data`, Koa's `ctx.session.data`, and `withSession`'s default.
 * It is empty, and while it stays empty that data is loose (`Record<string, any>`). An
 * application types it by declaring its keys, in a file that imports from `'sessionlock'`
 * (TypeScript augments only a module the program loads):
 *
 * ```ts
 * import type {} from 'sessionlock';
 *
 * declare module 'sessionlock' {
 *   interface SessionData {
 *     user?: string;
 *     cart?: string[];
 *   }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: applications augment it
export interface SessionData {}

/**
 * The data type of the adapters' sessions: {@link SessionData} once an application has
 * declared keys in it, else `Record<string, any>`.
 */
export type AdapterSessionData = keyof SessionData extends never
  ? // biome-ignore lint/suspicious/noExplicitAny: session data is the application's to type
    Record<string, any>
  : SessionData;

/**
 * Options of the web framework adapters: the {@link SessionOptions}, plus `lock`, and
 * `invalidateCorrupt` on by default.
 */
export interface SessionMiddlewareOptions extends SessionOptions {
  /**
   * A session whose stored record is corrupt starts afresh (`wasInvalidated`, and a line to
   * `log`) instead of costing the request a 500. Unlike a bare {@link Session}, the adapters
   * turn this on unless it is set; `false` lets the SessionCorruptError take the error path.
   * @default true
   */
  invalidateCorrupt?: boolean | undefined;
  /**
   * Hold the session's lock for the whole request, PHP-style: the session is loaded under
   * its exclusive lock, and the lock is released once the session is saved, just before the
   * response goes out. Other requests of the same session wait meanwhile, so a
   * read-modify-write in the handler is safe. A function decides per request (by method,
   * path, …), so it also serves as a per-route choice; it gets the node:http request
   * (Express's `req`, Fastify's `request.raw`, Koa's `ctx.req`).
   * @default false
   */
  lock?: boolean | ((req: IncomingMessage) => boolean) | undefined;
}

/** Where a session's Set-Cookie goes: a ServerResponse, or a framework's reply. */
export interface HeaderTarget {
  getHeader(name: string): unknown;
  setHeader(name: string, value: string[]): unknown;
  readonly headersSent?: boolean;
}

/** Validated adapter options. */
export interface AdapterConfig {
  /** The options as given. */
  readonly options: SessionMiddlewareOptions;
  /** The options each request's Session gets (with the adapters' `invalidateCorrupt` default). */
  readonly session: SessionOptions;
  /** Whether `req` holds the lock for the whole request. */
  lock(req: IncomingMessage): boolean;
  /** Reports an error the adapter handled itself: to `log`, else to stderr. */
  report(error: unknown, what: string): void;
  /** Writes a line to `log`, if given. */
  debug(line: string): void;
}

/** Checks the options once (a bad one throws a TypeError naming it) and derives the per-request config. */
export function adapterConfig(options: SessionMiddlewareOptions = {}): AdapterConfig {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`options must be an object, received ${describe(options)}`);
  }
  const { lock = false, ...rest } = options;
  if (typeof lock !== 'boolean' && typeof lock !== 'function') {
    throw new TypeError(`lock must be true, false or a function, received ${describe(lock)}`);
  }
  const session: SessionOptions = { ...rest, invalidateCorrupt: rest.invalidateCorrupt ?? true };
  sessionConfig(session);
  const log = rest.log;
  return {
    options,
    session,
    lock: typeof lock === 'function' ? (req) => lock(req) === true : () => lock,
    report(error, what) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      const line = shortenSessionIds(`sessionlock: ${what}: ${text}`);
      if (log) log(line);
      else console.error(line);
    },
    debug(line) {
      log?.(shortenSessionIds(line));
    },
  };
}

/** Loads the request's session, and takes its lock when `lock` (by default: the `lock` option for `req`). */
export async function openSession(
  req: IncomingMessage,
  config: AdapterConfig,
  lock: boolean = config.lock(req),
): Promise<Session<AdapterSessionData>> {
  const session = new Session<AdapterSessionData>(req, config.session);
  openedWith.set(session, config);
  await session.load({ lock });
  return session;
}

/** The adapter config that opened each session. */
const openedWith = new WeakMap<Session, AdapterConfig>();
/** The mounts warned of, each once. */
const warnedMounts = new WeakSet<AdapterConfig>();

/**
 * For an adapter that meets a request whose session another mount opened: it passes the
 * session on, and its own options do not apply. When it would choose another cookie name,
 * lock or storage than the opener (a router's `lock: true` under an app-level mount), a
 * process warning (code `SESSIONLOCK_MOUNTED_TWICE`, once per mount) says so.
 */
export function mountedAgain(session: Session, config: AdapterConfig): void {
  const opener = openedWith.get(session);
  if (opener === undefined || warnedMounts.has(config) || !differs(opener.options, config.options)) return;
  warnedMounts.add(config);
  process.emitWarning(
    "sessionlock: a request met a second session middleware whose cookie name, lock or storage differ from the one that opened its session: only the first one's options apply; choose the lock per route with a lock function",
    { code: 'SESSIONLOCK_MOUNTED_TWICE' },
  );
}

/** The options of a mount that decide which session a request gets, and whether it is locked, with their defaults. */
const MOUNT_OPTIONS: Partial<Record<keyof SessionMiddlewareOptions, unknown>> = {
  key: DEFAULT_KEY,
  lock: false,
  type: undefined,
  dataDir: undefined,
  namespaceClass: undefined,
  store: undefined,
  url: undefined,
  client: undefined,
  prefix: undefined,
};

function differs(a: SessionMiddlewareOptions, b: SessionMiddlewareOptions): boolean {
  return Object.entries(MOUNT_OPTIONS).some(([name, fallback]) => {
    const key = name as keyof SessionMiddlewareOptions;
    return !Object.is(a[key] ?? fallback, b[key] ?? fallback);
  });
}

/**
 * Gives `target` (a request, or Koa's context) its `session`, as a property that cannot be
 * replaced: `req.session = null`, express-session's and koa-session's logout, would leave the
 * stored session as it is, so assigning anything else throws a TypeError.
 */
export function attachSession(target: object, session: Session): void {
  Object.defineProperty(target, 'session', {
    configurable: true,
    enumerable: true,
    get: () => session,
    set: (value: unknown) => {
      if (value === session) return;
      throw new TypeError(
        `the session cannot be replaced, received ${describe(value)}: to log out, await session.invalidate()`,
      );
    },
  });
}

/** Properties set on a Session object itself (express-session's `req.session.userId = …`), warned of once per name. */
const warnedProperties = new Set<string>();

/**
 * Emits a process warning (code `SESSIONLOCK_UNSTORED_PROPERTY`, once per name) for each
 * property set on `session` itself: it is not stored; session data goes in `session.data`.
 */
function warnUnstoredProperties(session: Session): void {
  for (const name of Object.keys(session)) {
    if (warnedProperties.has(name)) continue;
    warnedProperties.add(name);
    process.emitWarning(
      `sessionlock: session.${name} is not stored: a session's data goes in session.data (session.data.${name})`,
      { code: 'SESSIONLOCK_UNSTORED_PROPERTY' },
    );
  }
}

/** How the request ended, as far as the session is concerned. */
export interface RequestOutcome {
  /** The response status. A status of 500 or more counts as a failure. */
  statusCode: number;
  /** The handler failed (threw, rejected, or passed an error on). */
  failed?: boolean;
}

/** Sessions being finished: the safety nets leave their lock to {@link finishSession}. */
const finishing = new WeakSet<Session>();

/**
 * The id of each session that was stored when {@link finishSession} was done with it, before
 * its response went out: changes made while the response went out are saved once it has (not
 * those of a session the browser cannot know, new and stored only then, nor those of a
 * request that failed: {@link markFailed}).
 */
const storedBeforeResponse = new WeakMap<Session, string>();

/** Sessions whose request failed: {@link finishSession} and {@link afterResponse} save nothing of them. */
const failedRequests = new WeakSet<Session>();

/**
 * The request of `session` failed (its handler threw) where the adapter cannot tell the
 * response's finish: nothing it changed is saved, before the response or after it.
 */
export function markFailed(session: Session): void {
  failedRequests.add(session);
}

/**
 * Finishes a request's session before its response goes out: saves it if it was modified
 * (not when the request failed: its changes are dropped, as `withLock` drops them), appends
 * its Set-Cookie (when due) to the Set-Cookie values already set, and releases its lock —
 * always, also when the save throws (the error is then rethrown). Nor is a session saved
 * whose lock {@link releaseSession} had to release early: others may have changed it since.
 */
export async function finishSession(
  session: Session,
  headers: HeaderTarget,
  outcome: RequestOutcome,
  config: AdapterConfig,
): Promise<void> {
  finishing.add(session);
  warnUnstoredProperties(session);
  try {
    const failed =
      outcome.failed === true || outcome.statusCode >= 500 || session.abandoned || failedRequests.has(session);
    if (!failed) {
      await session.saveIfModified();
      if (session.stored) storedBeforeResponse.set(session, session.id);
    }
    const cookie = await session.responseCookie();
    if (cookie === undefined) return;
    if (headers.headersSent)
      config.report(new Error('the response headers were sent already'), 'cannot set the cookie');
    else appendHeader(headers, 'set-cookie', cookie);
  } finally {
    finishing.delete(session);
    await unlock(session, config);
    if (abandonWhenFinished.delete(session)) await unlock(session, config, ABANDONED);
  }
}

/** Why the adapter gave a session up: the LockCompromisedError its handler then gets says so. */
const ABANDONED = 'its request ended before the handler was done';

/**
 * The safety net, for a request that ends without {@link finishSession} (it failed, or its
 * client went away while the handler ran): releases the session's lock if it holds it or is
 * waiting for it (the adapter's, or one the handler took), and the session is abandoned: a later finish saves
 * nothing, and a save, lock or removal the handler still tries throws LockCompromisedError
 * instead of writing without the lock. Does nothing while the session is being finished.
 * Never throws: a failure is reported.
 */
export async function releaseSession(session: Session | undefined, config: AdapterConfig): Promise<void> {
  if (!(session?.locked || session?.lockPending) || finishing.has(session)) return;
  await unlock(session, config, ABANDONED);
}

/**
 * The safety net for a request whose client left before its response was complete: the
 * session is abandoned whatever its lock state (as {@link releaseSession} abandons a locked
 * one), so a lock the handler takes after this throws LockCompromisedError instead of being
 * held for good: nothing would release it. A session being finished is abandoned once
 * {@link finishSession} is done with it.
 */
async function abandonSession(session: Session, config: AdapterConfig): Promise<void> {
  if (finishing.has(session)) abandonWhenFinished.add(session);
  else await unlock(session, config, ABANDONED);
}

/** Sessions whose client left while {@link finishSession} ran: abandoned when it is done. */
const abandonWhenFinished = new WeakSet<Session>();

/** Unlocks `session` if it is locked, or abandons it when `abandonReason` is given; reports a failure instead of throwing. */
async function unlock(session: Session, config: AdapterConfig, abandonReason?: string): Promise<void> {
  if (abandonReason === undefined && !session.locked) return;
  try {
    await (abandonReason === undefined ? session.unlock() : session.abandon(abandonReason));
  } catch (error) {
    config.report(error, `could not unlock session ${session.id}`);
  }
}

/**
 * When `error`, from the handler of `session`'s request, is only the adapter's abandonment
 * of the session showing through (a save, lock or removal the handler tried after its client
 * left), writes it to `log` as one line and returns true: it is no failure to report.
 * Returns false for any other error, which the caller reports.
 */
export function logIfAbandonment(session: Session, error: unknown, config: AdapterConfig): boolean {
  const own = session.abandoned && error instanceof LockCompromisedError && error.message.includes(ABANDONED);
  if (own) config.debug(`session ${session.id}: the handler stopped: ${error.message}`);
  return own;
}

/**
 * Releases the session's lock when `res` closes (finished, or the connection was lost while
 * the handler ran) or its connection does; a response that went out whole has its session's
 * later changes saved ({@link afterResponse}), and a session whose client left before its
 * response was complete is abandoned ({@link abandonSession}). The connection is watched too because
 * node gives a response queued behind an earlier pipelined one no 'close' when the
 * connection drops (nor a socket: `res.socket` is null until its turn). Returns false when
 * the connection is gone already (its client left while the session loaded or waited for its
 * lock): the session is then abandoned at once and `res` destroyed, and the handler must not
 * run (it would run without the lock, next to the request that holds it by then).
 */
export function releaseOnClose(session: Session, res: ServerResponse, config: AdapterConfig): boolean {
  if (connectionGone(res)) {
    void abandonSession(session, config);
    res.destroy();
    return false;
  }
  // An HTTP/2 stream the client cancelled reports writableFinished, but never ended.
  const release = () =>
    void (res.writableEnded && res.writableFinished ? afterResponse(session, config) : abandonSession(session, config));
  const socket = res.socket ?? res.req?.socket;
  const unwatch = socket ? onSocketClose(socket, release) : () => {};
  res.once('close', () => {
    unwatch();
    release();
  });
  return true;
}

/**
 * Once a response went out whole: saves the changes its handler made to the session after
 * the adapter saved it (while the response streamed), unlocked, or releases a lock the
 * handler took meanwhile ({@link releaseSession}). A failure is reported.
 */
async function afterResponse(session: Session, config: AdapterConfig): Promise<void> {
  if (session.locked || session.lockPending || session.abandoned || storedBeforeResponse.get(session) !== session.id) {
    await releaseSession(session, config);
    return;
  }
  if (failedRequests.has(session)) {
    if (session.modified)
      config.debug(`session ${session.id}: its request failed; what it changed after its save is not saved`);
    return;
  }
  try {
    if (await session.saveIfModified())
      config.debug(`session ${session.id}: saved what changed while its response went out`);
  } catch (error) {
    config.report(error, `could not save what session ${session.id} got after its response started`);
  }
}

/** Callbacks waiting for a socket's 'close': one listener per socket, which keep-alive requests share. */
const socketWatchers = new WeakMap<Socket, Set<() => void>>();

/** Calls `callback` when `socket` closes; returns the function that stops watching. */
function onSocketClose(socket: Socket, callback: () => void): () => void {
  let watchers = socketWatchers.get(socket);
  if (!watchers) {
    const callbacks = new Set<() => void>();
    watchers = callbacks;
    socketWatchers.set(socket, callbacks);
    socket.once('close', () => {
      socketWatchers.delete(socket);
      for (const watcher of callbacks) watcher();
    });
  }
  const registered = watchers;
  registered.add(callback);
  return () => registered.delete(callback);
}

/**
 * For adapters whose handlers write to the ServerResponse themselves (node:http, Express):
 * holds `res` back from its first write until {@link finishSession} is done, then lets it
 * go; a failing save turns it into a 500. A handler that failed right after its first write
 * (or whose connection is gone by then) saves nothing. The lock is also released when the
 * response closes, however it ends ({@link releaseOnClose}). Returns `undefined`, and the
 * handler must not run, when the client left while the session loaded or waited for its lock.
 */
export function finishBeforeResponse(
  session: Session,
  res: ServerResponse,
  config: AdapterConfig,
): DeferredResponse | undefined {
  if (!releaseOnClose(session, res, config)) return undefined;
  return holdUntilFinished(session, res, config);
}

/**
 * Holds `res` back from its first write until {@link finishSession} is done (for a handler
 * that writes the ServerResponse itself: node:http, Express, a hijacked Fastify reply). The
 * caller has called {@link releaseOnClose}.
 */
export function holdUntilFinished(session: Session, res: ServerResponse, config: AdapterConfig): DeferredResponse {
  // While calls are held, res.headersSent reports true and its header methods throw; finishSession needs the real ones.
  const headers: HeaderTarget = unheldHeaders(res);
  const response = deferResponse(
    res,
    (failed) => finishSession(session, headers, { statusCode: res.statusCode, failed }, config),
    (error) => config.report(error, `could not save session ${session.id} or send its response`),
  );
  sessionResponses.set(res, response);
  return response;
}

/** The responses {@link finishBeforeResponse} holds, by response. */
const sessionResponses = new WeakMap<ServerResponse, DeferredResponse>();

/** The held response of a request whose session an adapter opened already (it is wrapped twice), if any. */
export function sessionResponse(res: ServerResponse): DeferredResponse | undefined {
  return sessionResponses.get(res);
}
