import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeRecord,
  newNamespaceFile,
  nextSlot,
  readNamespaceFile,
  readSettled,
  type SlotLayout,
} from '../../lib/namespace/file-format.js';
import { HELD_ELSEWHERE } from '../../lib/namespace/namespace-options.js';

const record = (visits: number, extra = '') =>
  encodeRecord('abc', new Map([['visits', String(visits)], ...(extra ? [['extra', extra] as [string, string]] : [])]));

/** The file after `versions` commits: the first as a new file, the others in place. */
function committed(versions: string[]): Buffer {
  const created = newNamespaceFile(versions[0] as string, 1);
  assert.deepEqual(readNamespaceFile(created.bytes)?.layout, created.layout, 'a new file reports its layout');
  let file = created.bytes;
  for (const version of versions.slice(1)) {
    const slot = nextSlot(readNamespaceFile(file)?.layout as SlotLayout, version);
    assert.ok(slot, 'fits in place');
    file = Buffer.from(file);
    slot.bytes.copy(file, slot.offset);
    assert.deepEqual(readNamespaceFile(file)?.layout, slot.layout, 'a slot write reports the layout after it');
  }
  return file;
}

describe('file format', () => {
  it('reads back the newest of the versions written in place, alternating slots', () => {
    const versions = [1, 2, 3, 4].map((n) => record(n));
    let previous: SlotLayout | undefined;
    for (let n = 1; n <= versions.length; n++) {
      const read = readNamespaceFile(committed(versions.slice(0, n)));
      assert.equal(read?.record, versions[n - 1]);
      assert.equal(read?.layout?.sequence, n);
      if (previous) assert.notEqual(read?.layout?.older, previous.older, 'the next commit goes to the other slot');
      previous = read?.layout;
    }
  });

  it('gives the previous version, never a mix, when a write into the older slot stops at any byte', () => {
    const before = committed([record(1), record(2)]);
    const next = record(3, 'x'.repeat(300));
    const slot = nextSlot(readNamespaceFile(before)?.layout as SlotLayout, next);
    assert.ok(slot);
    for (let written = 0; written <= slot.bytes.length; written++) {
      const torn = Buffer.from(before);
      slot.bytes.copy(torn, slot.offset, 0, written);
      const read = readNamespaceFile(torn);
      assert.equal(read?.record, written === slot.bytes.length ? next : record(2), `after ${written} bytes`);
      if (written === slot.bytes.length / 2) assert.equal(read?.torn, true, 'half written: torn');
    }
    assert.equal(readNamespaceFile(before)?.torn, false);
    assert.equal(readNamespaceFile(committed([record(1)]))?.torn, false, 'a slot never written is blank, not torn');
  });

  it('finds no intact version in damaged or foreign bytes', () => {
    const file = committed([record(1), record(2)]);
    const bothDamaged = Buffer.from(file);
    bothDamaged.fill('#', 40, 50);
    bothDamaged.fill('#', file.length / 2 + 40, file.length / 2 + 50);
    for (const bytes of [
      bothDamaged,
      Buffer.alloc(0),
      Buffer.from('garbage \u0000 not a session'),
      Buffer.alloc(4096, ' '),
      file.subarray(0, file.length - 1),
    ]) {
      assert.equal(readNamespaceFile(bytes), undefined);
    }
  });

  it('reads a version-1 file (one bare record) without slots', () => {
    const legacy = Buffer.from(record(7));
    assert.deepEqual(readNamespaceFile(legacy), { record: record(7), layout: undefined, torn: false });
  });

  it('sends a record that outgrows its slot, or shrinks far below it, to a new file', () => {
    const small = committed([record(1)]);
    const layout = readNamespaceFile(small)?.layout as SlotLayout;
    const big = record(2, 'x'.repeat(4 * layout.slotBytes));
    assert.equal(nextSlot(layout, big), undefined);
    const grown = newNamespaceFile(big, layout.sequence + 1).bytes;
    assert.equal(readNamespaceFile(grown)?.record, big);
    const grownLayout = readNamespaceFile(grown)?.layout as SlotLayout;
    assert.ok(nextSlot(grownLayout, record(3, 'x'.repeat(5 * layout.slotBytes))), 'room to grow in place');
    assert.equal(nextSlot(grownLayout, record(3)), undefined, 'a far smaller record moves to smaller slots');
  });

  describe('reading without the lock (readSettled)', () => {
    const versions = [1, 2, 3, 4].map((n) => record(n));
    /** `file` with the first half of the next commit written over its older slot. */
    const tornBy = (file: Buffer, version: string) => {
      const slot = nextSlot(readNamespaceFile(file)?.layout as SlotLayout, version);
      assert.ok(slot);
      const torn = Buffer.from(file);
      slot.bytes.copy(torn, slot.offset, 0, slot.bytes.length / 2);
      return torn;
    };
    /** A `read` that returns `files` one after the other (the last one again once they run out), and how often it ran. */
    const reads = (...files: (Buffer | undefined)[]) => {
      const counted = { count: 0, read: () => files[Math.min(counted.count++, files.length - 1)] };
      return counted;
    };
    const two = committed(versions.slice(0, 2));
    const four = committed(versions);
    /** A torn slot as a writer killed in the middle of commit 3 leaves it. */
    const leftover = tornBy(two, versions[2] as string);
    // Slot 0 read before commit 3 rewrote it (version 1), slot 1 while commit 4 was half written.
    const spanning = Buffer.concat([
      two.subarray(0, two.length / 2),
      tornBy(committed(versions.slice(0, 3)), versions[3] as string).subarray(two.length / 2),
    ]);

    it('reads again when a read spanned two commits, instead of returning the version from before both', () => {
      assert.equal(readNamespaceFile(spanning)?.record, versions[0], 'what one read of the slots finds');
      const source = reads(spanning, four);
      const file = readSettled(source.read, () => false);
      assert.equal(file === HELD_ELSEWHERE ? file : file?.record, versions[3]);
      assert.equal(source.count, 2);
    });

    it('waits as for a writer while the file changes under a lock held elsewhere, or keeps changing', () => {
      assert.equal(
        readSettled(reads(spanning, four).read, () => true),
        HELD_ELSEWHERE,
      );
      const changing = reads(spanning, leftover, spanning, leftover, spanning);
      assert.equal(
        readSettled(changing.read, () => false),
        HELD_ELSEWHERE,
        'still changing after 4 reads',
      );
      assert.equal(changing.count, 4);
    });

    it('takes a torn slot or a damaged file that two reads agree on as it is, once no live writer holds the lock', () => {
      const source = reads(leftover);
      const file = readSettled(source.read, () => false);
      assert.equal(file === HELD_ELSEWHERE ? file : file?.record, versions[1], 'a killed writer’s torn slot');
      assert.equal(source.count, 2);
      assert.equal(
        readSettled(reads(Buffer.alloc(4096, '#')).read, () => false),
        null,
        'no intact slot',
      );
    });

    it('reads an intact file once, and a missing one as undefined', () => {
      const source = reads(four);
      const file = readSettled(source.read, () => true);
      assert.equal(file === HELD_ELSEWHERE ? file : file?.record, versions[3]);
      assert.equal(source.count, 1);
      assert.equal(
        readSettled(reads(undefined).read, () => true),
        undefined,
      );
    });
  });
});
