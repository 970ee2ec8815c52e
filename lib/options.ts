/**
 * Option checks shared by every layer: a bad option throws a TypeError that names the
 * option and the value received.
 * @module
 */

/** Shows a received value in an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null || typeof value !== 'object') return String(value);
  const kind = value.constructor?.name;
  return kind && kind !== 'Object' ? `a ${kind}` : 'an object';
}

/**
 * A secret option's value as an error message may show it: strings by their length only
 * (a near-miss secret must not end up in logs).
 */
export function describeSecret(value: unknown): string {
  const describeOne = (one: unknown) =>
    typeof one === 'string'
      ? `a string of ${one.length} characters${one.isWellFormed() ? '' : ', not well-formed Unicode'}`
      : one === null
        ? 'null'
        : `a value of type ${typeof one}`;
  if (Array.isArray(value)) return `an array of ${value.length}: ${value.map(describeOne).join('; ')}`;
  return describeOne(value);
}

export function checkOptionsObject(options: unknown): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`options must be an object, received ${describe(options)}`);
  }
}

/**
 * The largest data `ttl` in milliseconds (2^53 - 1, about 285,000 years): an exact integer,
 * written in digits, that Redis accepts for `PEXPIRE`. Longer ttls are refused; ttls derived
 * from a Session `timeout` are capped to it.
 */
export const MAX_TTL = Number.MAX_SAFE_INTEGER;

/** A data `ttl` option in milliseconds (at least 1, at most {@link MAX_TTL}), or `Infinity` when not given. */
export function checkTtl(value: unknown): number {
  return checkMilliseconds('ttl', value, Infinity, { min: 1, max: MAX_TTL, infinite: true });
}

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days); a longer one becomes 1 ms. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * A non-negative number of milliseconds (or seconds), at least `min` and at most `max`;
 * `Infinity` only with `infinite` (whatever `max`).
 */
export function checkMilliseconds(
  name: string,
  value: unknown,
  fallback: number,
  { min = 0, max = Infinity, infinite = false }: { min?: number; max?: number; infinite?: boolean } = {},
): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    value >= min &&
    ((Number.isFinite(value) && value <= max) || (infinite && value === Infinity));
  if (!ok) {
    const range = `${min > 0 ? `>= ${min}` : '>= 0'}${Number.isFinite(max) ? ` and <= ${max}` : ''}`;
    throw new TypeError(`${name} must be a number ${range}, received ${describe(value)}`);
  }
  return value as number;
}

export function checkFunction<F extends (...args: never[]) => unknown>(name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function, received ${describe(value)}`);
  return value as F;
}

export function checkBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be true or false, received ${describe(value)}`);
  return value;
}

export function checkString(
  name: string,
  value: unknown,
  { optional = false, nonEmpty = true } = {},
): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || (nonEmpty && value.length === 0)) {
    throw new TypeError(`${name} must be a ${nonEmpty ? 'non-empty ' : ''}string, received ${describe(value)}`);
  }
  return value;
}

/** A whole number of things (files, items), at least `min`. */
export function checkCount(name: string, value: unknown, { min = 0 }: { min?: number } = {}): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`${name} must be an integer >= ${min}, received ${describe(value)}`);
  }
  return value;
}

/** The code of the process warning for an option nothing takes. */
export const UNKNOWN_OPTION_WARNING = 'SESSIONLOCK_UNKNOWN_OPTION';
const warnedOptions = new Set<string>();
const checkedOptions = new WeakSet<object>();

/**
 * Emits a process warning (code {@link UNKNOWN_OPTION_WARNING}, once per name in a process)
 * for each option of `options` not in `known`, naming the closest known one: a misspelt
 * option, `secrets` for `secret`, would otherwise be ignored without a word.
 */
export function warnUnknownOptions(options: object, known: readonly string[]): void {
  if (checkedOptions.has(options)) return;
  checkedOptions.add(options);
  for (const name of Object.keys(options)) {
    if (known.includes(name) || warnedOptions.has(name)) continue;
    warnedOptions.add(name);
    const closest = closestName(name, known);
    const hint = Object.hasOwn(EXPRESS_SESSION_OPTIONS, name)
      ? ` (express-session's; here: ${EXPRESS_SESSION_OPTIONS[name]})`
      : closest
        ? ` (did you mean ${JSON.stringify(closest)}?)`
        : '';
    process.emitWarning(`sessionlock: unknown option ${JSON.stringify(name)} is ignored${hint}`, {
      code: UNKNOWN_OPTION_WARNING,
    });
  }
}

/** express-session's options that sessionlock does not take, and what does their work here. */
const EXPRESS_SESSION_OPTIONS: Record<string, string> = {
  name: '"key"',
  cookie:
    'the cookie options are top-level: secure, httpOnly, sameSite, cookiePath, cookieDomain, cookieExpires (seconds)',
  rolling: 'a number of seconds as "cookieExpires" renews the cookie on every response',
  resave: 'not needed: a save writes only the keys a request changed',
  saveUninitialized: 'not needed: a new session is stored once it holds something',
  proxy: 'not needed: "secure: true" sets Secure whatever the request\'s protocol',
  genid: 'not taken: ids are random, 160 bits',
  unset: 'not needed: invalidate() removes the stored session',
};

/** The known name within a third of `name`'s length in edits (case ignored), if any. */
function closestName(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance <= Math.max(1, Math.floor(name.length / 3)) && (!best || distance < best.distance)) {
      best = { name: candidate, distance };
    }
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}
