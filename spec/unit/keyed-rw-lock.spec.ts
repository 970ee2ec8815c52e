import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedRWLock, type Release } from '../../lib/lock/keyed-rw-lock.js';

const forever = { deadline: Number.POSITIVE_INFINITY };

describe('KeyedRWLock', () => {
  it('shares read locks and excludes a writer until every reader is gone', async () => {
    const lock = new KeyedRWLock();
    const r1 = (await lock.acquire('k', 'read', forever)) as Release;
    const r2 = (await lock.acquire('k', 'read', forever)) as Release;
    assert.deepEqual(lock.snapshot('k'), { readers: 2, writer: false, waiting: 0 });
    let written = false;
    const w = lock.acquire('k', 'write', forever).then((release) => {
      written = true;
      return release as Release;
    });
    r1();
    await Promise.resolve();
    assert.equal(written, false);
    r2();
    (await w)();
    assert.equal(written, true);
    assert.deepEqual(lock.snapshot('k'), { readers: 0, writer: false, waiting: 0 });
  });

  it('serves waiters in order, and a waiting writer holds back later readers', async () => {
    const lock = new KeyedRWLock();
    const order: string[] = [];
    const first = (await lock.acquire('k', 'read', forever)) as Release;
    const writer = lock.acquire('k', 'write', forever).then((release) => {
      order.push('writer');
      return release as Release;
    });
    const reader = lock.acquire('k', 'read', forever).then((release) => {
      order.push('late reader');
      return release as Release;
    });
    assert.equal(lock.snapshot('k').waiting, 2);
    first();
    (await writer)();
    (await reader)();
    assert.deepEqual(order, ['writer', 'late reader']);
  });

  it('gives up at the deadline and with wait: false, and keeps independent keys apart', async () => {
    const lock = new KeyedRWLock();
    const held = (await lock.acquire('a', 'write', forever)) as Release;
    assert.equal(await lock.acquire('a', 'write', { deadline: Date.now() + 20 }), undefined);
    assert.equal(await lock.acquire('a', 'read', { deadline: Date.now(), wait: false }), undefined);
    const other = await lock.acquire('b', 'write', { deadline: Date.now(), wait: false });
    assert.ok(other);
    other();
    held();
    held();
    assert.deepEqual(lock.snapshot('a'), { readers: 0, writer: false, waiting: 0 }, 'a second release is a no-op');
  });

  it('forgets idle keys: 10,000 keys locked once each leave a bounded map; held ones stay', async () => {
    const lock = new KeyedRWLock();
    const held = (await lock.acquire('held', 'write', forever)) as Release;
    for (let i = 0; i < 10_000; i++) (lock.take(`k${i}`, i % 2 ? 'read' : 'write', forever) as Release)();
    assert.ok(lock.size <= 2048, `${lock.size} keys remembered`);
    assert.deepEqual(lock.snapshot('held'), { readers: 0, writer: true, waiting: 0 });
    assert.equal(
      await lock.take('held', 'read', { deadline: Date.now(), wait: false }),
      undefined,
      'a held key is not forgotten',
    );
    held();
  });
});
