/**
 * Session ids: 160 random bits, lowercase base32 (URL- and file-name-safe), optionally
 * signed with HMAC-SHA256 under a list of secrets (sign with the first, accept any, so
 * secrets can be rotated).
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const ID_BYTES = 20;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** What a session id may look like: what we generate, or an application's own ids of 16–128 URL-safe characters. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** A new session id: 160 random bits as 32 lowercase base32 characters. */
export function generateSessionId(): string {
  const bytes = randomBytes(ID_BYTES);
  let id = '';
  for (let bit = 0; bit < ID_BYTES * 8; bit += 5) {
    const byte = bit >> 3;
    const pair = ((bytes[byte] as number) << 8) | (bytes[byte + 1] ?? 0);
    id += BASE32[(pair >> (11 - (bit & 7))) & 31];
  }
  return id;
}

/** A generated id standing alone in a text (a message, a path, a log line). */
const GENERATED_ID_IN_TEXT = /(?<![A-Za-z0-9_-])[a-z2-7]{32}(?![A-Za-z0-9_-])/g;

/**
 * `text` with every generated session id in it cut to its first 8 characters and `…`: error
 * messages and log lines can reach logs, and error pages, where a whole id, the cookie itself
 * when no `secret` is set, would let anyone who reads them take over the session.
 */
export function shortenSessionIds(text: string): string {
  return text.replace(GENERATED_ID_IN_TEXT, (id) => `${id.slice(0, 8)}…`);
}

/** Whether `id` has the shape of a session id (it says nothing of whether it exists). */
export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID_PATTERN.test(id);
}

/** What a cookie value turned out to be. */
export type VerifiedId =
  | { ok: true; id: string /** Signed with a secret other than the first: re-sign it. */; stale: boolean }
  | { ok: false; reason: string };

const MAX_COOKIE_VALUE = 256;

/** Signs ids into cookie values and verifies them, in constant time. */
export class IdSigner {
  readonly #secrets: readonly string[];

  /** `secrets` empty: ids travel unsigned. */
  constructor(secrets: readonly string[]) {
    this.#secrets = secrets;
  }

  /** The cookie value for `id`. */
  sign(id: string): string {
    const secret = this.#secrets[0];
    return secret === undefined ? id : `${id}.${hmac(secret, id)}`;
  }

  /** The id a cookie value carries, if it is well formed and correctly signed. */
  verify(value: string): VerifiedId {
    if (value.length > MAX_COOKIE_VALUE) return { ok: false, reason: `it is ${value.length} characters long` };
    if (this.#secrets.length === 0) {
      return isSessionId(value)
        ? { ok: true, id: value, stale: false }
        : { ok: false, reason: 'it is not a session id' };
    }
    const dot = value.lastIndexOf('.');
    const id = value.slice(0, dot);
    if (dot < 0 || !isSessionId(id)) return { ok: false, reason: 'it is not a signed session id' };
    const given = Buffer.from(value.slice(dot + 1));
    for (const [index, secret] of this.#secrets.entries()) {
      const expected = Buffer.from(hmac(secret, id));
      if (given.length === expected.length && timingSafeEqual(given, expected))
        return { ok: true, id, stale: index > 0 };
    }
    return { ok: false, reason: 'its signature does not match' };
  }
}

function hmac(secret: string, id: string): string {
  return createHmac('sha256', secret).update(id).digest('base64url');
}
