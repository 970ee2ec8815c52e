/** Many locks taken at once let timers fire (the lease renewals of the locks already held). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EncodedChanges, type EncodedEntries, MemoryNamespaceManager, MemoryStore } from '../../lib/index.js';

/** Busy for `ms` milliseconds, as a synchronous LMDB open or file read is. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** A memory backend whose reads and commits are slow synchronous work. */
class SlowStorage extends MemoryNamespaceManager {
  protected override readCommitted(): Promise<EncodedEntries> {
    busy(5);
    return super.readCommitted();
  }
  protected override writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
    busy(5);
    return super.writeCommitted(changes, entries);
  }
}

/** Whether a timer set now fires before `work` ends. */
async function timerFiresDuring(work: () => Promise<unknown>): Promise<boolean> {
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
  }, 0);
  await work();
  const firedDuring = fired;
  clearTimeout(timer);
  return firedDuring;
}

describe('a burst of locks', () => {
  const store = new MemoryStore();
  const managers = Array.from({ length: 100 }, (_, i) => new SlowStorage(`ns${i}`, { store }));

  it('lets timers fire while 100 write locks are taken at once, each opening a slow view', async () => {
    assert.equal(await timerFiresDuring(() => Promise.all(managers.map((ns) => ns.acquireWriteLock()))), true);
  });

  it('lets timers fire while they commit and release at once', async () => {
    for (const [i, ns] of managers.entries()) ns.set('n', i);
    assert.equal(await timerFiresDuring(() => Promise.all(managers.map((ns) => ns.releaseWriteLock()))), true);
  });

  it('lets timers fire while 100 read locks are taken at once', async () => {
    assert.equal(await timerFiresDuring(() => Promise.all(managers.map((ns) => ns.acquireReadLock()))), true);
    await Promise.all(managers.map((ns) => ns.releaseReadLock()));
  });
});
