/**
 * What a Session writes or reads beside its loads and saves, never waiting for another
 * request that holds the session's lock (that request is about to write anyway): the access
 * time, the values to encrypt again with the first encryptKey, and whether the session is
 * still stored. A failure is logged, not thrown: none of them is the request's work.
 * @module
 */
import type { NamespaceManager } from './namespace/namespace-manager.js';
import { ACCESSED, CREATED } from './session-record.js';

type Log = ((line: string) => void) | undefined;

/** Writes the access time (encoded as `accessed`) in one storage operation (one Redis script, one LMDB transaction). */
export async function recordAccess(
  manager: NamespaceManager,
  accessed: { value: number; raw: string },
  log: Log,
): Promise<void> {
  try {
    await manager.applyEncoded(new Map([[ACCESSED, accessed]]), { requireKey: CREATED, wait: false });
  } catch (error) {
    log?.(`could not record the access time of session ${manager.namespace}: ${(error as Error).message}`);
  }
}

/** Encrypts again with the first encryptKey the values stored with an older one, and writes the access time, under the write lock. */
export async function resealRecordingAccess(manager: NamespaceManager, accessed: number, log: Log): Promise<void> {
  try {
    if (!(await manager.acquireWriteLock({ wait: false }))) return;
    try {
      if (manager.has(CREATED)) {
        manager.reseal();
        manager.set(ACCESSED, accessed);
      }
    } finally {
      await manager.releaseWriteLock();
    }
  } catch (error) {
    log?.(
      `could not encrypt session ${manager.namespace} again with the first encryptKey: ${(error as Error).message}`,
    );
  }
}

/** Whether the session is stored; `false` when a writer holds its lock or the read fails. */
export async function isStoredNow(manager: NamespaceManager): Promise<boolean> {
  try {
    if (!(await manager.acquireReadLock({ wait: false }))) return false;
  } catch {
    return false;
  }
  try {
    return manager.has(CREATED);
  } finally {
    await manager.releaseReadLock();
  }
}
