/** What the on-disk backends (file, dbm) promise beyond the conformance suite. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as lmdb from 'lmdb';
import { open } from 'lmdb';
import { dir } from 'tmp-promise';
import {
  createNamespaceManager,
  DBMNamespaceManager,
  type FileNamespaceManager,
  StorageError,
} from '../../lib/index.js';
import { decodeRecord, readNamespaceFile } from '../../lib/namespace/file-format.js';
import { lmdbOpenOptions } from '../../lib/namespace/lmdb-environments.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';
import { resultOf, runNode, spawnScript, spawnWorker } from '../fixtures/processes.js';

for (const type of ['file', 'dbm'] as const) {
  describe(`${type} backend on disk`, () => {
    let root: string;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ path: root, cleanup } = await dir({ unsafeCleanup: true }));
    });
    after(() => cleanup());

    const create = (namespace: string, dataDir = path.join(root, 'data')) =>
      createNamespaceManager(type, namespace, { dataDir, lockStale: TEST_LOCK_STALE }) as
        | FileNamespaceManager
        | DBMNamespaceManager;

    it('creates a missing data directory, nested, on the first write', async () => {
      const dataDir = path.join(root, 'missing', 'deeper');
      const ns = create('abc', dataDir);
      assert.equal(await ns.withReadLock(() => ns.get('x')), undefined, 'reading creates nothing');
      assert.equal(fs.existsSync(dataDir), false);
      await ns.withWriteLock(() => ns.set('x', 1));
      assert.equal(fs.existsSync(ns.file), true);
    });

    it('creates a missing data directory once when many first writes race for it', async () => {
      const dataDir = path.join(root, `racing-${randomUUID()}`, 'nested');
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => {
          const ns = create(`first-${i}`, dataDir);
          return ns.withWriteLock(() => ns.set('i', i));
        }),
      );
      assert.equal(
        fs.readdirSync(dataDir).filter((name) => name.startsWith('first-')).length,
        type === 'file' ? 20 : 40,
      );
    });

    it('gives a StorageError naming the path when the data directory cannot be written', async () => {
      const blocker = path.join(root, 'a-file');
      fs.writeFileSync(blocker, 'not a directory');
      const ns = create('abc', path.join(blocker, 'sessions'));
      await assert.rejects(ns.acquireWriteLock(), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.match(error.message, new RegExp(blocker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        return true;
      });
      assert.equal(ns.lockState, 'none');
    });

    it('leaves only the namespace file behind: no lock, temporary or empty files', async () => {
      const dataDir = path.join(root, `clean-${randomUUID()}`);
      const ns = create('tidy', dataDir);
      for (let i = 0; i < 20; i++) await ns.withWriteLock(() => ns.set('i', i));
      const expected = type === 'file' ? ['.tmp', 'tidy.json'] : ['tidy.mdb', 'tidy.mdb-lock'];
      assert.deepEqual(fs.readdirSync(dataDir).sort(), expected);
      if (type === 'file')
        assert.deepEqual(fs.readdirSync(path.join(dataDir, '.tmp')), [], 'no temporary file outlives its commit');
      await ns.withWriteLock(() => {});
      assert.deepEqual(fs.readdirSync(dataDir).sort(), expected, 'a lock without changes writes nothing');
      const noFiles = type === 'file' ? ['.tmp'] : [];
      await ns.remove();
      assert.deepEqual(fs.readdirSync(dataDir), noFiles, 'remove() deletes the data and lock files');
      const untouched = create('never-written', dataDir);
      await untouched.withWriteLock(() => {});
      assert.deepEqual(fs.readdirSync(dataDir), noFiles, 'locking a namespace that stays empty leaves no files');
    });

    it('stays exclusive when several processes wait out a killed holder and take over together', async () => {
      const namespace = `takeover-${randomUUID()}`;
      const options = { dataDir: path.join(root, 'data'), lockStale: TEST_LOCK_STALE };
      const holder = spawnWorker({ type, options, namespace, task: { kind: 'hold' } });
      await holder.next('locked');
      const waiters = Array.from({ length: 3 }, () =>
        spawnWorker({ type, options, namespace, task: { kind: 'increment', count: 50, key: 'n' } }),
      );
      holder.kill('SIGKILL');
      await Promise.all(waiters.map((worker) => worker.next('done')));
      const reader = create(namespace);
      assert.equal(await reader.withReadLock(() => reader.get('n')), 150);
    });

    for (const entry of ['file', 'directory'] as const) {
      it(`takes over a stale lock ${entry} in one try, also when a process died holding the takeover mutex`, async () => {
        const ns = create(`orphan-${randomUUID()}`);
        await ns.withWriteLock(() => ns.set('n', 1));
        const lock = `${ns.file}.lock`;
        const old = new Date(Date.now() - 2 * TEST_LOCK_STALE);
        for (const orphan of [lock, `${lock}.takeover`]) {
          if (entry === 'file') fs.writeFileSync(orphan, '');
          else fs.mkdirSync(orphan);
          fs.utimesSync(orphan, old, old);
        }
        assert.equal(await ns.acquireWriteLock({ wait: false }), true);
        assert.equal(ns.get('n'), 1);
        await ns.releaseWriteLock();
        assert.equal(fs.existsSync(lock), false);
        assert.equal(fs.existsSync(`${lock}.takeover`), false);
      });
    }

    it('a commit past the file size limit (ulimit -f) gives a StorageError; the process lives on with the previous commit', {
      skip: process.platform === 'win32',
    }, async () => {
      // proper-lockfile's signal-exit used to re-raise the SIGXFSZ that came with EFBIG, ending the process.
      const worker = fileURLToPath(new URL('../fixtures/file-size-limit-worker.ts', import.meta.url));
      const input = { type, dataDir: path.join(root, `size-limit-${randomUUID()}`) };
      const run = await runNode([worker, JSON.stringify(input)], { shell: 'ulimit -f 1024 &&' });
      const { error, value } = resultOf<{ error?: { name: string }; value: unknown }>(run);
      assert.equal(error?.name, 'StorageError');
      assert.equal(value, 'small');
    });

    it('holds its lock as a file, and a live lock directory of an older version excludes it', async () => {
      const ns = create(`mixed-${randomUUID()}`);
      const lock = `${ns.file}.lock`;
      await ns.acquireWriteLock();
      assert.ok(fs.statSync(lock).isFile());
      assert.throws(() => fs.mkdirSync(lock), { code: 'EEXIST' }, "an older version's mkdir finds it taken");
      await ns.releaseWriteLock();
      fs.mkdirSync(lock);
      assert.equal(await ns.acquireWriteLock({ wait: false }), false);
      fs.rmdirSync(lock);
      assert.equal(await ns.acquireWriteLock({ wait: false }), true);
      await ns.releaseWriteLock();
    });
  });
}

describe('lmdb under the options the dbm backend uses', () => {
  const worker = fileURLToPath(new URL('../fixtures/lmdb-increment-worker.ts', import.meta.url));

  // Without writeTransaction's check this lost an increment now and then on a loaded machine
  // (or writers died with MDB_BAD_TXN or SIGSEGV): four processes opening a fresh file while the
  // first ones commit is when lmdb-js 3.5.6 sets LMDB's record of the newest commit back.
  it('keeps every commit of 4 processes × 500 transactions that read before they write, 5 rounds', async (t) => {
    const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
    try {
      let reopened = 0;
      for (let round = 0; round < 5; round++) {
        const file = path.join(dataDir, `round${round}.mdb`);
        const workers = Array.from({ length: 4 }, () => spawnScript(worker, { file, count: 500 }));
        for (const done of await Promise.all(workers.map((w) => w.next<{ reopened: number }>('done')))) {
          reopened += done.reopened;
        }
        await Promise.all(workers.map((w) => w.exited));
        const db = open<string, string>(lmdbOpenOptions(file));
        assert.equal(db.get('n'), '2000', `round ${round}`);
        await db.close();
      }
      t.diagnostic(`write transactions LMDB began from an older commit, caught and retried: ${reopened}`);
    } finally {
      await cleanup();
    }
  });
});

describe('file backend commits in place', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ path: root, cleanup } = await dir({ unsafeCleanup: true }));
  });
  after(() => cleanup());
  const create = (namespace: string) =>
    createNamespaceManager('file', namespace, { dataDir: root, lockStale: TEST_LOCK_STALE }) as FileNamespaceManager;
  const read = (ns: FileNamespaceManager) => ns.withReadLock(() => ns.get('n'));

  it('overwrites the same file (no new inode) until a value outgrows it', async () => {
    const ns = create(`inode-${randomUUID()}`);
    await ns.withWriteLock(() => ns.set('n', 0));
    const inode = fs.statSync(ns.file).ino;
    for (let n = 1; n <= 5; n++) await ns.withWriteLock(() => ns.set('n', n));
    assert.equal(fs.statSync(ns.file).ino, inode);
    assert.equal(await read(create(ns.namespace)), 5);
    await ns.withWriteLock(() => ns.set('big', 'x'.repeat(100_000)));
    assert.notEqual(fs.statSync(ns.file).ino, inode, 'a new file with bigger slots');
    assert.equal(await read(create(ns.namespace)), 5);
  });

  it('keeps every commit of one held lock: in place, grown into a new file, in place again', async () => {
    const ns = create(`nested-${randomUUID()}`);
    await ns.withWriteLock(() => ns.set('n', 0));
    await ns.acquireWriteLock();
    for (const [n, big] of [
      [1, ''],
      [2, 'x'.repeat(100_000)],
      [3, 'x'.repeat(100_000)],
      [4, 'y'.repeat(100_000)],
    ] as const) {
      await ns.acquireWriteLock();
      ns.set('n', n);
      ns.set('big', big);
      await ns.releaseWriteLock();
      const onDisk = readNamespaceFile(fs.readFileSync(ns.file));
      assert.ok(onDisk, 'an intact version');
      assert.equal(decodeRecord(onDisk.record, ns.namespace).get('n'), String(n), `commit ${n} under the held lock`);
    }
    await ns.releaseWriteLock();
    assert.equal(await read(create(ns.namespace)), 4);
  });

  it('reads the previous commit when the newest one was cut short (a writer killed mid-write)', async () => {
    const ns = create(`torn-${randomUUID()}`);
    for (let n = 1; n <= 3; n++) await ns.withWriteLock(() => ns.set('n', n));
    const bytes = fs.readFileSync(ns.file);
    const newest = bytes.indexOf('sessionlock 3 ');
    bytes.fill(' ', newest + 40, newest + 60);
    fs.writeFileSync(ns.file, bytes);
    assert.equal(await read(create(ns.namespace)), 2);
    await ns.withWriteLock(() => ns.set('n', 4));
    assert.equal(await read(create(ns.namespace)), 4);
  });

  it('with durable: true, syncs each kind of commit and reads every one back', async () => {
    const namespace = `durable-${randomUUID()}`;
    const ns = createNamespaceManager('file', namespace, { dataDir: root, durable: true }) as FileNamespaceManager;
    await ns.withWriteLock(() => ns.set('n', 1));
    await ns.withWriteLock(() => ns.set('n', 2));
    await ns.withWriteLock(() => ns.set('big', 'x'.repeat(100_000)));
    assert.equal(await read(create(namespace)), 2);
    const reader = create(namespace);
    assert.equal(await reader.withReadLock(() => reader.get('big')), 'x'.repeat(100_000));
  });

  it('reads a version-1 file (one bare JSON record) and rewrites it in slots on the next commit', async () => {
    const ns = create(`legacy-${randomUUID()}`);
    fs.writeFileSync(ns.file, JSON.stringify({ sessionlock: 1, namespace: ns.namespace, entries: { n: '41' } }));
    assert.equal(await read(ns), 41);
    await ns.withWriteLock(() => ns.set('n', (ns.get('n') as number) + 1));
    assert.match(fs.readFileSync(ns.file, 'latin1'), /^sessionlock 1 \d+ [0-9a-f]{8}\n\{/);
    assert.equal(await read(create(ns.namespace)), 42);
  });
});

describe('dbm lock holder against a commit under way in another process', () => {
  const worker = fileURLToPath(new URL('../fixtures/lmdb-pending-commit-worker.ts', import.meta.url));

  it('sees the commit: its first read waits for the LMDB writer instead of reading an older snapshot', async () => {
    const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
    try {
      const ns = createNamespaceManager('dbm', 'race', { dataDir, lockStale: TEST_LOCK_STALE }) as DBMNamespaceManager;
      await ns.withWriteLock(() => ns.set('n', 1));
      const marker = path.join(dataDir, 'writing');
      const pending = spawnScript(worker, {
        file: ns.file,
        lockFile: `${ns.file}.lock`,
        marker,
        key: 'n',
        raw: '42',
        settleMs: 200,
      });
      while (!fs.existsSync(marker)) await new Promise((resolve) => setTimeout(resolve, 5));
      await ns.acquireWriteLock();
      try {
        assert.equal(ns.get('n'), 42);
        ns.set('n', (ns.get('n') as number) + 1);
      } finally {
        await ns.releaseWriteLock();
      }
      await pending.next('done');
      assert.equal(await ns.withReadLock(() => ns.get('n')), 43, 'no update lost');
    } finally {
      await cleanup();
    }
  });
});

describe('dbm open-file cache', () => {
  it('keeps open file descriptors bounded across 5,000 namespaces', async () => {
    const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
    const openFds = () => fs.readdirSync('/proc/self/fd').length;
    const baseline = openFds();
    let peak = baseline;
    try {
      for (let i = 0; i < 5000; i++) {
        const ns = createNamespaceManager('dbm', `s${i}`, { dataDir, maxOpenFiles: 64 });
        await ns.withWriteLock(() => ns.set('i', i));
        if (i % 100 === 0) peak = Math.max(peak, openFds());
      }
      const first = createNamespaceManager('dbm', 's0', { dataDir });
      assert.equal(await first.withReadLock(() => first.get('i')), 0);
      assert.ok(peak - baseline <= 64 * 3 + 16, `open descriptors grew by ${peak - baseline}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const registry = (lmdb as unknown as { allDbs: Map<string, unknown> }).allDbs;
      assert.ok(registry.size <= 64 + 16, `lmdb still holds ${registry.size} closed stores`);
    } finally {
      await cleanup();
    }
  });

  it('closes every file it keeps open with DBMNamespaceManager.closeFiles(), and opens them again on use', async () => {
    const { path: dataDir, cleanup } = await dir({ unsafeCleanup: true });
    const openFiles = () => fs.readdirSync('/proc/self/fd').filter((fd) => fdTarget(fd).startsWith(dataDir)).length;
    try {
      const managers = ['a', 'b', 'c'].map((name) => createNamespaceManager('dbm', name, { dataDir }));
      for (const ns of managers) await ns.withWriteLock(() => ns.set('n', ns.namespace));
      assert.ok(openFiles() >= 6, 'each namespace keeps its data and lock file open');
      await DBMNamespaceManager.closeFiles();
      assert.equal(openFiles(), 0);
      for (const ns of managers) assert.equal(await ns.withReadLock(() => ns.get('n')), ns.namespace);
    } finally {
      await DBMNamespaceManager.closeFiles();
      await cleanup();
    }
  });
});

function fdTarget(fd: string): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}
