/**
 * sweep(): removes idle file and dbm sessions with their lock files, never a locked or
 * recent one, cleans up what killed processes leave behind, and streams the directory.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { type DirectoryResult, dir } from 'tmp-promise';
import { TEMP_DIRECTORY } from '../../lib/files.js';
import {
  FileNamespaceManager,
  Session,
  StorageError,
  type SweepResult,
  type SweptEntry,
  sweep,
} from '../../lib/index.js';
import { dbmEnvironments } from '../../lib/namespace/dbm.js';
import { readSession } from '../../lib/session-record.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';
import { age, createSession, exists, type FileType, filesOf, HOUR } from '../fixtures/data-dir.js';
import { spawnWorker } from '../fixtures/processes.js';

const TYPES: FileType[] = ['file', 'dbm'];
/** The lockStale of an application that holds its locks longer than the sweep's `lockStale` assumes. */
const LONG_LEASE = 60_000;
const SHORT_LEASE = 10_000;
const options = (dataDir: string) => ({ dataDir, timeout: 1800, lockStale: TEST_LOCK_STALE });

/** A session file of `type` (its format's head) whose content is damaged. */
function damagedSessionFile(type: FileType): Buffer {
  if (type === 'file') return Buffer.from('sessionlock 1 9 00000000\n{"broken');
  const pages = Buffer.alloc(8192, 0xa5);
  pages.writeUInt32LE(0xbeefc0de, 24); // mm_magic of the first meta page, after its 24-byte header
  return pages;
}

function emptyResult(overrides: Partial<SweepResult> = {}): SweepResult {
  return {
    scanned: 0,
    removed: 0,
    skippedLocked: 0,
    skippedRecent: 0,
    skippedUnnamed: 0,
    skippedGone: 0,
    skippedForeign: 0,
    orphans: { locks: 0, temps: 0, lmdbLocks: 0 },
    failed: 0,
    failedSessions: 0,
    dryRun: false,
    ...overrides,
  };
}

describe('sweep', () => {
  let tmp: DirectoryResult;
  let dataDir: string;

  before(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-sweep-' });
  });
  afterEach(async () => {
    await dbmEnvironments.closeAll();
  });
  after(async () => {
    await tmp.cleanup();
  });

  const freshDir = () => {
    dataDir = fs.mkdtempSync(path.join(tmp.path, 'data-'));
    return dataDir;
  };

  for (const type of TYPES) {
    describe(`${type} sessions`, () => {
      it('removes idle sessions with their lock files and keeps recent ones', async () => {
        freshDir();
        const idle = await createSession(type, dataDir, { user: 'ada' });
        const recent = await createSession(type, dataDir, { user: 'bob' });
        await age(idle.file, 2 * HOUR);
        const removed: SweptEntry[] = [];
        const result = await sweep({ ...options(dataDir), onRemove: (entry) => void removed.push(entry) });
        assert.deepEqual(result, emptyResult({ scanned: 2, removed: 1, skippedRecent: 1 }));
        assert.equal(await exists(idle.file), false);
        assert.equal(await exists(idle.lock), false);
        if (type === 'dbm') assert.equal(await exists(`${idle.file}-lock`), false);
        assert.equal(await exists(recent.file), true);
        assert.equal(removed.length, 1);
        assert.deepEqual(
          { ...removed[0], modified: undefined },
          {
            kind: 'session',
            type,
            id: idle.id,
            path: idle.file,
            size: removed[0]?.size,
            modified: undefined,
            corrupt: false,
          },
        );
        assert.ok((removed[0]?.size ?? 0) > 0);
      });

      it('removes idle encrypted sessions without their key (not as corrupt), deciding under the lock', async () => {
        freshDir();
        const encrypted = { encryptKey: 'a key the sweep is not given' };
        const idle = await createSession(type, dataDir, { user: 'ada' }, {}, encrypted);
        const raced = await createSession(type, dataDir, { user: 'bob' }, {}, encrypted);
        await age(idle.file, 2 * HOUR);
        await age(raced.file, 2 * HOUR);
        // Another process writes `raced` just before the sweep takes its lock.
        const openSync = fs.openSync;
        const write = mock.method(fs, 'openSync', (file: fs.PathLike, ...rest: unknown[]) => {
          if (file === raced.lock && rest[0] === 'wx') fs.utimesSync(raced.file, new Date(), new Date());
          return (openSync as (...args: unknown[]) => number)(file, ...rest);
        });
        const removed: SweptEntry[] = [];
        let result: SweepResult;
        try {
          result = await sweep({ ...options(dataDir), onRemove: (entry) => void removed.push(entry) });
        } finally {
          write.mock.restore();
        }
        assert.deepEqual(result, emptyResult({ scanned: 2, removed: 1, skippedRecent: 1 }));
        assert.deepEqual(
          removed.map((entry) => [entry.id, entry.corrupt]),
          [[idle.id, false]],
        );
        assert.equal(await exists(idle.file), false);
        const kept = await Session.open(undefined, { type, dataDir, id: raced.id, useCookies: false, ...encrypted });
        assert.equal(kept.data.user, 'bob');
      });

      /** A stored session, in a fresh data directory, whose lock a child process holds with `lockStale`. */
      const heldByWorker = async (lockStale: number) => {
        freshDir();
        const held = await createSession(type, dataDir, { n: 1 });
        const worker = spawnWorker({
          type,
          options: { dataDir, lockStale },
          namespace: held.id,
          task: { kind: 'hold' },
        });
        return { held, worker };
      };

      it('never removes a session locked by another process, and removes it once its holder is gone', async () => {
        const { held, worker } = await heldByWorker(TEST_LOCK_STALE);
        try {
          await worker.next('locked');
          await age(held.file, 2 * HOUR);
          const result = await sweep(options(dataDir));
          assert.deepEqual(result, emptyResult({ scanned: 1, skippedLocked: 1 }));
          assert.equal(await exists(held.file), true);
          assert.equal(await exists(held.lock), true);
        } finally {
          worker.kill();
          await worker.exited;
        }
        await age(held.lock, 2 * TEST_LOCK_STALE);
        const result = await sweep(options(dataDir));
        assert.equal(result.removed, 1);
        assert.equal(await exists(held.file), false);
        assert.equal(await exists(held.lock), false);
      });

      it('never takes over the lock of a holder whose lease is longer than its lockStale', async () => {
        const { held, worker } = await heldByWorker(LONG_LEASE);
        try {
          await worker.next('locked');
          await age(held.file, 2 * HOUR);
          await age(held.lock, 2 * SHORT_LEASE);
          for (const dryRun of [true, false]) {
            const result = await sweep({ ...options(dataDir), lockStale: SHORT_LEASE, dryRun });
            assert.deepEqual(result, emptyResult({ scanned: 1, skippedLocked: 1, dryRun }));
          }
          assert.equal(await exists(held.file), true);
          assert.equal(await exists(held.lock), true);
        } finally {
          worker.kill();
          await worker.exited;
        }
        await age(held.lock, LONG_LEASE);
        const result = await sweep({ ...options(dataDir), lockStale: SHORT_LEASE });
        assert.equal(result.removed, 1);
        assert.equal(await exists(held.lock), false);
      });

      it('skips an idle session locked in this process, without waiting', async () => {
        freshDir();
        const held = await createSession(type, dataDir, { n: 1 });
        await age(held.file, 2 * HOUR);
        const { Session } = await import('../../lib/index.js');
        const session = await Session.open(undefined, { type, dataDir, id: held.id, useCookies: false });
        await session.lock();
        try {
          await age(held.file, 2 * HOUR);
          const result = await sweep(options(dataDir));
          assert.deepEqual(result, emptyResult({ scanned: 1, skippedLocked: 1 }));
        } finally {
          await session.unlock();
        }
        assert.equal(await exists(held.file), true);
      });

      it('removes an idle session whose data is corrupt', async () => {
        freshDir();
        const corrupt = filesOf(type, dataDir, 'corruptsession0000');
        fs.writeFileSync(corrupt.file, damagedSessionFile(type));
        await age(corrupt.file, 2 * HOUR);
        const removed: SweptEntry[] = [];
        const result = await sweep({ ...options(dataDir), onRemove: (entry) => void removed.push(entry) });
        assert.equal(result.removed, 1);
        assert.equal(removed[0]?.corrupt, true);
        assert.equal(await exists(corrupt.file), false);
      });

      it('leaves alone, and counts, idle files with a session’s name that are not sessionlock files', async () => {
        freshDir();
        const foreign = ['package', 'tsconfig'].map((name) => filesOf(type, dataDir, name).file);
        fs.writeFileSync(foreign[0] as string, '{"name":"my-app","version":"1.0.0"}\n');
        fs.writeFileSync(foreign[1] as string, 'x');
        for (const file of foreign) await age(file, 2 * HOUR);
        const result = await sweep(options(dataDir));
        assert.deepEqual(result, emptyResult({ skippedForeign: 2 }));
        for (const file of foreign) assert.equal(await exists(file), true, file);
      });
    });
  }

  it('removes left-over locks, takeover mutexes, entries set aside, temporary files and LMDB lock files, only once abandoned', async () => {
    freshDir();
    const at = (name: string) => path.join(dataDir, name);
    // locks are files; directories are what older versions made
    const staleDirs = ['gone2.mdb.lock'];
    const freshDirs = ['busy2.mdb.lock.takeover'];
    const temp = (name: string) => path.join(TEMP_DIRECTORY, name);
    const staleFiles = [
      'gone1.json.lock',
      'gone3.json.lock.takeover',
      temp('gone4.json.0123456789ab.tmp'),
      'gone5.mdb-lock',
      'gone6.json.00aa00aa00aa.tmp',
      'gone7.json.lock.0123456789ab.aside',
      'gone8.mdb.lock.takeover.ba9876543210.aside',
    ];
    const freshFiles = [
      'busy1.json.lock',
      'busy5.json.lock.0123456789ab.aside',
      'other.txt.lock.0123456789ab.aside',
      temp('busy3.json.ba9876543210.tmp'),
      'busy4.mdb-lock',
      temp('unrelated.txt'),
    ];
    fs.mkdirSync(at(TEMP_DIRECTORY));
    for (const name of [...staleDirs, ...freshDirs]) fs.mkdirSync(at(name));
    for (const name of [...staleFiles, ...freshFiles]) fs.writeFileSync(at(name), '');
    for (const name of [...staleDirs, ...staleFiles]) await age(at(name), 2 * TEST_LOCK_STALE);
    // an LMDB lock file beside its data file is in use, however old
    const live = await createSession('dbm', dataDir, { n: 1 });
    await age(`${live.file}-lock`, 2 * HOUR);

    const removed: string[] = [];
    const result = await sweep({ ...options(dataDir), onRemove: (entry) => void removed.push(entry.kind) });
    assert.deepEqual(
      result,
      emptyResult({ scanned: 1, skippedRecent: 1, orphans: { locks: 5, temps: 2, lmdbLocks: 1 } }),
    );
    assert.deepEqual(removed.sort(), ['lmdb-lock', 'lock', 'lock', 'lock', 'lock', 'lock', 'temp', 'temp']);
    for (const name of [...staleDirs, ...staleFiles]) assert.equal(await exists(at(name)), false, name);
    for (const name of [...freshDirs, ...freshFiles]) assert.equal(await exists(at(name)), true, name);
    assert.equal(await exists(`${live.file}-lock`), true);
  });

  it('keeps left-over locks and takeover mutexes until they are older than the lease their holder recorded', async () => {
    freshDir();
    const entries = ['held.json.lock', 'held.mdb.lock.takeover'].map((name) => path.join(dataDir, name));
    for (const entry of entries) {
      fs.writeFileSync(entry, String(LONG_LEASE));
      await age(entry, 2 * SHORT_LEASE);
    }
    for (const dryRun of [true, false]) {
      const result = await sweep({ ...options(dataDir), lockStale: SHORT_LEASE, dryRun });
      assert.deepEqual(result, emptyResult({ dryRun }));
    }
    for (const entry of entries) assert.equal(await exists(entry), true, entry);
    for (const entry of entries) await age(entry, LONG_LEASE);
    const result = await sweep({ ...options(dataDir), lockStale: SHORT_LEASE });
    assert.deepEqual(result, emptyResult({ orphans: { locks: 2, temps: 0, lmdbLocks: 0 } }));
  });

  it('ignores unrelated files and directories and never follows symbolic links', async () => {
    freshDir();
    const outside = fs.mkdtempSync(path.join(tmp.path, 'outside-'));
    const target = filesOf('file', outside, 'outsidesession0000');
    fs.writeFileSync(target.file, '{}');
    fs.mkdirSync(path.join(outside, 'dir.json.lock'));
    const names = ['README.md', 'Upper.json', 'notes.txt', '=zz.json', '=61.json', 'x.json.tmp', 'x.json.lock.old'];
    for (const name of names) fs.writeFileSync(path.join(dataDir, name), 'unrelated');
    fs.mkdirSync(path.join(dataDir, 'nested'));
    fs.writeFileSync(path.join(dataDir, 'nested', 'deepsession000000.json'), '{}');
    fs.symlinkSync(target.file, path.join(dataDir, 'linkedsession0000.json'));
    fs.symlinkSync(path.join(outside, 'dir.json.lock'), path.join(dataDir, 'linkedlock0000000.json.lock'));
    fs.symlinkSync(outside, path.join(dataDir, 'linkeddir00000000.mdb.lock'));
    const everything = [
      ...names.map((name) => path.join(dataDir, name)),
      path.join(dataDir, 'nested', 'deepsession000000.json'),
      target.file,
      path.join(outside, 'dir.json.lock'),
    ];
    for (const file of everything) await age(file, 2 * HOUR);

    const result = await sweep(options(dataDir));
    assert.deepEqual(result, emptyResult());
    for (const file of everything) assert.equal(await exists(file), true, file);
    for (const link of ['linkedsession0000.json', 'linkedlock0000000.json.lock', 'linkeddir00000000.mdb.lock']) {
      assert.equal(await exists(path.join(dataDir, link)), true, link);
    }
  });

  it('leaves sessions with hashed names alone and counts them', async () => {
    freshDir();
    const hashed = path.join(dataDir, `+${'ab'.repeat(32)}.json`);
    fs.writeFileSync(hashed, damagedSessionFile('file'));
    await age(hashed, 2 * HOUR);
    assert.deepEqual(await sweep(options(dataDir)), emptyResult({ scanned: 1, skippedUnnamed: 1 }));
    assert.equal(await exists(hashed), true);
  });

  it('sweeps one kind only with `type`', async () => {
    freshDir();
    const file = await createSession('file', dataDir, { n: 1 });
    const dbm = await createSession('dbm', dataDir, { n: 1 });
    await age(file.file, 2 * HOUR);
    await age(dbm.file, 2 * HOUR);
    assert.deepEqual(await sweep({ ...options(dataDir), type: 'dbm' }), emptyResult({ scanned: 1, removed: 1 }));
    assert.equal(await exists(file.file), true);
    assert.equal(await exists(dbm.file), false);
  });

  it('removes nothing on a dry run and reports what it would remove', async () => {
    freshDir();
    const idle = await createSession('file', dataDir, { n: 1 });
    await age(idle.file, 2 * HOUR);
    fs.writeFileSync(path.join(dataDir, `${idle.id}.json.00aa00aa00aa.tmp`), '{');
    await age(path.join(dataDir, `${idle.id}.json.00aa00aa00aa.tmp`), HOUR);
    const before = fs.readdirSync(dataDir).sort();
    const result = await sweep({ ...options(dataDir), dryRun: true });
    assert.deepEqual(
      result,
      emptyResult({ scanned: 1, removed: 1, orphans: { locks: 0, temps: 1, lmdbLocks: 0 }, dryRun: true }),
    );
    assert.deepEqual(fs.readdirSync(dataDir).sort(), before);
  });

  it('rejects a missing or unreadable data directory with a StorageError naming it', async () => {
    const missing = path.join(tmp.path, 'no-such-dir');
    await assert.rejects(sweep({ dataDir: missing, timeout: 60 }), (error: unknown) => {
      assert.ok(error instanceof StorageError);
      assert.equal(error.location, missing);
      assert.match(error.message, /no-such-dir/);
      return true;
    });
    const notDir = path.join(tmp.path, 'a-file');
    fs.writeFileSync(notDir, '');
    await assert.rejects(sweep({ dataDir: notDir, timeout: 60 }), StorageError);
  });

  it('rejects bad options with a TypeError naming the option', async () => {
    freshDir();
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong options
    const bad = (extra: any) => sweep({ dataDir, timeout: 60, ...extra });
    await assert.rejects(bad({ timeout: undefined }), /timeout must be a number/);
    await assert.rejects(bad({ timeout: -1 }), /timeout must be a number/);
    await assert.rejects(bad({ type: 'redis' }), /type must be 'file' or 'dbm'/);
    await assert.rejects(bad({ lockStale: 10 }), /lockStale must be a number >= 2000/);
    await assert.rejects(bad({ lockStale: 2 ** 31 }), /lockStale must be a number >= 2000 and <= 2147483647/);
    await assert.rejects(bad({ onRemove: 'yes' }), /onRemove must be a function/);
  });

  it('reports an entry it cannot sweep to onError and goes on', async () => {
    freshDir();
    const idle = await createSession('file', dataDir, { n: 1 });
    const other = await createSession('file', dataDir, { n: 2 });
    await age(idle.file, 2 * HOUR);
    await age(other.file, 2 * HOUR);
    const failures: string[] = [];
    // Fails under the session's lock, after the sweep took it.
    const original = FileNamespaceManager.prototype.fileProblem;
    const removeMock = mock.method(
      FileNamespaceManager.prototype,
      'fileProblem',
      function (this: FileNamespaceManager) {
        if (this.namespace === idle.id) throw new Error('disk on fire');
        return original.call(this);
      },
    );
    try {
      const result = await sweep({
        ...options(dataDir),
        onError: (error, file) => void failures.push(`${file}: ${error.message}`),
      });
      assert.deepEqual(result, emptyResult({ scanned: 2, removed: 1, failed: 1, failedSessions: 1 }));
    } finally {
      removeMock.mock.restore();
    }
    assert.deepEqual(failures, [`${idle.file}: disk on fire`]);
    assert.equal(await exists(idle.file), true);
    assert.equal(await exists(idle.lock), false, 'the lock is released after a failure');
    assert.equal(await exists(other.file), false);
  });
});

describe('sweep counts', () => {
  let tmp: DirectoryResult;

  before(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-sweep-counts-' });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('counts a session removed by someone else while it was swept as gone', async () => {
    const vanishing = await createSession('file', tmp.path, { n: 1 });
    const other = await createSession('file', tmp.path, { n: 2 });
    for (const { file } of [vanishing, other]) await age(file, 2 * HOUR);
    const original = FileNamespaceManager.prototype.removeIf;
    const removeIf = mock.method(
      FileNamespaceManager.prototype,
      'removeIf',
      function (this: FileNamespaceManager, condition: () => boolean | Promise<boolean>) {
        if (this.namespace === vanishing.id) fs.rmSync(this.file);
        return original.call(this, condition);
      },
    );
    try {
      const result = await sweep({ dataDir: tmp.path, timeout: 1800, lockStale: TEST_LOCK_STALE });
      assert.deepEqual(result, emptyResult({ scanned: 2, removed: 1, skippedGone: 1 }));
    } finally {
      removeIf.mock.restore();
    }
  });
});

describe('sweep of a large directory', () => {
  // tmpfs makes 100,000 sessions quick to create and remove; elsewhere a smaller count keeps the test short.
  const { base, count } = bigDirectory();
  let tmp: DirectoryResult;

  before(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: 'sessionlock-sweep-big-', tmpdir: base });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it(`removes ${count.toLocaleString('en')} expired sessions, streaming the directory in bounded memory`, async () => {
    const dataDir = tmp.path;
    const old = new Date(Date.now() - 2 * HOUR);
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const id = `s${i.toString(36).padStart(31, '0')}`;
      const file = path.join(dataDir, `${id}.json`);
      const time = JSON.stringify(String(old.getTime()));
      fs.writeFileSync(
        file,
        `{"sessionlock":1,"namespace":"${id}","entries":{"#created":${time},"#accessed":${time}}}`,
      );
      fs.utimesSync(file, old, old);
      if (i < 2) ids.push(id);
    }
    // the files are what the file backend writes
    const first = new FileNamespaceManager(ids[0] as string, { dataDir });
    assert.equal((await first.withReadLock(() => readSession(first))).created, old.getTime());
    const recent = await createSession('file', dataDir, { keep: true });

    const readdir = mock.method(fs.promises, 'readdir');
    const readdirSync = mock.method(fs, 'readdirSync');
    const gc = exposeGc();
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let peak = 0;
    let removedCount = 0;
    try {
      const result = await sweep({
        dataDir,
        timeout: 1800,
        lockStale: TEST_LOCK_STALE,
        onRemove: () => {
          if (++removedCount % 10_000 === 0) {
            gc();
            peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
          }
        },
      });
      assert.deepEqual(result, emptyResult({ scanned: count + 1, removed: count, skippedRecent: 1 }));
      assert.equal(
        readdir.mock.callCount() + readdirSync.mock.callCount(),
        0,
        'the directory is streamed, never listed at once',
      );
    } finally {
      readdir.mock.restore();
      readdirSync.mock.restore();
    }
    assert.deepEqual(
      fs.readdirSync(dataDir).filter((name) => name !== TEMP_DIRECTORY),
      [path.basename(recent.file)],
    );
    // Loose: holding one small object per entry would retain several MB at 100k entries.
    assert.ok(peak < 8 * 1024 * 1024, `heap grew by ${(peak / 1024 / 1024).toFixed(1)} MB during the sweep`);
  });
});

function bigDirectory(): { base: string; count: number } {
  try {
    const shm = fs.statfsSync('/dev/shm');
    if (shm.bavail * shm.bsize > 2 * 1024 ** 3) return { base: '/dev/shm', count: 100_000 };
  } catch {}
  return { base: os.tmpdir(), count: 20_000 };
}

/** The garbage collector, without starting node with --expose-gc. */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
