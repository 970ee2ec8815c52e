/** The memory backend: the conformance suite, and the expiry of namespaces written with a `ttl`. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { MemoryNamespaceManager, MemoryStore, Session } from '../../lib/index.js';
import { namespaceManagerConformance } from '../conformance/namespace-manager.suite.js';

namespaceManagerConformance('memory');

describe('memory backend with a ttl', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: Date.now() }));
  afterEach(() => mock.timers.reset());

  it('hides a namespace whose ttl has passed, and a write sets the ttl anew while reads do not', async () => {
    const store = new MemoryStore();
    const ns = new MemoryNamespaceManager('a', { store, ttl: 50 });
    await ns.withWriteLock(() => ns.set('n', 1));
    mock.timers.tick(40);
    await ns.withReadLock(() => assert.equal(ns.get('n'), 1));
    await ns.withWriteLock(() => ns.set('n', 2));
    mock.timers.tick(40);
    await ns.withReadLock(() => assert.equal(ns.get('n'), 2, 'rewritten 40 ms ago: not expired'));
    mock.timers.tick(10);
    await ns.withReadLock(() => assert.equal(ns.get('n'), undefined, 'rewritten 50 ms ago: expired'));
    assert.equal(store.namespaces.has('a'), false, 'the expired namespace is dropped when read');
    assert.equal(
      await ns.applyChanges(new Map([['n', 3]]), { requireKey: 'n' }),
      false,
      'an expired namespace is not stored',
    );
  });

  it('frees expired namespaces that nobody reads again, through the writes that follow', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 1000; i++) {
      const ns = new MemoryNamespaceManager(`gone-${i}`, { store, ttl: 1000 });
      await ns.withWriteLock(() => ns.set('n', i));
    }
    mock.timers.tick(1000);
    for (let i = 0; i < 1000; i++) {
      await new MemoryNamespaceManager(`live-${i}`, { store, ttl: 1000 }).applyChanges(new Map([['n', i]]));
    }
    assert.equal(store.namespaces.size, 1000, 'as many writes as expired namespaces free them all');
  });

  it('keeps namespaces without a ttl for good', async () => {
    const store = new MemoryStore();
    const kept = new MemoryNamespaceManager('kept', { store });
    await kept.withWriteLock(() => kept.set('n', 1));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 10; i++) {
        await new MemoryNamespaceManager(`short-${i}`, { store, ttl: 1 }).applyChanges(new Map([['n', i]]));
      }
      mock.timers.tick(1_000_000);
    }
    await kept.withReadLock(() => assert.equal(kept.get('n'), 1));
  });

  it('gets from a Session with a timeout a ttl beyond it (timeout + access resolution + 60 s)', async () => {
    class RecordingStore extends MemoryStore {
      readonly ttls: number[] = [];
      override set(namespace: string, entries: Map<string, string>, ttl?: number): void {
        if (ttl !== undefined) this.ttls.push(ttl);
        super.set(namespace, entries, ttl);
      }
    }
    const store = new RecordingStore();
    const session = await Session.open({ headers: {} }, { store, timeout: 600 });
    session.data.n = 1;
    await session.save();
    assert.deepEqual(store.ttls, [(600 + 60 + 60) * 1000]);
    const untimed = await Session.open({ headers: {} }, { store });
    untimed.data.n = 1;
    await untimed.save();
    assert.deepEqual(store.ttls, [(600 + 60 + 60) * 1000, Infinity], 'no timeout: kept for good');
  });
});
