/**
 * The NamespaceManager conformance suite: every backend runs it unchanged.
 * Multi-process parts run only where namespaces are shared across processes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dir } from 'tmp-promise';
import {
  type EncodedChanges,
  type EncodedEntries,
  LockCompromisedError,
  LockStateError,
  LockTimeoutError,
  type MemoryNamespaceManager,
  type NamespaceManager,
  SerializationError,
  SessionCorruptError,
  SessionlockError,
  StorageError,
  UndecodableValueError,
} from '../../lib/index.js';
import { type BackendFixture, type BackendType, createFixture, TEST_LOCK_STALE } from '../fixtures/backends.js';
import { isWholeBlob } from '../fixtures/blob.js';
import { spawnWorker } from '../fixtures/processes.js';
import { stateAfter } from '../fixtures/promise-state.js';

export function namespaceManagerConformance(type: BackendType): void {
  describe(`NamespaceManager conformance: ${type}`, () => {
    let backend: BackendFixture;
    const fresh = () => `ns-${randomUUID()}`;

    before(async () => {
      backend = await createFixture(type);
    });
    after(() => backend.cleanup());

    describe('the view protocol', () => {
      it('stores and reads back values under the write lock, and reads them under a read lock', async () => {
        const name = fresh();
        const writer = backend.create(name);
        await writer.withWriteLock(() => {
          writer.set('a', 1);
          writer.set('when', new Date('2020-01-02T03:04:05.678Z'));
          writer.set('nested', { list: [1, 'two', { three: true }], none: null });
        });
        const reader = backend.create(name);
        await reader.withReadLock(() => {
          assert.equal(reader.get('a'), 1);
          assert.deepEqual(reader.get('when'), new Date('2020-01-02T03:04:05.678Z'));
          assert.deepEqual(reader.get('nested'), { list: [1, 'two', { three: true }], none: null });
          assert.equal(reader.get('missing'), undefined);
          assert.equal(reader.has('a'), true);
          assert.equal(reader.has('missing'), false);
          assert.deepEqual(reader.keys().sort(), ['a', 'nested', 'when']);
        });
      });

      it('deletes keys, and remove() deletes the whole namespace', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => {
          ns.set('a', 1);
          ns.set('b', 2);
        });
        await ns.withWriteLock(() => {
          assert.equal(ns.delete('a'), true);
          assert.equal(ns.delete('a'), false);
        });
        const other = backend.create(name);
        await other.withReadLock(() => assert.deepEqual(other.keys(), ['b']));
        await ns.remove();
        await other.withReadLock(() => assert.deepEqual(other.keys(), []));
        await ns.withWriteLock(() => ns.set('again', true));
        await other.withReadLock(() => assert.equal(other.get('again'), true));
      });

      it('removeIf() decides under the write lock, after a holder released it, and removes only when told to', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.withWriteLock(() => holder.set('a', 1));
        const sweeper = backend.create(name);
        assert.equal(await sweeper.removeIf(() => false), false);
        await sweeper.withReadLock(() => assert.equal(sweeper.get('a'), 1));

        await holder.acquireWriteLock();
        let holding = true;
        const decisions: boolean[] = [];
        const removing = sweeper.removeIf(() => {
          decisions.push(holding);
          return true;
        });
        assert.equal(await stateAfter(removing, 100), 'pending', 'removeIf waits for the holder');
        holder.set('b', 2);
        holding = false;
        await holder.releaseWriteLock();
        assert.equal(await removing, true);
        assert.deepEqual(decisions, [false], 'the condition ran once, after the holder released the lock');
        const reader = backend.create(name);
        await reader.withReadLock(() => assert.deepEqual(reader.keys(), []));
      });

      it('writes again after remove() within one hold of the write lock', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => ns.set('a', 1));
        await ns.withWriteLock(async () => {
          assert.equal(ns.get('a'), 1);
          await ns.remove();
          ns.set('b', 2);
        });
        const other = backend.create(name);
        await other.withReadLock(() => assert.deepEqual(other.keys(), ['b']));
      });

      it('nests the same mode on one instance; every release commits, the outermost also unlocks', async () => {
        const name = fresh();
        const ns = backend.create(name);
        assert.equal(await ns.acquireWriteLock(), true);
        assert.equal(await ns.acquireWriteLock(), true);
        ns.set('inner', 1);
        await ns.releaseWriteLock();
        assert.equal(ns.lockState, 'write');
        const other = backend.create(name);
        assert.equal(await other.acquireWriteLock({ wait: false }), false, 'still locked after the inner release');
        await ns.acquireReadLock();
        await ns.releaseReadLock();
        await ns.releaseWriteLock();
        assert.equal(ns.lockState, 'none');
        await other.withReadLock(() => assert.equal(other.get('inner'), 1));
      });

      it('unlocks after with*Lock also when its function leaves a nested lock held, thrown or not', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(async () => {
          ns.set('a', 1);
          await ns.acquireWriteLock();
          ns.set('b', 2);
        });
        assert.equal(ns.lockState, 'none');
        await assert.rejects(
          ns.withWriteLock(async () => {
            ns.set('c', 3);
            await ns.acquireWriteLock();
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(ns.lockState, 'none');
        await ns.withReadLock(async () => {
          await ns.acquireReadLock();
        });
        assert.equal(ns.lockState, 'none');
        const other = backend.create(name);
        assert.equal(await other.acquireWriteLock({ wait: false }), true, 'nothing is left locked');
        assert.deepEqual([other.get('a'), other.get('b'), other.has('c')], [1, 2, false]);
        await other.releaseWriteLock();
      });

      it('closes the view on release: reading it then throws LockStateError instead of showing old data', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => ns.set('k', 1));
        await ns.acquireReadLock();
        assert.equal(ns.get('k'), 1);
        await ns.releaseReadLock();
        assert.throws(() => ns.get('k'), LockStateError);
        assert.throws(() => ns.keys(), LockStateError);
      });

      it('rolls back what withWriteLock changed when its function throws, and unlocks', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => ns.set('kept', 1));
        await assert.rejects(
          ns.withWriteLock(() => {
            ns.set('kept', 2);
            ns.set('added', 3);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.equal(ns.lockState, 'none');
        const other = backend.create(name);
        await other.withReadLock(() => {
          assert.equal(other.get('kept'), 1);
          assert.equal(other.has('added'), false);
        });
      });

      it('keeps what a nested release committed when the withWriteLock around it throws', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.acquireWriteLock();
        ns.set('a', 1);
        await assert.rejects(
          ns.withWriteLock(async () => {
            await ns.withWriteLock(() => ns.set('b', 2));
            ns.set('c', 3);
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.deepEqual(ns.keys().sort(), ['a', 'b'], 'the view shows what is committed');
        await ns.releaseWriteLock();
        const other = backend.create(name);
        await other.withReadLock(() => {
          assert.deepEqual(
            other
              .keys()
              .sort()
              .map((key) => [key, other.get(key)]),
            [
              ['a', 1],
              ['b', 2],
            ],
          );
        });
      });

      it('rejects a value it cannot store at set(), naming the key, and commits nothing of it', async () => {
        const name = fresh();
        const ns = backend.create(name);
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await ns.withWriteLock(() => {
          assert.throws(
            () => ns.set('fn', () => 1),
            (e: unknown) => e instanceof SerializationError && /fn/.test(e.message),
          );
          assert.throws(() => ns.set('sym', Symbol('x')), SerializationError);
          assert.throws(() => ns.set('cycle', cyclic), SerializationError);
          assert.throws(() => ns.set('map', new Map()), SerializationError);
          ns.set('ok', 1);
        });
        const other = backend.create(name);
        await other.withReadLock(() => assert.deepEqual(other.keys(), ['ok']));
      });
    });

    describe('applyChanges', () => {
      it('applies changes to the latest state in one step, and key by key from many tasks', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => ns.set('kept', 0));
        await Promise.all(
          Array.from({ length: 30 }, (_, i) => backend.create(name).applyChanges(new Map([[`k${i}`, i]]))),
        );
        assert.equal(
          await ns.applyChanges(
            new Map<string, unknown>([
              ['kept', undefined],
              ['when', new Date(1)],
            ]),
          ),
          true,
        );
        const stored = await ns.withReadLock(() => Object.fromEntries(ns.keys().map((k) => [k, ns.get(k)])));
        assert.deepEqual(stored, {
          ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i])),
          when: new Date(1),
        });
      });

      it('writes nothing and resolves false when the required key is not stored', async () => {
        const name = fresh();
        const ns = backend.create(name);
        assert.equal(await ns.applyChanges(new Map([['a', 1]]), { requireKey: 'marker' }), false);
        assert.deepEqual(await ns.withReadLock(() => ns.keys()), []);
        await ns.withWriteLock(() => ns.set('marker', true));
        assert.equal(await ns.applyChanges(new Map([['a', 1]]), { requireKey: 'marker' }), true);
        assert.equal(await ns.withReadLock(() => ns.get('a')), 1);
      });

      it('waits while a writer holds the lock, then applies on top of its commit', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.acquireWriteLock();
        holder.set('a', 'from the holder');
        const applying = backend.create(name).applyChanges(new Map([['b', 'applied']]));
        assert.equal(await stateAfter(applying, 100), 'pending');
        await holder.releaseWriteLock();
        assert.equal(await applying, true);
        const reader = backend.create(name);
        assert.deepEqual(await reader.withReadLock(() => [reader.get('a'), reader.get('b')]), [
          'from the holder',
          'applied',
        ]);
      });

      it('with wait: false resolves false at once while a writer in this process holds the lock', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.acquireWriteLock();
        holder.set('a', 'from the holder');
        const other = backend.create(name);
        assert.equal(await other.applyChanges(new Map([['b', 'skipped']]), { wait: false }), false);
        await holder.releaseWriteLock();
        assert.equal(await other.applyChanges(new Map([['b', 'applied']]), { wait: false }), true);
        assert.deepEqual(await other.withReadLock(() => [other.get('a'), other.get('b')]), [
          'from the holder',
          'applied',
        ]);
      });

      it('with wait: false still applies while only readers in this process hold the lock', async () => {
        const name = fresh();
        const reader = backend.create(name);
        await reader.acquireReadLock();
        const applying = backend.create(name).applyChanges(new Map([['b', 'applied']]), { wait: false });
        await reader.releaseReadLock();
        assert.equal(await applying, true);
        const check = backend.create(name);
        assert.equal(await check.withReadLock(() => check.get('b')), 'applied');
      });

      it('keeps its place among waiting writers in this process', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.acquireWriteLock();
        const order: string[] = [];
        const applying = backend
          .create(name)
          .applyChanges(new Map([['b', 'applied']]))
          .then(() => order.push('applyChanges'));
        const later = backend.create(name);
        const writing = later.withWriteLock(() => order.push('later writer'));
        await holder.releaseWriteLock();
        await Promise.all([applying, writing]);
        assert.deepEqual(order, ['applyChanges', 'later writer']);
      });

      it('with wait: false resolves false at once while a writer in another process holds the lock', {
        skip: !crossProcess(type),
      }, async () => {
        const name = fresh();
        const holder = spawnWorker({ type, options: backend.options, namespace: name, task: { kind: 'hold' } });
        await holder.next('locked');
        const ns = backend.create(name);
        try {
          assert.equal(await ns.applyChanges(new Map([['b', 'skipped']]), { wait: false }), false);
        } finally {
          holder.kill();
        }
        assert.equal(await ns.withReadLock(() => ns.get('b')), undefined, 'nothing was written');
      });

      it('acquireReadLock({ wait: false }) resolves false at once while a writer holds the lock, in this process or another', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.withWriteLock(() => holder.set('a', 1));
        await holder.acquireWriteLock();
        const reader = backend.create(name);
        assert.equal(await reader.acquireReadLock({ wait: false }), false);
        assert.equal(reader.lockState, 'none');
        await holder.releaseWriteLock();
        assert.equal(await reader.acquireReadLock({ wait: false }), true);
        assert.equal(reader.get('a'), 1);
        await reader.releaseReadLock();
        if (!crossProcess(type)) return;
        const worker = spawnWorker({ type, options: backend.options, namespace: name, task: { kind: 'hold' } });
        await worker.next('locked');
        try {
          assert.equal(await reader.acquireReadLock({ wait: false }), false);
          assert.equal(reader.lockState, 'none');
        } finally {
          worker.kill();
        }
      });

      it('refuses while the instance holds a lock, and rejects values it cannot store before writing', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.acquireReadLock();
        await assert.rejects(ns.applyChanges(new Map([['a', 1]])), LockStateError);
        await ns.releaseReadLock();
        await assert.rejects(
          ns.applyChanges(
            new Map<string, unknown>([
              ['a', 1],
              ['f', () => 1],
            ]),
          ),
          SerializationError,
        );
        assert.deepEqual(await ns.withReadLock(() => ns.keys()), []);
      });
    });

    describe('exclusion', () => {
      it('is exact for 50 concurrent async tasks, each with its own manager instance', async () => {
        const name = fresh();
        await Promise.all(
          Array.from({ length: 50 }, async () => {
            const ns = backend.create(name);
            for (let i = 0; i < 4; i++) {
              await ns.withWriteLock(() => ns.set('n', ((ns.get('n') as number | undefined) ?? 0) + 1));
            }
          }),
        );
        const reader = backend.create(name);
        await reader.withReadLock(() => assert.equal(reader.get('n'), 200));
      });

      it('is exact for 4 processes × 250 increments under acquireWriteLock/releaseWriteLock', {
        skip: !crossProcess(type),
      }, async () => {
        const name = fresh();
        const workers = Array.from({ length: 4 }, () =>
          spawnWorker({
            type,
            options: backend.options,
            namespace: name,
            task: { kind: 'increment', count: 250, key: 'n' },
          }),
        );
        await Promise.all(workers.map((worker) => worker.next('done')));
        const reader = backend.create(name);
        await reader.withReadLock(() => assert.equal(reader.get('n'), 1000));
      });

      it('keeps every applyChanges of 4 processes × 150, each writing its own keys without the lock', {
        skip: !crossProcess(type),
      }, async () => {
        const name = fresh();
        const workers = Array.from({ length: 4 }, (_, w) =>
          spawnWorker({
            type,
            options: backend.options,
            namespace: name,
            task: { kind: 'apply', count: 150, prefix: `w${w}-` },
          }),
        );
        await Promise.all(workers.map((worker) => worker.next('done')));
        const reader = backend.create(name);
        const keys = await reader.withReadLock(() => reader.keys());
        assert.equal(keys.length, 600);
        for (let w = 0; w < 4; w++) assert.ok(keys.includes(`w${w}-149`), `worker ${w}'s last change is there`);
      });
    });

    describe('readers', () => {
      it('waits while a writer holds the lock, then sees its commit', async () => {
        const name = fresh();
        const writer = backend.create(name);
        await writer.withWriteLock(() => writer.set('x', 'before'));
        await writer.acquireWriteLock();
        writer.set('x', 'after');
        const reader = backend.create(name);
        const read = reader.withReadLock(() => reader.get('x'));
        assert.equal(await stateAfter(read, 100), 'pending');
        await writer.releaseWriteLock();
        assert.equal(await read, 'after');
      });

      it('does not make concurrent readers wait for each other', async () => {
        const name = fresh();
        const first = backend.create(name);
        const second = backend.create(name);
        await first.acquireReadLock();
        await second.acquireReadLock();
        assert.equal(first.lockState, 'read');
        assert.equal(second.lockState, 'read');
        await Promise.all([first.releaseReadLock(), second.releaseReadLock()]);
      });

      it('waits for a writer in another process, then sees its commit', { skip: !crossProcess(type) }, async () => {
        const name = fresh();
        const holder = spawnWorker({ type, options: backend.options, namespace: name, task: { kind: 'hold' } });
        await holder.next('locked');
        const reader = backend.create(name, { lockTimeout: 20_000 });
        const read = reader.withReadLock(() => reader.get('holder'));
        assert.equal(await stateAfter(read, 200), 'pending', 'a reader must wait for the writer');
        holder.kill();
        assert.equal(await read, undefined, 'the dead writer committed nothing');
      });
    });

    describe('atomicity', { skip: !crossProcess(type) }, () => {
      it('never shows a torn or empty 100 KB value to a reader process while another process rewrites it', async () => {
        const name = fresh();
        const writer = spawnWorker({
          type,
          options: backend.options,
          namespace: name,
          task: { kind: 'rewrite', size: 100_000 },
        });
        await writer.next('written');
        const reader = spawnWorker({ type, options: backend.options, namespace: name, task: { kind: 'poll-read' } });
        let rounds = 0;
        while (rounds < 300) rounds = (await writer.next<{ written: number }>('written')).written;
        reader.child.send('stop');
        const { reads, torn } = await reader.next<{ reads: number; torn: number }>('reads');
        writer.kill();
        assert.equal(torn, 0);
        assert.ok(reads > 0);
      });

      it('keeps the previous value readable when a writer is killed with SIGKILL in the middle of commits', async () => {
        const name = fresh();
        for (let attempt = 0; attempt < 3; attempt++) {
          const writer = spawnWorker({
            type,
            options: backend.options,
            namespace: name,
            task: { kind: 'rewrite', size: 100_000 },
          });
          await writer.next('written');
          for (let i = 0; i < 5 + attempt * 7; i++) await writer.next('written');
          writer.kill('SIGKILL');
          await writer.exited;
          const reader = backend.create(name, { lockTimeout: 20_000 });
          const value = await reader.withReadLock(() => reader.get('blob'));
          assert.ok(isWholeBlob(value), `attempt ${attempt}: the stored value is whole`);
        }
      });
    });

    describe('stale and lost locks', { skip: !crossProcess(type) }, () => {
      it('gives the lock of a holder killed with SIGKILL to another process after lockStale', async () => {
        const name = fresh();
        const holder = spawnWorker({ type, options: backend.options, namespace: name, task: { kind: 'hold' } });
        await holder.next('locked');
        holder.kill('SIGKILL');
        await holder.exited;
        const next = backend.create(name);
        assert.equal(await next.acquireWriteLock({ timeout: TEST_LOCK_STALE * 3 }), true);
        next.set('after', true);
        await next.releaseWriteLock();
      });

      it('tells a holder whose event loop was blocked past lockStale with LockCompromisedError, and keeps the new holder’s data', async () => {
        const name = fresh();
        const marker = path.join(backend.dataDir as string, `${name}.marker`);
        const holder = backend.create(name);
        await holder.acquireWriteLock();
        holder.set('value', 'from the blocked holder');
        const rival = spawnWorker({
          type,
          options: backend.options,
          namespace: name,
          task: { kind: 'write-after-wait', value: 'from the rival', marker },
        });
        await rival.next('waiting');
        const blockUntil = Date.now() + 30_000;
        while (!fs.existsSync(marker) && Date.now() < blockUntil) {
          // Block the event loop, as a runaway computation would, until the rival has committed.
        }
        await assert.rejects(holder.releaseWriteLock(), LockCompromisedError);
        assert.equal(holder.lockState, 'none');
        const reader = backend.create(name);
        assert.equal(await reader.withReadLock(() => reader.get('value')), 'from the rival');
        await rival.exited;
      });
      it('resolves a release whose commit landed before the lease ran out, and logs the lock lost after it', async () => {
        const name = fresh();
        // The backend under test, typed as a concrete backend so its storage primitives can be overridden.
        const Backend = backend.create(name).constructor as typeof MemoryNamespaceManager;
        class StallsAfterCommit extends Backend {
          protected override async writeCommitted(changes: EncodedChanges, entries: EncodedEntries): Promise<void> {
            await super.writeCommitted(changes, entries);
            // Past the lease, plus the second by which proper-lockfile may date a process's first lock file ahead.
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TEST_LOCK_STALE + 1500);
          }
        }
        const lines: string[] = [];
        const holder = new StallsAfterCommit(name, { ...backend.options, log: (line: string) => lines.push(line) });
        await holder.acquireWriteLock();
        holder.set('value', 'committed');
        await holder.releaseWriteLock();
        assert.equal(holder.lockState, 'none');
        assert.ok(lines.some((line) => line.includes('after its commit landed') && line.includes('lost')));
        const reader = backend.create(name);
        assert.equal(await reader.withReadLock(() => reader.get('value')), 'committed');
        const next = backend.create(name);
        assert.equal(await next.acquireWriteLock({ wait: false }), true);
        await next.releaseWriteLock();
      });
    });

    describe('unlock failures', () => {
      it('resolves a release whose commit landed when unlocking then fails, and logs the failure', async () => {
        const name = fresh();
        // The backend under test, typed as a concrete backend so its storage primitives can be overridden.
        const Backend = backend.create(name).constructor as typeof MemoryNamespaceManager;
        class UnlockFails extends Backend {
          protected override async unlockStorage(): Promise<void> {
            await super.unlockStorage();
            throw new StorageError('test://storage', 'remove the lock', { cause: new Error('connection reset') });
          }
        }
        const lines: string[] = [];
        const holder = new UnlockFails(name, { ...backend.options, log: (line: string) => lines.push(line) });
        await holder.withWriteLock(() => holder.set('value', 'committed'));
        assert.ok(lines.some((line) => line.includes('after its commit landed') && line.includes('connection reset')));
        await holder.acquireWriteLock();
        await assert.rejects(holder.releaseWriteLock(), StorageError, 'with nothing committed, the failure is thrown');
        const reader = backend.create(name);
        assert.equal(await reader.withReadLock(() => reader.get('value')), 'committed');
      });
    });

    describe('misuse', () => {
      it('throws LockTimeoutError when the wait exceeds its timeout, and returns false with wait: false', async () => {
        const name = fresh();
        const holder = backend.create(name);
        await holder.acquireWriteLock();
        const other = backend.create(name);
        await assert.rejects(other.acquireWriteLock({ timeout: 50 }), (e: unknown) => {
          assert.ok(e instanceof LockTimeoutError && e instanceof SessionlockError);
          assert.equal(e.code, 'ERR_LOCK_TIMEOUT');
          return true;
        });
        assert.equal(await other.acquireWriteLock({ wait: false }), false);
        await holder.releaseWriteLock();
        assert.equal(await other.acquireWriteLock({ wait: false }), true);
        await other.releaseWriteLock();
      });

      it('refuses malformed lock and apply options with a TypeError naming them, taking no lock', async () => {
        const ns = backend.create(fresh());
        const bad: [() => Promise<unknown>, RegExp][] = [
          [
            () => ns.acquireWriteLock({ wait: 'no' as unknown as boolean }),
            /wait must be true or false, received "no"/,
          ],
          [() => ns.acquireWriteLock(null as never), /options must be an object, received null/],
          [
            () => ns.applyChanges({ n: 1 } as unknown as Map<string, unknown>),
            /changes must be a Map, received an object/,
          ],
          [() => ns.applyChanges(new Map([['n', 1]]), { wait: 0 as unknown as boolean }), /wait must be true or false/],
        ];
        for (const [call, message] of bad) {
          await assert.rejects(
            async () => call(),
            (e: unknown) => e instanceof TypeError && message.test(e.message),
          );
        }
        assert.equal(ns.lockState, 'none');
      });

      it('throws LockStateError for releasing what is not held and for writing without the write lock', async () => {
        const ns = backend.create(fresh());
        const isStateError = (e: unknown) =>
          e instanceof LockStateError && e instanceof SessionlockError && e.code === 'ERR_LOCK_STATE';
        await assert.rejects(ns.releaseWriteLock(), isStateError);
        await assert.rejects(ns.releaseReadLock(), isStateError);
        assert.throws(() => ns.get('a'), isStateError);
        await ns.acquireReadLock();
        assert.throws(() => ns.set('a', 1), isStateError);
        assert.throws(() => ns.delete('a'), isStateError);
        await assert.rejects(ns.acquireWriteLock(), isStateError);
        await assert.rejects(ns.releaseWriteLock(), isStateError);
        await ns.releaseReadLock();
        assert.throws(() => ns.set('a', 1), isStateError);
      });
    });

    describe('hostile namespace names', () => {
      const names = [
        '../../x',
        '/abs',
        'a\u0000b',
        'x'.repeat(10_000),
        'ünïcødé ☃',
        '.',
        '..',
        '',
        'a/b',
        'a_b',
        'A',
        'a',
      ];

      it('keeps every name apart and never touches anything outside the data directory', async () => {
        for (const [index, name] of names.entries()) {
          const ns = backend.create(name);
          await ns.withWriteLock(() => ns.set('index', index));
        }
        for (const [index, name] of names.entries()) {
          const ns = backend.create(name);
          assert.equal(
            await ns.withReadLock(() => ns.get('index')),
            index,
            `namespace ${JSON.stringify(name.slice(0, 20))}`,
          );
        }
        if (backend.sandbox && backend.dataDir) {
          const outside = listTree(backend.sandbox).filter((file) => !file.startsWith(backend.dataDir as string));
          assert.deepEqual(outside, []);
        }
      });
    });

    it('creates its files readable and writable by their owner only', {
      skip: type !== 'file' && type !== 'dbm',
    }, async () => {
      const ns = backend.create(fresh());
      await ns.withWriteLock(() => ns.set('secret', 1));
      const file = (ns as unknown as { file: string }).file;
      const created = fs.readdirSync(path.dirname(file)).filter((name) => name.startsWith(path.basename(file)));
      assert.ok(created.length > 0);
      for (const name of created) {
        assert.equal(fs.statSync(path.join(path.dirname(file), name)).mode & 0o777, 0o600, name);
      }
    });

    describe('a symbolic link planted at a namespace path', { skip: type !== 'file' && type !== 'dbm' }, () => {
      it('is not followed, even to an intact namespace file: StorageError, and its target is left alone', async () => {
        const outside = await dir({ unsafeCleanup: true });
        try {
          const fileOf = (ns: NamespaceManager) => (ns as unknown as { file: string }).file;
          const target = backend.create('linked', { dataDir: outside.path });
          await target.withWriteLock(() => target.set('kept', 1));
          const before = fs.readFileSync(fileOf(target));
          const link = backend.create('linked');
          fs.symlinkSync(fileOf(target), fileOf(link));

          const refused = (error: unknown) =>
            error instanceof StorageError &&
            error.message === `Cannot read ${fileOf(link)}: it is a symbolic link, not a regular file`;
          await assert.rejects(
            link.withReadLock(() => link.get('kept')),
            refused,
          );
          await assert.rejects(
            link.withWriteLock(() => link.set('kept', 2)),
            refused,
          );
          assert.equal(link.lockState, 'none');
          assert.ok(fs.lstatSync(fileOf(link)).isSymbolicLink());
          assert.deepEqual(fs.readFileSync(fileOf(target)), before, 'nothing was written through the link');
        } finally {
          await outside.cleanup();
        }
      });
    });

    describe('encryption at rest', () => {
      const key1 = 'first key, long enough';
      const key2 = 'second key, long enough';
      /** Reads and writes the stored strings as they are, without decrypting. */
      const raw = (name: string) => backend.create(name, { serializer: { stringify: String, parse: (text) => text } });

      it('stores no plain text, and reads back with the key', async () => {
        const name = fresh();
        const ns = backend.create(name, { encryptKey: key1 });
        await ns.withWriteLock(() => ns.set('card', { number: '4111-1111', when: new Date(0) }));
        const stored = raw(name);
        const sealed = (await stored.withReadLock(() => stored.get('card'))) as string;
        assert.match(sealed, /^e1\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]+$/);
        assert.ok(!sealed.includes('4111'));
        assert.deepEqual(await ns.withReadLock(() => ns.get('card')), { number: '4111-1111', when: new Date(0) });
      });

      it('treats a wrong key, a tampered value and a value moved to another key as corrupt', async () => {
        const name = fresh();
        const ns = backend.create(name, { encryptKey: key1 });
        await ns.withWriteLock(() => {
          ns.set('a', 'secret a');
          ns.set('b', 'secret b');
        });
        const isCorrupt = (e: unknown) =>
          e instanceof UndecodableValueError && !e.keyMismatch && /cannot be decrypted/.test(e.message);
        await assert.rejects(
          backend.create(name, { encryptKey: key2 }).acquireReadLock(),
          (e: unknown) =>
            e instanceof UndecodableValueError && e.unknownKey && /not among the encryptKeys given/.test(e.message),
          'read with another key',
        );
        await assert.rejects(
          backend.create(name).acquireReadLock(),
          (e: unknown) =>
            e instanceof UndecodableValueError && e.unknownKey && /is encrypted: give the encryptKey/.test(e.message),
          'read without a key',
        );
        const stored = raw(name);
        const sealedA = (await stored.withReadLock(() => stored.get('a'))) as string;
        await stored.withWriteLock(() => stored.set('b', sealedA));
        await assert.rejects(ns.acquireReadLock(), isCorrupt, 'a value moved to another key');
        const flipped = `${sealedA.slice(0, -2)}${sealedA.at(-2) === 'A' ? 'B' : 'A'}${sealedA.slice(-1)}`;
        assert.notEqual(flipped, sealedA);
        await stored.withWriteLock(() => {
          stored.set('a', flipped);
          stored.delete('b');
        });
        await assert.rejects(ns.acquireReadLock(), isCorrupt, 'a tampered value');
      });

      it('takes a plain value where a key is given for a configuration error, not for damage', async () => {
        const name = fresh();
        const plain = backend.create(name);
        await plain.withWriteLock(() => plain.set('a', 'written before encryption was turned on'));
        await assert.rejects(
          backend.create(name, { encryptKey: key1 }).acquireReadLock(),
          (e: unknown) =>
            e instanceof UndecodableValueError && e.keyMismatch && !e.unknownKey && /is not encrypted/.test(e.message),
        );
      });

      it('rotates keys: encrypts with the first, decrypts with any', async () => {
        const name = fresh();
        const old = backend.create(name, { encryptKey: key1 });
        await old.withWriteLock(() => old.set('a', 1));
        const rotated = backend.create(name, { encryptKey: [key2, key1] });
        await rotated.withWriteLock(() => {
          assert.equal(rotated.get('a'), 1);
          rotated.set('b', 2);
        });
        await assert.rejects(old.acquireReadLock(), SessionCorruptError, 'the old key alone cannot read the new value');
        const both = backend.create(name, { encryptKey: [key2, key1] });
        assert.deepEqual(await both.withReadLock(() => [both.get('a'), both.get('b')]), [1, 2]);
        await assert.rejects(
          backend.create(name, { encryptKey: key2 }).acquireReadLock(),
          SessionCorruptError,
          'values written before the rotation need the old key until they are rewritten',
        );
      });
      it('encrypts values stored with an older key again with reseal(), under the write lock', async () => {
        const name = fresh();
        const old = backend.create(name, { encryptKey: key1 });
        await old.withWriteLock(() => {
          old.set('a', 1);
          old.set('b', 2);
        });
        const rotated = backend.create(name, { encryptKey: [key2, key1] });
        await rotated.withReadLock(() => {
          assert.equal(rotated.sealedWithOlderKey, true);
          assert.throws(() => rotated.reseal(), LockStateError, 'reseal() needs the write lock');
        });
        await rotated.withWriteLock(() => {
          rotated.set('b', 3);
          assert.equal(rotated.reseal(), 1, 'b is written anew anyway');
        });
        const newOnly = backend.create(name, { encryptKey: key2 });
        await newOnly.withReadLock(() => {
          assert.deepEqual([newOnly.get('a'), newOnly.get('b')], [1, 3]);
          assert.equal(newOnly.sealedWithOlderKey, false);
        });
      });
    });

    describe('corrupt data and storage errors', () => {
      it('rejects the read of garbage with SessionCorruptError, and remove() clears it', async () => {
        const name = fresh();
        const ns = backend.create(name);
        await ns.withWriteLock(() => ns.set('a', 1));
        await backend.corrupt(name);
        await assert.rejects(
          ns.acquireReadLock(),
          (e: unknown) => e instanceof SessionCorruptError && e.code === 'ERR_SESSION_CORRUPT',
        );
        assert.equal(ns.lockState, 'none');
        await ns.remove();
        await ns.withWriteLock(() => ns.set('fresh', true));
        await ns.withReadLock(() => assert.deepEqual(ns.keys(), ['fresh']));
      });
    });
  });
}

function crossProcess(type: BackendType): boolean {
  return type !== 'memory';
}

function listTree(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      files.push(full);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return files;
}
