import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonSerializer, SerializationError } from '../../lib/index.js';

const roundTrip = (value: unknown) => jsonSerializer.parse(jsonSerializer.stringify(value));

describe('jsonSerializer', () => {
  it('round trips JSON values and Dates, also nested and in arrays', () => {
    const value = {
      text: 'hé',
      n: -1.5,
      ok: true,
      none: null,
      list: [1, 'a', [new Date(0)]],
      when: new Date('2024-02-29T12:00:00.000Z'),
    };
    assert.deepEqual(roundTrip(value), value);
    assert.deepEqual(roundTrip(new Date(5)), new Date(5));
  });

  it('keeps user objects that look like its tags as they are', () => {
    const value = { a: { $date: '2020-01-01T00:00:00.000Z' }, b: { $esc: [1, 2] }, c: { $date: 'x', other: 1 } };
    assert.deepEqual(roundTrip(value), value);
    assert.deepEqual(roundTrip({ $date: 'not a tag' }), { $date: 'not a tag' });
  });

  it('drops undefined object properties, as JSON does', () => {
    assert.deepEqual(roundTrip({ a: 1, b: undefined }), { a: 1 });
  });

  it('rejects what JSON would change, naming where it is', () => {
    const cyclic: Record<string, unknown> = { inner: {} };
    (cyclic.inner as Record<string, unknown>).back = cyclic;
    class Cart {
      items = [];
    }
    class Items extends Array {}
    class Stamp extends Date {
      note = 'kept?';
    }
    const cases: [unknown, RegExp][] = [
      [{ f: () => 1 }, /f: a function/],
      [{ s: Symbol('x') }, /s: a symbol/],
      [{ big: 1n }, /big: a bigint/],
      [{ n: Number.NaN }, /n: NaN/],
      [{ n: Number.POSITIVE_INFINITY }, /Infinity/],
      [{ list: [1, undefined] }, /list\[1\]: undefined/],
      [{ when: new Date('nope') }, /invalid Date/],
      [{ when: new Stamp(0) }, /when: a Stamp would come back as a plain Date/],
      [{ when: Object.assign(new Date(0), { note: 1 }) }, /when: a Date's own properties would be dropped/],
      [cyclic, /inner\.back: a circular reference/],
      [{ m: new Map() }, /m: a Map/],
      [{ s: new Set() }, /s: a Set/],
      [{ cart: new Cart() }, /cart: a Cart/],
      [{ zero: -0 }, /zero: -0/],
      [{ bare: Object.create(null) }, /bare: an object without a prototype/],
      [{ sparse: Object.assign(new Array(3), { 0: 1, 2: 3 }) }, /sparse: an array with holes/],
      [{ tagged: Object.assign([1], { extra: true }) }, /extra properties/],
      [{ [Symbol('k')]: 1 }, /symbol keys/],
      [{ items: Items.from([1]) }, /items: a Items would come back as a plain Array/],
      [{ box: Object.defineProperty({}, 'hidden', { value: 1 }) }, /box\.hidden: a non-enumerable property/],
      [{ list: Object.defineProperty([1], 'extra', { value: 2 }) }, /list\.extra: a non-enumerable property/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => jsonSerializer.stringify(value),
        (e: unknown) => e instanceof SerializationError && message.test(e.message),
      );
    }
  });

  it('refuses to parse what stringify would refuse, so whatever it decodes can be stored again', () => {
    const deep = `${'['.repeat(1001)}${']'.repeat(1001)}`;
    for (const text of ['{"$date":"garbage"}', '-0', '[1, -0.0]', '1e400', '{"n":-1e999}', deep]) {
      assert.throws(() => jsonSerializer.parse(text), SyntaxError, text.slice(0, 20));
    }
    assert.deepEqual(jsonSerializer.parse('{"$date":"1970-01-01T00:00:00.000Z"}'), new Date(0));
    assert.equal(Array.isArray(jsonSerializer.parse(`${'['.repeat(1000)}${']'.repeat(1000)}`)), true);
    Object.defineProperty(Object.prototype, 'polluted', {
      enumerable: true,
      configurable: true,
      get: () => {
        throw new Error('an inherited getter is not the value’s own');
      },
    });
    try {
      assert.deepEqual(jsonSerializer.parse('{"a":{"b":1}}'), { a: { b: 1 } });
    } finally {
      delete (Object.prototype as Record<string, unknown>).polluted;
    }
    const refusals: [string, RegExp][] = [
      ['{"a":{"b":[1,-0]}}', /a\.b\[1\]: -0 would come back as 0/],
      ['{"a":[{"$date":"garbage"}]}', /a\[0\]: an invalid Date/],
      ['{"a":{"b":1e400}}', /a\.b: Infinity is not a finite number/],
    ];
    for (const [text, message] of refusals) {
      assert.throws(
        () => jsonSerializer.parse(text),
        (e: unknown) => e instanceof SyntaxError && message.test(e.message),
      );
    }
  });

  it('refuses objects and arrays nested more than 1000 deep, and round trips 1000', () => {
    const nest = (depth: number) => {
      let value: unknown = new Date(0);
      for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
      return value;
    };
    assert.deepEqual(roundTrip(nest(1000)), nest(1000));
    assert.throws(
      () => jsonSerializer.stringify(nest(1001)),
      (e: unknown) => e instanceof SerializationError && e.path === '' && /more than 1000 deep/.test(e.message),
    );
  });

  it('accepts repeated (non-circular) references, each stored as a copy', () => {
    const shared = { x: 1 };
    assert.deepEqual(roundTrip({ one: shared, two: shared }), { one: { x: 1 }, two: { x: 1 } });
  });
});
