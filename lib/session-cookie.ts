/**
 * The browser's side of a session: the cookies of the session's name a request sent, the one
 * the session was loaded from, and the Set-Cookie header its response needs.
 * @module
 */
import { cookieValues, serializeCookie } from './cookie.js';
import { isSessionId } from './session-id.js';
import type { SessionConfig, SessionRequest } from './session-options.js';

/** A session id to try loading, and the cookie value that named it (none for the `id` option). */
export interface IdCandidate {
  id: string;
  value: string | undefined;
}

/** How many well-formed, correctly signed cookies of the session's name a load tries, in the order sent. */
const MAX_CANDIDATES = 4;

export class SessionCookie {
  readonly #config: SessionConfig;
  readonly #sent: readonly string[];
  /** The cookie the session was loaded from, as the browser sent it (signed with an older secret, maybe). */
  #value: string | undefined;
  #clear = false;
  /** The last id signed, and its signed value. */
  #signed: { id: string; value: string } | undefined;

  constructor(config: SessionConfig, request: SessionRequest | undefined | null) {
    this.#config = config;
    this.#sent = config.useCookies ? cookieValues(request?.headers?.cookie, config.key) : [];
  }

  /** The ids a first load tries, in order: the `id` option, or the request's correctly signed cookies. */
  candidates(): IdCandidate[] {
    const { id } = this.#config;
    if (id !== undefined) {
      if (isSessionId(id)) return [{ id, value: undefined }];
      this.#config.log?.('rejected the id option: it is not a session id');
      return [];
    }
    const candidates: IdCandidate[] = [];
    for (const value of this.#sent) {
      const verified = this.#config.signer.verify(value);
      if (verified.ok) candidates.push({ id: verified.id, value });
      else this.#config.log?.(`rejected the ${this.#config.key} cookie: ${verified.reason}`);
      if (candidates.length === MAX_CANDIDATES) break;
    }
    return candidates;
  }

  /** `id` as a reload tries it, named by the cookie the session was loaded from. */
  current(id: string): IdCandidate {
    return { id, value: this.#value };
  }

  /** The session was loaded from `candidate`. */
  loadedFrom(candidate: IdCandidate): void {
    this.#value = candidate.value;
  }

  /**
   * The session starts anew: the browser's cookie names it no more. With `expire`, the
   * response expires the browser's cookie (until the new session is saved), also one that
   * named no stored session (a logout in a tab whose session another tab ended).
   */
  detach(expire: boolean): void {
    if (expire) this.#clear = this.#value !== undefined || this.#sent.length > 0;
    this.#value = undefined;
  }

  /** The session was stored: its cookie replaces any expiring one. */
  saved(): void {
    this.#clear = false;
  }

  /** Whether the header for stored session `id` only renews a rolling cookie the browser has already. */
  renews(id: string): boolean {
    return this.#config.rollingCookie && this.#value !== undefined && this.#value === this.#sign(id);
  }

  /** The Set-Cookie header value for session `id` (`stored` or not), or `undefined` when the browser's cookie is right already. */
  header(id: string, stored: boolean): string | undefined {
    if (!this.#config.useCookies) return undefined;
    const now = Date.now();
    const { key } = this.#config;
    if (!stored) {
      if (!this.#clear) return undefined;
      return serializeCookie(key, '', { ...this.#config.cookieAttributes(now), maxAge: 0, expires: new Date(0) });
    }
    const value = this.#sign(id);
    if (value === this.#value && !this.#config.rollingCookie) return undefined;
    return serializeCookie(key, value, this.#config.cookieAttributes(now));
  }

  /** `id` signed (once per id: a response's header and its renewal check sign the same one). */
  #sign(id: string): string {
    if (this.#signed?.id !== id) this.#signed = { id, value: this.#config.signer.sign(id) };
    return this.#signed.value;
  }
}
