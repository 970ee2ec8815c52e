/**
 * Value encoding. A serializer turns one stored value into a string and back; every backend
 * stores one encoded string per key, so a save encodes only the keys that changed.
 * @module
 */
import { SerializationError } from './errors.js';

/** Encodes one value to a string and back. `JSON` itself fits this shape. */
export interface Serializer {
  /** Encodes a value; throws {@link SerializationError} for values it cannot represent. */
  stringify(value: unknown): string;
  /** Decodes what `stringify` produced; throws on malformed input. */
  parse(text: string): unknown;
}

/**
 * Encodes `value` with `serializer`, turning any failure into a {@link SerializationError}
 * whose path starts with `path` (e.g. `cart` or `data.cart[2]`).
 */
export function encodeValue(serializer: Serializer, path: string, value: unknown): string {
  let raw: unknown;
  try {
    raw = serializer.stringify(value);
  } catch (error) {
    if (error instanceof SerializationError) {
      const inner = error.message.slice(error.message.indexOf(': ') + 2);
      throw new SerializationError(joinPath(path, error.path), inner, { cause: error });
    }
    throw new SerializationError(path, error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (typeof raw !== 'string') throw new SerializationError(path, 'the serializer produced no string');
  return raw;
}

function joinPath(outer: string, inner: string): string {
  if (!inner) return outer;
  if (!outer) return inner;
  return inner.startsWith('[') ? `${outer}${inner}` : `${outer}.${inner}`;
}

const DATE_TAG = '$date';
const ESCAPE_TAG = '$esc';

/** How deep objects and arrays may nest in one value: deeper ones could not be decoded again (the reviver recurses). */
const MAX_DEPTH = 1000;

/**
 * The default serializer: JSON that refuses to change a value silently.
 *
 * - Plain objects, arrays, strings, finite numbers, booleans and `null` round trip as JSON.
 * - `Date` objects round trip as dates (stored as `{"$date": "<ISO string>"}`); subclasses of
 *   `Date` and dates with properties of their own are rejected.
 * - Object properties whose value is `undefined` are dropped, as `JSON.stringify` does.
 * - Everything else is rejected with {@link SerializationError} naming where it is: functions,
 *   symbols, bigints, `NaN`/`Infinity`, `-0`, `undefined` inside arrays, sparse arrays, arrays
 *   with extra properties and subclasses of `Array`, symbol keys and non-enumerable properties,
 *   invalid dates, cycles, and objects that are not plain
 *   (`Map`, `Set`, class instances, objects without a prototype), which JSON would change,
 *   and objects and arrays nested more than 1000 deep.
 * - `parse` refuses what `stringify` would refuse (an invalid date, `-0`, a number out of
 *   range, nesting too deep), so a value it decodes can always be stored again.
 */
export const jsonSerializer: Serializer = {
  stringify(value) {
    const tagged = inspect(value, [], []);
    return tagged ? JSON.stringify(value, tagReplacer) : JSON.stringify(value);
  },
  parse(text) {
    const mayHaveTags = text.includes('"$') && (text.includes(`"${DATE_TAG}"`) || text.includes(`"${ESCAPE_TAG}"`));
    const value: unknown = mayHaveTags ? JSON.parse(text, untagReviver) : JSON.parse(text);
    if (storableAsDecoded(value, 0)) return value;
    try {
      inspect(value, [], []);
    } catch (error) {
      throw new SyntaxError(`it decodes to a value stringify refuses (${(error as Error).message})`, { cause: error });
    }
    return value;
  },
};

/** The keys and indexes leading to the value being inspected; turned into a path only for an error. */
type Trail = (string | number)[];

function rejected(trail: Trail, message: string): SerializationError {
  let path = '';
  for (const step of trail) {
    if (typeof step === 'number') path = `${path}[${step}]`;
    else if (!IDENTIFIER.test(step)) path = `${path}[${JSON.stringify(step)}]`;
    else path = path ? `${path}.${step}` : step;
  }
  return new SerializationError(path, message);
}

/** A key shown bare in a path; any other is quoted (a key may come from a client: no raw newline or escape sequence reaches a log). */
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Validates a value; returns true when it holds something that must be tagged (a Date, or a key that looks like a tag). */
function inspect(value: unknown, trail: Trail, ancestors: object[]): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return false;
    case 'number':
      if (!Number.isFinite(value)) throw rejected(trail, `${value} is not a finite number`);
      if (Object.is(value, -0)) throw rejected(trail, '-0 would come back as 0');
      return false;
    case 'undefined':
      throw rejected(trail, 'undefined cannot be stored here');
    case 'object':
      if (value === null) return false;
      if (value instanceof Date) {
        if (Object.getPrototypeOf(value) !== Date.prototype) {
          throw rejected(trail, `a ${value.constructor?.name ?? 'Date subclass'} would come back as a plain Date`);
        }
        if (Number.isNaN(value.getTime())) throw rejected(trail, 'an invalid Date cannot be stored');
        if (Reflect.ownKeys(value).length > 0) throw rejected(trail, "a Date's own properties would be dropped");
        return true;
      }
      return inspectContainer(value, trail, ancestors);
    default:
      throw rejected(trail, `a ${typeof value} cannot be stored`);
  }
}

/**
 * {@link inspect}'s verdict on what `JSON.parse` (with {@link untagReviver}) returns, cheaply:
 * such a value has only plain objects, dense arrays, valid or invalid dates and no cycles, so
 * only its numbers, dates and depth can be refused. False means "ask `inspect`", which names why.
 */
function storableAsDecoded(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (value instanceof Date) return !Number.isNaN(value.getTime());
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (!storableAsDecoded(item, depth + 1)) return false;
    return true;
  }
  for (const key of Object.keys(value)) {
    if (!storableAsDecoded((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/** An own key of `value` that JSON would drop (a symbol key, a non-enumerable property), and why; `name` unset for a symbol. */
export function droppedKey(
  value: object,
  keys: readonly string[] = Object.keys(value),
): { name?: string; reason: string } | undefined {
  const hidden = Array.isArray(value) ? 1 : 0;
  if (Reflect.ownKeys(value).length === keys.length + hidden) return undefined;
  if (Object.getOwnPropertySymbols(value).length > 0) return { reason: 'symbol keys would be dropped' };
  const name = Object.getOwnPropertyNames(value).find(
    (key) => !Object.prototype.propertyIsEnumerable.call(value, key) && key !== 'length',
  );
  return name === undefined ? undefined : { name, reason: 'a non-enumerable property would be dropped' };
}

function inspectContainer(value: object, trail: Trail, ancestors: object[]): boolean {
  if (ancestors.includes(value)) throw rejected(trail, 'a circular reference cannot be stored');
  if (trail.length >= MAX_DEPTH) throw rejected([], `it nests objects and arrays more than ${MAX_DEPTH} deep`);
  const keys = Object.keys(value);
  const dropped = droppedKey(value, keys);
  if (dropped) throw rejected(dropped.name === undefined ? trail : [...trail, dropped.name], dropped.reason);
  ancestors.push(value);
  const tagged = Array.isArray(value)
    ? inspectArray(value, keys, trail, ancestors)
    : inspectObject(value, keys, trail, ancestors);
  ancestors.pop();
  return tagged;
}

function inspectArray(value: unknown[], keys: readonly string[], trail: Trail, ancestors: object[]): boolean {
  if (Object.getPrototypeOf(value) !== Array.prototype) {
    throw rejected(trail, `a ${value.constructor?.name ?? 'Array subclass'} would come back as a plain Array`);
  }
  if (keys.length !== value.length) {
    throw rejected(trail, 'an array with holes or extra properties would not come back the same');
  }
  let tagged = false;
  for (let i = 0; i < value.length; i++) {
    trail.push(i);
    tagged = inspect(value[i], trail, ancestors) || tagged;
    trail.pop();
  }
  return tagged;
}

function inspectObject(value: object, keys: readonly string[], trail: Trail, ancestors: object[]): boolean {
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    const kind = value.constructor?.name ? `a ${value.constructor.name}` : 'an object without a prototype';
    throw rejected(trail, `${kind} is not a plain object; JSON would not restore it`);
  }
  let tagged = false;
  for (const key of keys) {
    const child = (value as Record<string, unknown>)[key];
    if (child === undefined) continue;
    if (key === DATE_TAG || key === ESCAPE_TAG) tagged = true;
    trail.push(key);
    tagged = inspect(child, trail, ancestors) || tagged;
    trail.pop();
  }
  return tagged;
}

function tagReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const original = this[key];
  if (original instanceof Date) return { [DATE_TAG]: value };
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
    const only = keys.length === 1 ? keys[0] : undefined;
    if (only === DATE_TAG || only === ESCAPE_TAG)
      return { [ESCAPE_TAG]: [only, (value as Record<string, unknown>)[only]] };
  }
  return value;
}

function untagReviver(_key: string, value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  const inner = (value as Record<string, unknown>)[keys[0] as string];
  if (keys[0] === DATE_TAG && typeof inner === 'string') return new Date(inner);
  if (keys[0] === ESCAPE_TAG && Array.isArray(inner) && inner.length === 2 && typeof inner[0] === 'string') {
    return { [inner[0]]: inner[1] };
  }
  return value;
}
