/**
 * FileLock's takeover and fence against the interleavings a killed process can cause: a
 * takeover that comes too late must not remove the lock a faster process now holds, and the
 * fence must notice a lock file replaced by another, even one with the same mtime. A holder
 * with a longer lease than the taker's, which its lock file records, keeps its lock.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type DirectoryResult, dir } from 'tmp-promise';
import { LockCompromisedError } from '../../lib/errors.js';
import { FileLock, removeStaleLockEntry } from '../../lib/lock/file-lock.js';

const STALE = 2000;

function makeStale(entry: string): void {
  setAge(entry, 2 * STALE);
}

/** Sets the entry's mtime `ms` into the past, as if its holder had not refreshed it since. */
function setAge(entry: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  fs.utimesSync(entry, then, then);
}

/** What another process does in a takeover: removes `entry` and creates its own; returns the new one's stats. */
function replaceWithFresh(entry: string): fs.Stats {
  fs.unlinkSync(entry);
  fs.writeFileSync(entry, '', { flag: 'wx' });
  return fs.statSync(entry);
}

/** Runs `body` while the first stat of `target` for which `when()` holds runs `after()` right after it. */
async function afterFirstStat<T>(
  target: string,
  when: () => boolean,
  after: () => void,
  body: () => T | Promise<T>,
): Promise<T> {
  const originals = { statSync: fs.statSync, lstatSync: fs.lstatSync };
  let fired = false;
  for (const name of ['statSync', 'lstatSync'] as const) {
    const original = originals[name] as (...args: unknown[]) => unknown;
    (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const result = original(...args);
      if (!fired && args[0] === target && result && when()) {
        fired = true;
        after();
      }
      return result;
    };
  }
  try {
    return await body();
  } finally {
    Object.assign(fs, originals);
  }
}

describe('FileLock', () => {
  let tmp: DirectoryResult;
  let target: string;
  let lockPath: string;

  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    target = path.join(tmp.path, 'ns.json');
    lockPath = `${target}.lock`;
  });
  afterEach(() => tmp.cleanup());

  const lock = () => new FileLock(target, { stale: STALE, name: 'ns' });

  it('a takeover that comes after another process replaced the stale lock leaves the new lock alone', async () => {
    fs.writeFileSync(lockPath, '');
    makeStale(lockPath);
    let replacement: fs.Stats | undefined;
    const late = lock();
    // The other process removes the stale lock and creates its own between this one's last look and its removal.
    const acquired = await afterFirstStat(
      lockPath,
      () => fs.existsSync(`${lockPath}.takeover`),
      () => {
        replacement = replaceWithFresh(lockPath);
      },
      () => late.tryAcquire(),
    );
    assert.ok(replacement, 'the interleaving happened');
    assert.equal(acquired, false);
    const now = fs.statSync(lockPath);
    assert.equal(now.ino, replacement.ino, 'the lock file is the one the other process made');
    assert.deepEqual(
      fs.readdirSync(tmp.path).filter((name) => name !== 'ns.json.lock'),
      [],
      'no guard and nothing set aside left behind',
    );
  });

  it('a takeover of a stale takeover guard that comes late leaves the new guard alone', async () => {
    const guard = `${lockPath}.takeover`;
    fs.writeFileSync(guard, '');
    makeStale(guard);
    let replacement: fs.Stats | undefined;
    const removed = await afterFirstStat(
      guard,
      () => true,
      () => {
        replacement = replaceWithFresh(guard);
      },
      () => removeStaleLockEntry(guard, STALE),
    );
    assert.equal(removed, undefined);
    assert.equal(fs.statSync(guard).ino, replacement?.ino);
    assert.deepEqual(fs.readdirSync(tmp.path), ['ns.json.lock.takeover']);
  });

  it('removes a stale lock entry, file or directory, and reports what it removed', () => {
    fs.writeFileSync(lockPath, '');
    fs.mkdirSync(`${lockPath}.takeover`);
    for (const entry of [lockPath, `${lockPath}.takeover`]) {
      makeStale(entry);
      const removed = removeStaleLockEntry(entry, STALE);
      assert.ok(removed && Date.now() - removed.mtimeMs >= STALE);
      assert.equal(fs.existsSync(entry), false);
    }
    assert.equal(removeStaleLockEntry(lockPath, STALE), undefined, 'a missing entry');
    fs.writeFileSync(lockPath, '');
    assert.equal(removeStaleLockEntry(lockPath, STALE), undefined, 'a fresh entry');
    assert.ok(fs.existsSync(lockPath));
  });

  it('takes over a stale symbolic link in place of the lock file (dangling or not) without following it', async () => {
    const elsewhere = path.join(tmp.path, 'elsewhere');
    fs.writeFileSync(elsewhere, 'untouched');
    for (const destination of ['/nonexistent/sessionlock', elsewhere]) {
      fs.symlinkSync(destination, lockPath);
      const old = new Date(Date.now() - 2 * STALE);
      fs.lutimesSync(lockPath, old, old);
      const holder = lock();
      assert.equal(holder.heldElsewhere(), false, 'a stale link holds nothing');
      assert.equal(await holder.tryAcquire(), true, `a link to ${destination}`);
      assert.ok(fs.lstatSync(lockPath).isFile(), 'our own lock file replaced the link');
      await holder.release();
    }
    assert.equal(fs.readFileSync(elsewhere, 'utf8'), 'untouched');
  });

  describe('a lease recorded by the holder', () => {
    const LONG = 60_000;
    const SHORT = 10_000;
    const withStale = (stale: number) => new FileLock(target, { stale, name: 'ns' });

    it('keeps a lock from a taker with a shorter lease until it is older than the holder’s', async () => {
      const holder = withStale(LONG);
      assert.equal(await holder.tryAcquire(), true);
      const record = fs.readFileSync(lockPath, 'latin1');
      assert.equal(record, String(LONG), 'the lock file records the lease');
      await holder.release();
      // the same lock file, held by another process
      fs.writeFileSync(lockPath, record, { flag: 'wx' });
      const held = fs.statSync(lockPath);
      setAge(lockPath, 2 * SHORT);
      const taker = withStale(SHORT);
      assert.equal(taker.heldElsewhere(), true);
      assert.equal(await taker.tryAcquire(), false);
      assert.equal(fs.statSync(lockPath).ino, held.ino, 'the holder’s lock file stays');
      setAge(lockPath, LONG + 1000);
      assert.equal(taker.heldElsewhere(), false);
      assert.equal(await taker.tryAcquire(), true);
      assert.equal(fs.readFileSync(lockPath, 'latin1'), String(SHORT));
      await taker.release();
    });

    it('judges an empty lock file (an older version’s) or one without a record by the taker’s own lease', async () => {
      for (const content of ['', 'garbage', '60000\n', '99999999999999']) {
        fs.writeFileSync(lockPath, content);
        setAge(lockPath, 2 * SHORT);
        const taker = withStale(SHORT);
        assert.equal(await taker.tryAcquire(), true, JSON.stringify(content));
        await taker.release();
      }
    });

    it('keeps a takeover mutex whose holder recorded a longer lease', () => {
      const guard = `${lockPath}.takeover`;
      fs.writeFileSync(guard, String(LONG));
      setAge(guard, 2 * SHORT);
      assert.equal(removeStaleLockEntry(guard, SHORT), undefined);
      assert.deepEqual(fs.readdirSync(tmp.path), ['ns.json.lock.takeover']);
      setAge(guard, LONG);
      assert.ok(removeStaleLockEntry(guard, SHORT));
    });

    it('judges an entry again by its own record once set aside', async () => {
      fs.writeFileSync(lockPath, '');
      setAge(lockPath, 2 * SHORT);
      let replacement: fs.Stats | undefined;
      // Between the first look and the move aside, a holder with the longer lease takes the place of the stale lock.
      const removed = await afterFirstStat(
        lockPath,
        () => true,
        () => {
          fs.unlinkSync(lockPath);
          fs.writeFileSync(lockPath, String(LONG), { flag: 'wx' });
          setAge(lockPath, 2 * SHORT);
          replacement = fs.statSync(lockPath);
        },
        () => removeStaleLockEntry(lockPath, SHORT),
      );
      assert.equal(removed, undefined);
      assert.equal(fs.statSync(lockPath).ino, replacement?.ino, 'the live holder’s lock file is back');
      assert.deepEqual(fs.readdirSync(tmp.path), ['ns.json.lock']);
    });
  });

  it('verify() refuses a lock file another process put in its place, even with the same mtime', async () => {
    const holder = lock();
    assert.equal(await holder.tryAcquire(), true);
    holder.verify();
    const ours = fs.statSync(lockPath);
    fs.unlinkSync(`${lockPath}`);
    const keep = `${lockPath}.keep`;
    fs.writeFileSync(keep, '');
    fs.writeFileSync(lockPath, '', { flag: 'wx' });
    fs.utimesSync(lockPath, ours.atime, ours.mtime);
    fs.unlinkSync(keep);
    assert.notEqual(fs.statSync(lockPath).ino, ours.ino);
    assert.throws(() => holder.verify(), LockCompromisedError);
    await assert.rejects(holder.release(), LockCompromisedError);
    assert.ok(fs.existsSync(lockPath), "release leaves the other process's lock in place");
  });
});
