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
 * collide with the replay.
 * @module
 */
import type { ServerResponse } from 'node:http';

type Method = 'writeHead' | 'write' | 'end' | 'flushHeaders';
type Call = readonly [Method, unknown[]];

const METHODS: readonly Method[] = ['writeHead', 'write', 'end', 'flushHeaders'];

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
 * `res.headersSent` reports `true`; {@link headersReallySent} gives node's own value (which
 * the hook should use).
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
  const queue: Call[] = [];
  // waiting: nothing written yet; scheduled: calls queued, the hook starts at the next
  // macrotask; saving: the hook runs; open: the calls were replayed, writes go straight out.
  let state: 'waiting' | 'scheduled' | 'saving' | 'open' = 'waiting';
  let failed = false;
  let heldWrite = false;
  const ownHeadersSent = Object.getOwnPropertyDescriptor(res, 'headersSent');

  const release = async (): Promise<void> => {
    state = 'saving';
    let hookFailed = false;
    try {
      await beforeHeaders(failed || res.destroyed || res.socket?.destroyed === true);
    } catch (error) {
      hookFailed = true;
      onError(error);
    }
    state = 'open';
    if (ownHeadersSent) Object.defineProperty(res, 'headersSent', ownHeadersSent);
    else delete (res as { headersSent?: boolean }).headersSent;
    const calls = queue.splice(0);
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

  for (const method of METHODS) {
    const intercepted = (...args: unknown[]): unknown => {
      if (state === 'open') return original[method].apply(res, args);
      queue.push([method, method === 'writeHead' ? moveHeaders(res, args) : args]);
      if (state === 'waiting') {
        state = 'scheduled';
        Object.defineProperty(res, 'headersSent', { get: () => true, configurable: true, enumerable: true });
        setImmediate(() => void release().catch(onError));
      }
      if (method === 'write') {
        heldWrite = true;
        return false;
      }
      return method === 'flushHeaders' ? undefined : res;
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

/** Whether `res` has really sent its headers: node's own `headersSent`, past the `true` that {@link deferResponse} reports while it holds calls. */
export function headersReallySent(res: ServerResponse): boolean {
  return Reflect.get(Object.getPrototypeOf(res) as object, 'headersSent', res) === true;
}

/** A short plain-text 500, replacing any headers but Set-Cookie. */
export function respondError(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) if (name !== 'set-cookie') res.removeHeader(name);
  res.statusCode = 500;
  res.statusMessage = '';
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end('Internal Server Error\n');
}

/** Applies `writeHead`'s headers to `res` (as node does when `setHeader` was used too) and returns the call without them. */
function moveHeaders(res: ServerResponse, args: unknown[]): unknown[] {
  const [statusCode, second, third] = args;
  const reason = typeof second === 'string' ? second : undefined;
  const headers = reason === undefined ? second : third;
  for (const [name, value] of headerPairs(headers)) {
    if (value === undefined) continue;
    if (name.toLowerCase() === 'set-cookie') appendHeader(res, 'set-cookie', value);
    else res.setHeader(name, value as string | number | readonly string[]);
  }
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
