/** Property: the default serializer either round trips a value exactly or refuses it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jsonSerializer, SerializationError } from '../../lib/index.js';

/** What JSON keeps of a value the serializer accepted: object properties that are undefined are dropped. */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value).filter(([, child]) => child !== undefined);
    return Object.fromEntries(entries.map(([key, child]) => [key, withoutUndefined(child)]));
  }
  return value;
}

describe('jsonSerializer (property)', () => {
  it('round trips exactly or throws SerializationError, for any value', () => {
    const anything = fc.anything({
      maxDepth: 3,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    });
    fc.assert(
      fc.property(anything, (value) => {
        let text: string;
        try {
          text = jsonSerializer.stringify(value);
        } catch (error) {
          assert.ok(error instanceof SerializationError, `unexpected ${(error as Error)?.name}`);
          return;
        }
        assert.deepStrictEqual(jsonSerializer.parse(text), withoutUndefined(value));
      }),
      { numRuns: 3000 },
    );
  });

  it('round trips values built from what it accepts, Dates and tag-like keys included', () => {
    const leaf = fc.oneof(
      fc.string(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Object.is(n, -0)),
      fc.boolean(),
      fc.constant(null),
      fc.date({ noInvalidDate: true }),
    );
    const key = fc.oneof(fc.string(), fc.constantFrom('$date', '$esc', '__proto__'));
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('node')),
        fc.dictionary(key, tie('node'), { noNullPrototype: true }),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (value) => {
        assert.deepStrictEqual(jsonSerializer.parse(jsonSerializer.stringify(value)), value);
      }),
      { numRuns: 2000 },
    );
  });

  it('decodes only values it can encode again, for any JSON text', () => {
    const tagged = fc.oneof(
      fc.json(),
      fc.jsonValue().map((value) => JSON.stringify({ $date: value })),
      fc.double().map((n) => `[${Object.is(n, -0) ? '-0' : n}]`),
      fc.constantFrom('1e400', '-0', '{"$date":"garbage"}', '{"$esc":["$date","x"]}'),
    );
    fc.assert(
      fc.property(tagged, (text) => {
        let value: unknown;
        try {
          value = jsonSerializer.parse(text);
        } catch {
          return;
        }
        assert.equal(jsonSerializer.stringify(value).length > 0, true);
      }),
      { numRuns: 2000 },
    );
  });
});
