import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { namespaceOf, storageName, storagePath } from '../../lib/namespace/storage-path.js';

describe('storage names', () => {
  const hostile = [
    '../../x',
    '/abs',
    'a\u0000b',
    'x'.repeat(10_000),
    'ünï ☃',
    '.',
    '..',
    '',
    'a/b',
    'a_b',
    'A',
    'a',
    'CON',
    ' ',
  ];

  it('are single, safe path components, short enough for any file system', () => {
    for (const name of hostile) {
      const stem = storageName(name);
      assert.match(stem, /^[a-z0-9_=+-]{1,129}$/, JSON.stringify(name.slice(0, 20)));
      assert.equal(path.basename(storagePath('/data', name, '.json')), `${stem}.json`);
      assert.equal(path.dirname(storagePath('/data', name, '.json')), '/data');
    }
  });

  it('never collide, also when case is folded', () => {
    const stems = hostile.map((name) => storageName(name).toLowerCase());
    assert.equal(new Set(stems).size, hostile.length);
  });

  it('read back as the namespace, except hashed long names', () => {
    for (const name of hostile) {
      const back = namespaceOf(storageName(name));
      assert.equal(back, name.length > 60 ? undefined : name);
    }
  });
});
