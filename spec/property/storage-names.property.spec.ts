/** Property: namespace names map to file names that stay in their directory and never collide. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { namespaceOf, storageName, storagePath } from '../../lib/namespace/storage-path.js';

const names = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 300 }).filter((name) => name.isWellFormed()),
  fc.constantFrom('.', '..', '', '/', '\\', '\u0000', 'A', 'a', 'con', '../../etc/passwd'),
  fc.stringMatching(/^[a-zA-Z0-9_./-]{0,140}$/),
);

describe('storage names (property)', () => {
  it('stay one safe path component inside the data directory', () => {
    fc.assert(
      fc.property(names, (name) => {
        const file = storagePath('/data/sessions', name, '.json');
        assert.equal(path.dirname(file), '/data/sessions');
        assert.match(path.basename(file), /^[a-z0-9_=+-]{1,129}\.json$/);
      }),
      { numRuns: 5000 },
    );
  });

  it('are distinct for distinct names, also with case folded, and read back where not hashed', () => {
    fc.assert(
      fc.property(names, names, (a, b) => {
        fc.pre(a !== b);
        assert.notEqual(storageName(a).toLowerCase(), storageName(b).toLowerCase());
        const back = namespaceOf(storageName(a));
        if (back !== undefined) assert.equal(back, a);
      }),
      { numRuns: 5000 },
    );
  });
});
