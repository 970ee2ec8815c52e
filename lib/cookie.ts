/**
 * Cookie header parsing and Set-Cookie serialising, for the one cookie a session needs.
 * Parsing is tolerant (malformed pairs are skipped, never thrown); serialising is strict
 * (attributes that would break the header throw a TypeError).
 * @module
 */

/** Attributes of a Set-Cookie header. */
export interface CookieAttributes {
  path?: string | undefined;
  domain?: string | undefined;
  expires?: Date | undefined;
  maxAge?: number | undefined;
  secure?: boolean | undefined;
  httpOnly?: boolean | undefined;
  sameSite?: 'Strict' | 'Lax' | 'None' | undefined;
  partitioned?: boolean | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ATTRIBUTE_VALUE = /^[\u0021-\u003a\u003c-\u007e]+$/;
const VALUE = /^[\u0021\u0023-\u002b\u002d-\u003a\u003c-\u005b\u005d-\u007e]*$/;

/** Whether `name` can be a cookie name. */
export function isCookieName(name: string): boolean {
  return TOKEN.test(name);
}

/**
 * The values of every cookie called `name` in a Cookie header, in order, at most `limit`.
 * Browsers send the cookie with the most specific path first when several match. The
 * header's length is the server's to bound (Node's `maxHeaderSize`).
 */
export function cookieValues(header: string | string[] | undefined, name: string, limit = 64): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join('; ') : String(header);
  const values: string[] = [];
  for (const pair of text.split(';')) {
    const equals = pair.indexOf('=');
    if (equals < 0 || pair.slice(0, equals).trim() !== name) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
    if (values.length >= limit) break;
  }
  return values;
}

/** A Set-Cookie header value. Throws a TypeError for a name, value or attribute that cannot be sent. */
export function serializeCookie(name: string, value: string, attributes: CookieAttributes = {}): string {
  if (!isCookieName(name)) throw new TypeError(`cookie name is not a valid token: ${JSON.stringify(name)}`);
  if (!VALUE.test(value))
    throw new TypeError(`cookie value has characters a cookie cannot carry: ${JSON.stringify(value)}`);
  const parts = [`${name}=${value}`];
  if (attributes.maxAge !== undefined) parts.push(`Max-Age=${Math.floor(attributes.maxAge)}`);
  if (attributes.expires) parts.push(`Expires=${attributes.expires.toUTCString()}`);
  if (attributes.domain) parts.push(`Domain=${checkAttribute('cookieDomain', attributes.domain)}`);
  if (attributes.path) parts.push(`Path=${checkAttribute('cookiePath', attributes.path)}`);
  if (attributes.secure) parts.push('Secure');
  if (attributes.httpOnly) parts.push('HttpOnly');
  if (attributes.sameSite) parts.push(`SameSite=${attributes.sameSite}`);
  if (attributes.partitioned) parts.push('Partitioned');
  return parts.join('; ');
}

/** Throws a TypeError unless `value` can be a cookie attribute value (no `;`, no controls). */
export function checkAttribute(option: string, value: string): string {
  if (!ATTRIBUTE_VALUE.test(value))
    throw new TypeError(`${option} cannot be used in a cookie: ${JSON.stringify(value)}`);
  return value;
}
