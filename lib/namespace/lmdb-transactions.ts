/**
 * Transactions on a namespace's LMDB file that never build on, or read, anything but the
 * newest commit.
 *
 * The LMDB that lmdb-js 3.5.6 ships can set back the id of the newest commit that it keeps in
 * the lock file every process shares: it writes that id while it opens a file (`mdb_env_open2`),
 * copying it from the meta pages it read a moment before, without taking LMDB's writer lock.
 * When another process commits in between, the shared id goes back, and every transaction that
 * begins before something puts it right (reopening the file does), in whichever process, starts
 * from the commit before the newest: a write transaction would undo the newer commits (and may
 * reuse pages they still use), a read would see the file as it was before them. The meta pages
 * still name the newest commit, so both kinds of transaction compare against them:
 * {@link writeTransaction} checks where it began, and {@link readNewest} checks the commit
 * stamp that every writing transaction leaves ({@link stampCommit}).
 * @module
 */
import type { EnvironmentHandle, LmdbDatabase } from './lmdb-environments.js';

/** The reserved key holding the id of the commit that last wrote the file (data keys are strings). */
const COMMIT_KEY = 0;
/** How many read snapshots are taken before reading inside a write transaction instead. */
const SNAPSHOT_ATTEMPTS = 2;

/**
 * Thrown by {@link writeTransaction} when LMDB began the transaction from an older commit than
 * the newest in the file. Nothing was written; the caller reopens the file and tries again.
 */
export class StaleStartError extends Error {
  constructor(
    readonly file: string,
    readonly started: number,
    readonly newest: number,
  ) {
    super(`LMDB began a write transaction of ${file} from commit ${started}, but the newest is ${newest}`);
    this.name = 'StaleStartError';
  }
}

interface EnvironmentInfo {
  readonly env: { info(): { lastTxnId: number } };
}

/** The id of the newest commit in the file's meta pages (lmdb-js's `env.info()`, not declared in its types). */
export function newestCommit(db: LmdbDatabase): number {
  return (db as unknown as EnvironmentInfo).env.info().lastTxnId;
}

/**
 * Runs `work` in a synchronous write transaction of the handle's file, provided LMDB began it
 * from the newest commit; otherwise throws {@link StaleStartError} before `work` runs. A `work`
 * that writes calls {@link stampCommit} too, so that {@link readNewest} can check its snapshots.
 */
export function writeTransaction<T>(handle: EnvironmentHandle, work: () => T): T {
  const { db } = handle;
  return db.transactionSync(() => {
    const started = db.getWriteTxnId() - 1;
    const newest = newestCommit(db);
    if (started !== newest) throw new StaleStartError(handle.path, started, newest);
    return work();
  });
}

/** Records, inside a write transaction that writes, which commit it is. */
export function stampCommit(db: LmdbDatabase): void {
  db.putSync(COMMIT_KEY, String(db.getWriteTxnId()));
}

/**
 * Runs `work` on a read snapshot of the handle's file, provided the snapshot holds the newest
 * commit when it is checked (its commit stamp equals the newest commit in the meta pages); a
 * snapshot that does not is taken again once, then `work` runs inside a
 * {@link writeTransaction} instead (which waits for a commit under way, and throws
 * {@link StaleStartError} if LMDB began it from an older commit). A file last written before
 * stamps existed is read that way until its next commit.
 */
export function readNewest<T>(handle: EnvironmentHandle, work: () => T): T {
  const { db } = handle;
  for (let attempt = 0; attempt < SNAPSHOT_ATTEMPTS; attempt++) {
    db.resetReadTxn();
    const result = work();
    if (Number(db.get(COMMIT_KEY) ?? 0) === newestCommit(db)) return result;
  }
  return writeTransaction(handle, work);
}
