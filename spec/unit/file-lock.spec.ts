/**
 * FileLock's takeover and fence against the interleavings a killed process can cause: a
 * takeover that comes too late must not remove the lock a faster process now holds, and the
 * fence must notice a lock file replaced by another, even one with the same mtime.
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
  const old = new Date(Date.now() - 2 * STALE);
  fs.utimesSync(entry, old, old);
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
