/** Containers: the dogpile lock on every backend, stale-while-recreating, and recovery from lost or corrupt data. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dir } from 'tmp-promise';
import {
  CacheRegion,
  Container,
  createNamespaceManager,
  type FileNamespaceManager,
  SerializationError,
  SessionCorruptError,
} from '../../lib/index.js';
import { type BackendFixture, type BackendType, createFixture } from '../fixtures/backends.js';
import { spawnScript } from '../fixtures/processes.js';

const WORKER = fileURLToPath(new URL('../fixtures/container-worker.ts', import.meta.url));
const TAKEOVER_WORKER = fileURLToPath(new URL('../fixtures/container-takeover-worker.ts', import.meta.url));

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

for (const type of ['memory', 'file', 'dbm', 'redis'] as BackendType[]) {
  describe(`Container: ${type}`, () => {
    let backend: BackendFixture;
    let scratch: { path: string; cleanup: () => Promise<void> };
    before(async () => {
      backend = await createFixture(type);
      scratch = await dir({ unsafeCleanup: true });
    });
    after(async () => {
      await scratch.cleanup();
      await backend.cleanup();
    });
    const container = (name = `c-${randomUUID()}`) => new Container(name, { ...backend.options, type });
    const countingCreate = (runs: { n: number }, value: string, gate?: Promise<void>) => async () => {
      runs.n++;
      await (gate ?? new Promise((resolve) => setTimeout(resolve, 50)));
      return value;
    };

    it('runs createfunc once for 8 concurrent callers when there is no value, and they all get it', async () => {
      const cache = container();
      const runs = { n: 0 };
      const values = await Promise.all(
        Array.from({ length: 8 }, () => cache.get('k', { createfunc: countingCreate(runs, 'fresh') })),
      );
      assert.equal(runs.n, 1);
      assert.deepEqual(values, Array(8).fill('fresh'));
    });

    it('runs createfunc once per expiry for 8 concurrent callers, the others getting the stale value meanwhile', async () => {
      const cache = container();
      await cache.set('k', 'old', { expiretime: 0 });
      assert.equal(await cache.has('k'), false, 'expired');
      const runs = { n: 0 };
      const gate = deferred();
      const creating = cache.get('k', { createfunc: countingCreate(runs, 'new', gate.promise), expiretime: 60 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const others = await Promise.all(
        Array.from({ length: 7 }, () => cache.get('k', { createfunc: countingCreate(runs, 'other') })),
      );
      assert.deepEqual(others, Array(7).fill('old'), 'stale while recreating, without waiting for the creator');
      gate.resolve();
      assert.equal(await creating, 'new');
      assert.equal(runs.n, 1);
      assert.equal(await cache.get('k'), 'new');
      assert.equal(await cache.has('k'), true);
    });

    it('runs createfunc once across 4 processes × 4 callers asking for an expired key', {
      skip: type === 'memory',
    }, async () => {
      const name = `c-${randomUUID()}`;
      await container(name).set('k', 'old', { expiretime: 0 });
      const runsFile = path.join(scratch.path, `${name}.runs`);
      fs.writeFileSync(runsFile, '');
      const options = { ...backend.options, type };
      const workers = Array.from({ length: 4 }, () =>
        spawnScript(WORKER, { options, name, key: 'k', callers: 4, runsFile }),
      );
      await Promise.all(workers.map((worker) => worker.next('ready')));
      for (const worker of workers) worker.child.send('go');
      const results = await Promise.all(workers.map((worker) => worker.next<{ values: string[] }>('values')));
      const runs = fs.readFileSync(runsFile, 'utf8').trim().split('\n');
      assert.equal(runs.length, 1, `createfunc ran in ${runs.join(', ')}`);
      const values = results.flatMap((result) => result.values);
      assert.ok(values.every((value) => value === 'old' || value === `made by ${runs[0]}`));
    });

    it('lets an error in createfunc propagate, keeps the stale value and releases the creation lock', async () => {
      const cache = container();
      await cache.set('k', 'old', { expiretime: 0 });
      await assert.rejects(
        cache.get('k', {
          createfunc: () => {
            throw new Error('backend down');
          },
        }),
        /backend down/,
      );
      assert.equal(await cache.get('k'), undefined, 'still expired: no createfunc, no value');
      assert.equal(await cache.get('k', { createfunc: () => 'recovered', expiretime: 60 }), 'recovered');
    });

    it('recreates a value whose storage was removed, and one that is corrupt, without leaving the lock held', async () => {
      const name = `c-${randomUUID()}`;
      const cache = container(name);
      await cache.set('k', 'first', { expiretime: 60 });
      if (type === 'file' || type === 'dbm') {
        const file = (createNamespaceManager(type, name, backend.options) as FileNamespaceManager).file;
        fs.rmSync(file);
        fs.rmSync(`${file}-lock`, { force: true });
      } else {
        await cache.clear();
      }
      assert.equal(await cache.get('k', { createfunc: () => 'second', expiretime: 60 }), 'second');
      await backend.corrupt(name);
      const recreated = await cache.get('k', { createfunc: () => 'third', expiretime: 60 });
      // redis corrupts one other field: only it is discarded; the others damage the whole store
      assert.equal(recreated, type === 'redis' ? 'second' : 'third');
      await cache.set('k', 'stale', { expiretime: 0 });
      assert.equal(
        await cache.get('k', { createfunc: () => 'fourth', expiretime: 60 }),
        'fourth',
        'the creation lock is free',
      );
    });

    it('keeps every value when a worker with another encryptKey (or none) reads or writes, throwing SessionCorruptError to it', async () => {
      const name = `c-${randomUUID()}`;
      const keyed = (encryptKey?: string) =>
        new Container(name, { ...backend.options, type, ...(encryptKey ? { encryptKey } : {}) });
      const owner = keyed('old-key-0123456789abcdef');
      for (const k of ['a', 'b']) await owner.set(k, `value ${k}`);
      for (const other of [keyed('new-key-0123456789abcdef'), keyed()]) {
        await assert.rejects(other.has('x'), SessionCorruptError);
        await assert.rejects(other.get('x'), SessionCorruptError);
        await assert.rejects(other.get('x', { createfunc: () => 'made' }), SessionCorruptError);
        await assert.rejects(other.set('x', 'set'), SessionCorruptError);
      }
      assert.deepEqual(
        [await owner.get('a'), await owner.get('b'), await owner.has('x')],
        ['value a', 'value b', false],
      );
    });

    it('throws SessionCorruptError on reading corrupt data and leaves it; a writer recreates it', async () => {
      const name = `c-${randomUUID()}`;
      const cache = container(name);
      await backend.corrupt(name);
      await assert.rejects(cache.has('k'), SessionCorruptError);
      await assert.rejects(cache.has('k'), SessionCorruptError, 'still there: a read changes nothing');
      await cache.set('k', 'written');
      assert.equal(await cache.get('k'), 'written');
    });

    it('returns the created value, logging, when its creation lock was taken over while createfunc blocked the process', {
      skip: type === 'memory',
    }, async () => {
      const name = `c-${randomUUID()}`;
      const options = { lockStale: 500, ...backend.options, type };
      const lines: string[] = [];
      const cache = new Container(name, { ...options, log: (line: string) => lines.push(line) });
      let taker = '';
      const value = await cache.get('k', {
        createfunc: () => {
          const child = spawnSync(process.execPath, [
            '--import',
            'tsx',
            TAKEOVER_WORKER,
            JSON.stringify({ options, name, key: 'k' }),
          ]);
          assert.equal(child.status, 0, String(child.stderr));
          taker = String(child.stdout);
          return 'made while blocked';
        },
      });
      assert.match(taker, /^made by \d+$/, 'the other process took the stale creation lock over');
      assert.equal(value, 'made while blocked');
      assert.equal(await cache.get('k'), 'made while blocked');
      assert.ok(
        lines.some((line) => /creation lock/.test(line)),
        lines.join('\n'),
      );
    });

    it('deletes expired values when writing another one', async () => {
      const name = `c-${randomUUID()}`;
      const cache = container(name);
      await cache.set('old', 'expired', { expiretime: 0 });
      await cache.set('kept', 'fresh', { expiretime: 60 });
      await cache.get('made', { createfunc: () => 'created' });
      const data = createNamespaceManager(type, name, backend.options);
      const keys = await data.withReadLock(() => data.keys().sort());
      assert.deepEqual(keys, ['kept', 'made']);
    });

    it('memoizes a function per argument list in a CacheRegion', async () => {
      const region = new CacheRegion(`r-${randomUUID()}`, { ...backend.options, type, expiretime: 60 });
      const calls: number[] = [];
      const square = region.memoize(async function square(x: number) {
        calls.push(x);
        return x * x;
      });
      assert.deepEqual(await Promise.all([square(3), square(3), square(4)]), [9, 9, 16]);
      assert.deepEqual(await square(3), 9);
      assert.deepEqual(calls.sort(), [3, 4]);
    });

    it('memoizes distinct arguments under distinct keys, refuses ones it cannot encode before calling fn, and passes this', async () => {
      const region = new CacheRegion(`r-${randomUUID()}`, { ...backend.options, type, expiretime: 60 });
      const calls: unknown[][] = [];
      const echo = region.memoize(async function echo(...args: unknown[]) {
        calls.push(args);
        return args.length;
      });
      const date = new Date(0);
      for (const args of [[null], [date], [date.toISOString()], ['x'], [{ a: 1 }]]) await echo(...args);
      assert.equal(calls.length, 5, 'null, a Date, its ISO string and plain values each ran');
      assert.equal(await region.get('echo:["x"]'), 1, 'plain JSON arguments keep their key');
      assert.equal(await region.get('echo:[{"a":1}]'), 1);
      await assert.rejects(echo(undefined), SerializationError);
      await assert.rejects(
        echo(() => 1),
        SerializationError,
      );
      assert.equal(calls.length, 5, 'fn did not run for arguments it cannot be keyed by');
      const counter = {
        base: 10,
        plus: region.memoize(async function plus(this: { base: number }, x: number) {
          return this.base + x;
        }),
      };
      assert.equal(await counter.plus(1), 11);
    });

    it('refuses a key over 1024 bytes before running createfunc, and hashes memoized arguments that would exceed it', async () => {
      const region = new CacheRegion(`r-${randomUUID()}`, { ...backend.options, type, expiretime: 60 });
      const long = 'x'.repeat(1025);
      let runs = 0;
      const create = () => {
        runs++;
        return 'made';
      };
      await assert.rejects(region.get(long, { createfunc: create }), /at most 1024 bytes/);
      await assert.rejects(region.set(long, 'v'), /at most 1024 bytes/);
      await assert.rejects(region.has(long), /at most 1024 bytes/);
      assert.equal(runs, 0);
      const length = region.memoize(async function length(text: string) {
        runs++;
        return text.length;
      });
      assert.deepEqual([await length(long), await length(long), await length(`${long}y`)], [1025, 1025, 1026]);
      assert.equal(runs, 2);
    });

    it('keeps the results of functions memoized under different names apart, and needs a name for an anonymous one', async () => {
      const region = new CacheRegion(`r-${randomUUID()}`, { ...backend.options, type, expiretime: 60 });
      const double = region.memoize(async function double(x: number) {
        return 2 * x;
      });
      const square = region.memoize(async (x: number) => x * x, { name: 'square' });
      const cube = region.memoize(async (x: number) => x ** 3, { key: (x) => `cube ${x}` });
      const half = region.memoize(async (x: number) => x / 2, { name: 'half' });
      assert.deepEqual([await double(5), await square(5), await cube(5), await half(5)], [10, 25, 125, 2.5]);
      assert.throws(() => region.memoize(async (x: number) => x + 1), /without a name needs a name or key option/);
      assert.throws(() => region.memoize(async (x: number) => x, { name: 7 as never }), /name must be a string/);
    });
  });
}
