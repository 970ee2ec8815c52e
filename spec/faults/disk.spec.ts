/**
 * Disk faults on the on-disk backends: a full disk, a data directory that cannot be written,
 * and a data directory removed while in use. Each gives a clear typed error, never a crash,
 * and leaves the last committed data readable.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { dir } from 'tmp-promise';
import { createNamespaceManager, LockCompromisedError, type NamespaceManager, StorageError } from '../../lib/index.js';
import { TEST_LOCK_STALE } from '../fixtures/backends.js';

function tryRun(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Fills the file system of `dir` (with a file named `filler`), then frees `leave` bytes of it again. */
function fillDisk(dir: string, leave = 0): void {
  const filler = fs.openSync(path.join(dir, 'filler'), 'a');
  let size = 0;
  try {
    for (;;) size += fs.writeSync(filler, Buffer.alloc(16 * 1024));
  } catch {
    // the disk is full now
  }
  try {
    if (leave > 0) fs.ftruncateSync(filler, Math.max(0, size - leave));
  } finally {
    fs.closeSync(filler);
  }
}

for (const type of ['file', 'dbm'] as const) {
  describe(`${type} backend under disk faults`, () => {
    let root: string;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ path: root, cleanup } = await dir({ unsafeCleanup: true }));
    });
    after(() => cleanup());

    const manager = (dataDir: string, name = 'victim'): NamespaceManager =>
      createNamespaceManager(type, name, { dataDir, lockStale: TEST_LOCK_STALE });
    const readAll = async (ns: NamespaceManager) =>
      ns.withReadLock(() => Object.fromEntries(ns.keys().map((k) => [k, ns.get(k)])));
    /** Runs `fn` on a fresh 512 KB tmpfs, unmounted afterwards; skips `t` where mounting is not allowed. */
    const onSmallDisk = async (t: TestContext, name: string, fn: (mount: string) => Promise<void>) => {
      const mount = path.join(root, name);
      fs.mkdirSync(mount);
      if (!tryRun('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mount])) {
        t.skip('cannot mount a small tmpfs here (needs root and mount permission)');
        return;
      }
      try {
        await fn(mount);
      } finally {
        tryRun('umount', ['-l', mount]);
      }
    };

    it('rejects writes on a full disk with StorageError and keeps the committed data', (t) =>
      onSmallDisk(t, 'small-disk', async (mount) => {
        const ns = manager(mount);
        await ns.withWriteLock(() => ns.set('kept', 'committed before the disk filled'));
        fillDisk(mount);
        await assert.rejects(
          ns.withWriteLock(() => ns.set('big', 'x'.repeat(200_000))),
          (error: unknown) =>
            error instanceof StorageError && /ENOSPC|MDB_|space/i.test(String(error.cause ?? error.message)),
        );
        assert.equal(ns.lockState, 'none');
        assert.deepEqual(await readAll(manager(mount)), { kept: 'committed before the disk filled' });
        fs.unlinkSync(path.join(mount, 'filler'));
        await ns.withWriteLock(() => ns.set('after', 'space came back'));
        assert.equal((await readAll(manager(mount))).after, 'space came back');
      }));

    it('rejects creating a namespace on a full disk with StorageError, not a crash, and creates it once space returns', (t) =>
      onSmallDisk(t, 'full-disk-new-namespace', async (mount) => {
        fillDisk(mount);
        for (const name of ['new0', 'new1']) {
          const ns = manager(mount, name);
          await assert.rejects(
            ns.withWriteLock(() => ns.set('created', name)),
            StorageError,
          );
          assert.equal(ns.lockState, 'none');
        }
        fs.unlinkSync(path.join(mount, 'filler'));
        const ns = manager(mount, 'new0');
        await ns.withWriteLock(() => ns.set('created', 'after'));
        assert.deepEqual(await readAll(manager(mount, 'new0')), { created: 'after' });
      }));

    it('rejects a commit that only partly fits on the disk with StorageError and keeps the committed data', (t) =>
      onSmallDisk(t, 'nearly-full-disk', async (mount) => {
        const ns = manager(mount);
        await ns.withWriteLock(() => ns.set('kept', 'committed before the disk filled'));
        // 64 KB left: the first write of the new file's 1 MB writes that much and returns a
        // short count, the next one fails with ENOSPC.
        fillDisk(mount, 64 * 1024);
        await assert.rejects(
          ns.withWriteLock(() => ns.set('big', 'x'.repeat(200_000))),
          (error: unknown) =>
            error instanceof StorageError &&
            // LMDB reports its own short write as EIO
            (type === 'dbm' || (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC'),
        );
        assert.equal(ns.lockState, 'none');
        assert.deepEqual(await readAll(manager(mount)), { kept: 'committed before the disk filled' });
        if (type === 'file')
          assert.deepEqual(fs.readdirSync(path.join(mount, '.tmp')), [], 'no temporary file is left');
        fs.unlinkSync(path.join(mount, 'filler'));
        await ns.withWriteLock(() => ns.set('after', 'space came back'));
        assert.deepEqual(await readAll(manager(mount)), {
          kept: 'committed before the disk filled',
          after: 'space came back',
        });
      }));

    it('rejects writes to a data directory it may not write with StorageError naming the path', async (t) => {
      const dataDir = path.join(root, 'read-only');
      const ns = manager(dataDir);
      await ns.withWriteLock(() => ns.set('kept', 1));
      const immutable = tryRun('chattr', ['+i', dataDir]);
      if (!immutable && !tryRun('chmod', ['500', dataDir])) {
        t.skip('cannot make a directory read-only here');
        return;
      }
      try {
        if (!immutable && process.getuid?.() === 0) {
          t.skip('chattr is unavailable and root ignores permissions');
          return;
        }
        await assert.rejects(
          ns.withWriteLock(() => ns.set('new', 2)),
          (error: unknown) => error instanceof StorageError && error.message.includes(dataDir),
        );
        assert.deepEqual(await readAll(manager(dataDir)), { kept: 1 });
      } finally {
        tryRun('chattr', ['-i', dataDir]);
        tryRun('chmod', ['700', dataDir]);
      }
      await ns.withWriteLock(() => ns.set('new', 2));
      assert.deepEqual(await readAll(manager(dataDir)), { kept: 1, new: 2 });
    });

    it('survives its data directory being removed while in use', async () => {
      const dataDir = path.join(root, 'removed');
      const ns = manager(dataDir);
      await ns.withWriteLock(() => ns.set('a', 1));
      await ns.acquireWriteLock();
      ns.set('b', 2);
      fs.rmSync(dataDir, { recursive: true, force: true });
      await assert.rejects(
        ns.releaseWriteLock(),
        (error: unknown) => error instanceof LockCompromisedError || error instanceof StorageError,
        'its lock (and the place to write) went with the directory',
      );
      assert.equal(ns.lockState, 'none');
      assert.deepEqual(await readAll(manager(dataDir)), {}, 'nothing is left, and reading does not crash');
      await ns.withWriteLock(() => ns.set('c', 3));
      assert.deepEqual(await readAll(manager(dataDir)), { c: 3 }, 'the directory is recreated by the next write');
    });
  });
}
