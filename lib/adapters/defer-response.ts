/**
 * Holding a node:http response back until the session is saved. Plain handlers write the
 * response themselves (`writeHead`, `write`, `end`, `flushHeaders`, possibly streaming and
 * without returning a promise), so the first of those calls is queued, a hook runs (save the
 * session, set its cookie, unlock), and then the queued calls are replayed in order.
 *
 * The hook starts a macrotask after the first call (not during it), so a handler that throws
 * right after starting its response — at once, or a few microtasks later — has failed by
 * then, and the hook knows it. While calls are held, `res.headersSent` reports `true`, as
 * it would without the hold: a framework whose handler fails mid-response (Express's
 * finalhandler) then cuts the connection instead of starting a second response, which would
 * collide with the replay. For the same reason, while calls are held the response behaves as
 * node's does once its headers are out: `setHeader`, `removeHeader`, `appendHeader` and a
 * second `writeHead` throw ERR_HTTP_HEADERS_SENT, and a write or end after the held `end`
 * fails with ERR_STREAM_WRITE_AFTER_END (nothing is queued, nor replayed, after the first
 * `end`). The hook sets its headers through {@link unheldHeaders}.
 * @module
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import { Http2ServerResponse } from 'node:http2';

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders';
type Call = readonly [Method, unknown[]];
type HeaderMethod = 'setHeader' | 'removeHeader' | 'appendHeader';

const METHODS: readonly Method[] = ['writeHead', 'write', 'end', 'flushHeaders'];
const HEADER_METHODS: readonly HeaderMethod[] = ['setHeader', 'removeHeader', 'appendHeader'];

/** A response's header methods that work while it is held (the hook's), and its real `headersSent`. */
export interface UnheldHeaders {
  getHeader(name: string): unknown;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  removeHeader(name: string): unknown;
  readonly headersSent: boolean;
}

/** The header methods of held responses, as they were before {@link deferResponse} held them. */
const originalHeaderMethods = new WeakMap<ServerResponse, Record<HeaderMethod, (...args: unknown[]) => unknown>>();

/** Control over a response held back by {@link deferResponse}. */
export interface DeferredResponse {
  /**
   * The handler failed. Nothing written yet: respond 500 (through the hook, so the cookie
   * logic and the unlock still run). A complete response queued or sent: let it go. An
   * incomplete one: replace it by a 500 if its headers are not out yet, else cut it. Before
   * the hook started, the hook is told (its `failed` argument).
   */
  fail(): void;
}

/**
 * Holds back `res` from its first `writeHead`/`write`/`end`/`flushHeaders` until
 * `beforeHeaders` has settled, then replays the calls in order. When `beforeHeaders`
 * rejects, the queued response is dropped and a 500 is sent instead; `onError` receives
 * the error. Headers given to `writeHead` are moved onto `res` at once (Set-Cookie values
 * are appended), so the hook sees them and can add its own, and `res.statusCode` is set
 * from `writeHead` so the hook sees the status.
 *
 * `beforeHeaders` runs a macrotask (`setImmediate`) after the first call, and gets `failed`:
 * whether the handler failed by then ({@link DeferredResponse.fail}) or the connection is
 * already gone, so the response cannot go out. From the first call until the replay,
 * `res.headersSent` reports `true` and the header methods throw, as node's do once the
 * headers are out; {@link unheldHeaders} gives the hook working ones and node's own
 * `headersSent`.
 */
export function deferResponse(
  res: ServerResponse,
  beforeHeaders: (failed: boolean) => Promise<void>,
  onError: (error: unknown) => void,
): DeferredResponse {
  const original = Object.fromEntries(METHODS.map((method) => [method, res[method]])) as Record<
    Method,
    (...args: unknown[]) => unknown
  >;
  const originalHeaders = Object.fromEntries(HEADER_METHODS.map((method) => [method, res[method]])) as Record<
    HeaderMethod,
    (...args: unknown[]) => unknown
  >;
  originalHeaderMethods.set(res, originalHeaders);
  const queue: Call[] = [];
  // waiting: nothing written yet; scheduled: calls queued, the hook starts at the next
  // macrotask; saving: the hook runs; open: the calls were replayed, writes go straight out.
  let state: 'waiting' | 'scheduled' | 'saving' | 'open' = 'waiting';
  let failed = false;
  let heldWrite = false;
  let endQueued = false;
  // The status the response started with: node's would ignore a later `res.statusCode = …`.
  let heldStatus: { code: number; message: string | undefined } | undefined;
  const ownHeadersSent = Object.getOwnPropertyDescriptor(res, 'headersSent');

  const release = async (): Promise<void> => {
    state = 'saving';
    restoreStatus();
    let hookFailed = false;
    try {
      await beforeHeaders(failed || connectionGone(res));
    } catch (error) {
      hookFailed = true;
      onError(error);
    }
    state = 'open';
    if (ownHeadersSent) Object.defineProperty(res, 'headersSent', ownHeadersSent);
    else delete (res as { headersSent?: boolean }).headersSent;
    const calls = queue.splice(0);
    restoreStatus();
    if (res.destroyed) return;
    if (hookFailed || (failed && !calls.some(([method]) => method === 'end'))) {
      respondError(res);
      return;
    }
    try {
      for (const [method, args] of calls) original[method].apply(res, args);
    } catch (error) {
      onError(error);
      if (res.headersSent) res.destroy();
      else respondError(res);
      return;
    }
    if (heldWrite && !res.writableNeedDrain && !res.writableEnded) res.emit('drain');
  };

  const restoreStatus = (): void => {
    if (heldStatus === undefined) return;
    res.statusCode = heldStatus.code;
    if (heldStatus.message !== undefined) res.statusMessage = heldStatus.message;
  };

  // The first call: the response is held from now on, and the hook starts at the next macrotask.
  const hold = (): void => {
    heldStatus = { code: res.statusCode, message: hasStatusMessage(res) ? res.statusMessage : undefined };
    state = 'scheduled';
    Object.defineProperty(res, 'headersSent', { get: () => true, configurable: true, enumerable: true });
    setImmediate(() => void release().catch(onError));
  };

  const intercept = (method: Method, args: unknown[]): unknown => {
    if (state === 'open') return original[method].apply(res, args);
    if (state !== 'waiting' && method === 'writeHead') throw headersSentError('write');
    if (endQueued) return afterEnd(res, method, args);
    queue.push([method, method === 'writeHead' ? moveHeaders(res, originalHeaders, args) : args]);
    if (method === 'end') endQueued = true;
    if (state === 'waiting') hold();
    if (method === 'write') {
      heldWrite = true;
      return false;
    }
    return method === 'flushHeaders' ? undefined : res;
  };

  for (const method of METHODS) {
    const intercepted = (...args: unknown[]): unknown => intercept(method, args);
    Object.defineProperty(res, method, { value: intercepted, writable: true, configurable: true });
  }
  for (const method of HEADER_METHODS) {
    if (typeof originalHeaders[method] !== 'function') continue;
    const intercepted = (...args: unknown[]): unknown => {
      if (state === 'scheduled' || state === 'saving') throw headersSentError(method.replace('Header', ''));
      return originalHeaders[method].apply(res, args);
    };
    Object.defineProperty(res, method, { value: intercepted, writable: true, configurable: true });
  }

  return {
    fail() {
      if (state === 'scheduled' || state === 'saving') failed = true;
      else if (state === 'waiting') respondError(res);
      else if (!res.writableEnded && !res.destroyed) {
        if (res.headersSent) res.destroy();
        else respondError(res);
      }
    },
  };
}

/** Whether `res` can no longer go out: it was destroyed, or its connection (also the one of a pipelined response not yet attached to it) is gone. */
export function connectionGone(res: ServerResponse): boolean {
  return res.destroyed || (res.socket ?? res.req?.socket)?.destroyed === true;
}

/** Whether `res` has really sent its headers: node's own `headersSent`, past the `true` that {@link deferResponse} reports while it holds calls. */
export function headersReallySent(res: ServerResponse): boolean {
  return Reflect.get(Object.getPrototypeOf(res) as object, 'headersSent', res) === true;
}

/** Header access to `res` past {@link deferResponse}'s hold (which makes its header methods throw, as once node's headers are out). */
export function unheldHeaders(res: ServerResponse): UnheldHeaders {
  const method = (name: HeaderMethod): ((...args: unknown[]) => unknown) =>
    originalHeaderMethods.get(res)?.[name] ?? (res[name] as (...args: unknown[]) => unknown);
  return {
    getHeader: (name) => res.getHeader(name),
    setHeader: (name, value) => method('setHeader').call(res, name, value),
    removeHeader: (name) => method('removeHeader').call(res, name),
    get headersSent() {
      return headersReallySent(res);
    },
  };
}

/** A node-style error with a `code`. */
function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** What node throws when headers are set (`action`: set, remove, append, write) after they went out. */
function headersSentError(action: string): Error {
  return nodeError('ERR_HTTP_HEADERS_SENT', `Cannot ${action} headers after they are sent to the client`);
}

/**
 * A `write`, `end` or `flushHeaders` after the held response's `end`: what node does once a
 * response has ended (a write, or an end with data, fails with ERR_STREAM_WRITE_AFTER_END:
 * to its callback and as an 'error' event; a bare end waits for 'finish'). Nothing is queued.
 */
function afterEnd(res: ServerResponse, method: Method, args: unknown[]): unknown {
  if (method === 'flushHeaders') return undefined;
  const callback = args.findLast((arg) => typeof arg === 'function') as ((error?: Error) => void) | undefined;
  const chunk = typeof args[0] === 'function' ? undefined : args[0];
  if (method === 'end' && !chunk) {
    if (callback) res.once('finish', () => callback());
    return res;
  }
  if (!res.destroyed) {
    const error = nodeError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
    process.nextTick(() => {
      callback?.(error);
      if (!res.destroyed) res.emit('error', error);
    });
  }
  return method === 'end' ? res : false;
}

/** A short plain-text error response (500 unless `status` says otherwise), replacing any headers but Set-Cookie. */
export function respondError(res: ServerResponse, status = 500): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) if (name !== 'set-cookie') res.removeHeader(name);
  res.statusCode = status;
  if (hasStatusMessage(res)) res.statusMessage = '';
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(`${STATUS_CODES[status] ?? 'Error'}\n`);
}

/** Whether `res` has a status message: an HTTP/2 compat response has none (node warns when it is read or set). */
function hasStatusMessage(res: ServerResponse): boolean {
  return !((res as object) instanceof Http2ServerResponse);
}

/** Applies `writeHead`'s headers to `res` (as node does when `setHeader` was used too) and returns the call without them. */
function moveHeaders(
  res: ServerResponse,
  methods: Record<HeaderMethod, (...args: unknown[]) => unknown>,
  args: unknown[],
): unknown[] {
  const [statusCode, second, third] = args;
  const reason = typeof second === 'string' ? second : undefined;
  const headers = reason === undefined ? second : third;
  const target = {
    getHeader: (name: string) => res.getHeader(name),
    setHeader: (name: string, value: unknown) => methods.setHeader.call(res, name, value),
  };
  const pairs = headerPairs(headers).filter(([, value]) => value !== undefined);
  if (Array.isArray(headers)) {
    // A flat array may repeat a name, and every value goes out (as node sends it): each
    // name's values replace its earlier value. Set-Cookie keeps its earlier values.
    const grouped = new Map<string, [string, unknown[]]>();
    for (const [name, value] of pairs) {
      const entry = grouped.get(name.toLowerCase());
      if (entry) entry[1].push(value);
      else grouped.set(name.toLowerCase(), [name, [value]]);
    }
    for (const [lower, [name, values]] of grouped) {
      if (lower === 'set-cookie') appendHeader(target, name, values.flat());
      else target.setHeader(name, values.length === 1 ? values[0] : values.flat());
    }
    return withoutHeaders(res, statusCode, reason);
  }
  for (const [name, value] of pairs) {
    if (name.toLowerCase() === 'set-cookie') appendHeader(target, 'set-cookie', value);
    else target.setHeader(name, value);
  }
  return withoutHeaders(res, statusCode, reason);
}

/** `writeHead`'s call without its headers; sets `res.statusCode` so the hook sees it. */
function withoutHeaders(res: ServerResponse, statusCode: unknown, reason: string | undefined): unknown[] {
  if (typeof statusCode === 'number') res.statusCode = statusCode;
  return reason === undefined ? [statusCode] : [statusCode, reason];
}

/** `writeHead` takes an object, or a flat array `[name, value, name, value, …]`. */
function headerPairs(headers: unknown): [string, unknown][] {
  if (Array.isArray(headers)) {
    const pairs: [string, unknown][] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([String(headers[i]), headers[i + 1]]);
    return pairs;
  }
  return headers && typeof headers === 'object' ? Object.entries(headers) : [];
}

/** Adds values to a header that may repeat (Set-Cookie), keeping the values already set. */
export function appendHeader(
  target: { getHeader(name: string): unknown; setHeader(name: string, value: string[]): unknown },
  name: string,
  value: unknown,
): void {
  const existing = target.getHeader(name);
  const values = (list: unknown): string[] =>
    list === undefined ? [] : Array.isArray(list) ? list.map(String) : [String(list)];
  target.setHeader(name, [...values(existing), ...values(value)]);
}
