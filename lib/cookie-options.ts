/**
 * The cookie options of a Session, checked against what browsers accept (RFC 6265bis): a
 * cookie a browser would drop is a TypeError at start-up, not a session that never sticks.
 * @module
 */
import { type CookieAttributes, checkAttribute } from './cookie.js';
import { checkBoolean, checkString, describe } from './options.js';
import type { SessionOptions } from './session-options.js';

/** The longest a browser keeps a cookie: 400 days, in seconds (RFC 6265bis). */
export const MAX_COOKIE_AGE = 400 * 24 * 3600;

/** The attributes of the session's cookie at a time, and whether each response renews it. */
export interface CookieSettings {
  attributes(now: number): CookieAttributes;
  /** `cookieExpires` is a number of seconds or `false`: every response of a stored session sets the cookie again. */
  rolling: boolean;
}

/** Checks the cookie options (a TypeError names the first bad one) for a cookie called `key`. */
export function cookieSettings(key: string, options: SessionOptions): CookieSettings {
  const secure = checkBoolean('secure', options.secure, false);
  const sameSite = options.sameSite ?? 'Lax';
  if (!['Strict', 'Lax', 'None'].includes(sameSite)) {
    throw new TypeError(`sameSite must be 'Strict', 'Lax' or 'None', received ${describe(sameSite)}`);
  }
  const partitioned = checkBoolean('partitioned', options.partitioned, false);
  if ((sameSite === 'None' || partitioned) && !secure) {
    throw new TypeError(`sameSite 'None' and partitioned cookies need secure: true (browsers reject them otherwise)`);
  }
  const path = checkAttribute('cookiePath', checkString('cookiePath', options.cookiePath ?? '/') as string);
  if (!path.startsWith('/')) throw new TypeError(`cookiePath must start with '/', received ${describe(path)}`);
  const domain = options.cookieDomain === undefined ? undefined : checkDomain(options.cookieDomain);
  checkNamePrefix(key, { secure, path, domain });
  const fixed: CookieAttributes = {
    path,
    domain,
    secure,
    httpOnly: checkBoolean('httpOnly', options.httpOnly, true),
    sameSite,
    partitioned,
  };
  const expires = options.cookieExpires ?? true;
  if (expires === true) return { attributes: () => fixed, rolling: false };
  if (expires instanceof Date && !Number.isNaN(expires.getTime()))
    return { attributes: () => ({ ...fixed, expires }), rolling: false };
  if (expires === false || (typeof expires === 'number' && Number.isFinite(expires) && expires > 0)) {
    const maxAge = expires === false ? MAX_COOKIE_AGE : Math.min(Math.ceil(expires), MAX_COOKIE_AGE);
    return { attributes: (now) => ({ ...fixed, maxAge, expires: new Date(now + maxAge * 1000) }), rolling: true };
  }
  throw new TypeError(
    `cookieExpires must be true, false, a Date or a number of seconds > 0, received ${describe(expires)}`,
  );
}

function checkDomain(domain: unknown): string {
  const checked = checkAttribute('cookieDomain', checkString('cookieDomain', domain) as string);
  if (/[:/]/.test(checked)) {
    throw new TypeError(`cookieDomain must be a host name without port or path, received ${describe(domain)}`);
  }
  return checked;
}

/** Browsers drop a `__Secure-` cookie without Secure, and a `__Host-` one also with a Domain or a Path other than '/'. */
function checkNamePrefix(key: string, cookie: { secure: boolean; path: string; domain: string | undefined }): void {
  const lower = key.toLowerCase();
  if (lower.startsWith('__secure-') && !cookie.secure) {
    throw new TypeError(`a cookie named ${describe(key)} needs secure: true (browsers drop it otherwise)`);
  }
  if (lower.startsWith('__host-') && (!cookie.secure || cookie.path !== '/' || cookie.domain !== undefined)) {
    throw new TypeError(
      `a cookie named ${describe(key)} needs secure: true, cookiePath '/' and no cookieDomain (browsers drop it otherwise)`,
    );
  }
}
