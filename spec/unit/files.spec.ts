import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { dir } from 'tmp-promise';
import { readWholeFile } from '../../lib/files.js';

describe('readWholeFile', async () => {
  const scratch = await dir({ unsafeCleanup: true });
  after(() => scratch.cleanup());

  it('reads small and large files whole, each result its own copy', () => {
    const small = path.join(scratch.path, 'small');
    const large = path.join(scratch.path, 'large');
    fs.writeFileSync(small, 'x'.repeat(100));
    const bytes = Buffer.alloc(100_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
    fs.writeFileSync(large, bytes);

    const first = readWholeFile(small);
    assert.deepEqual(readWholeFile(large), bytes);
    assert.equal(readWholeFile(small)?.toString(), 'x'.repeat(100), 'a small file after a large one');
    assert.equal(first?.toString(), 'x'.repeat(100), 'a later read does not change an earlier result');
    fs.writeFileSync(small, '');
    assert.deepEqual(readWholeFile(small), Buffer.alloc(0));
  });

  it('gives undefined for a missing file and throws like fs for anything else', () => {
    assert.equal(readWholeFile(path.join(scratch.path, 'missing')), undefined);
    assert.throws(() => readWholeFile(scratch.path), { code: 'EISDIR' });
  });
});
