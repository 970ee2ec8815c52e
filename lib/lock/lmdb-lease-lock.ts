/**
 * The cross-process lock of a dbm namespace: a lease record inside its own LMDB file.
 * Claiming, renewing and committing are LMDB write transactions, which LMDB serialises
 * across processes with its robust mutex; a commit checks the token in the same
 * transaction that writes (a fence), so a holder that lost its lease writes nothing.
 * @module
 */
import type { RootDatabase } from 'lmdb';
import { LockCompromisedError } from '../errors.js';
import { LeaseLock, type LeaseOptions } from './lease-lock.js';

/** The reserved key of the lease record; numbers sort before the (string) data keys. */
export const LEASE_KEY = 0;

interface LeaseRecord {
  token: string;
  expiresAt: number;
}

function readLease(db: RootDatabase<string, string | number>): LeaseRecord | undefined {
  const raw = db.get(LEASE_KEY);
  if (typeof raw !== 'string') return undefined;
  const space = raw.indexOf(' ');
  return { token: raw.slice(0, space), expiresAt: Number(raw.slice(space + 1)) };
}

function isLive(lease: LeaseRecord | undefined, now = Date.now()): lease is LeaseRecord {
  return lease !== undefined && lease.expiresAt > now;
}

export class LmdbLeaseLock extends LeaseLock {
  readonly #db: RootDatabase<string, string | number>;

  constructor(db: RootDatabase<string, string | number>, lease: LeaseOptions) {
    super(lease);
    this.#db = db;
  }

  /** Whether someone (in any process) holds an unexpired lease on `db`. Reads the latest snapshot. */
  static heldBySomeone(db: RootDatabase<string, string | number>): boolean {
    db.resetReadTxn();
    return isLive(readLease(db));
  }

  /** Whether this lock still holds an unexpired lease in the file. */
  isHeld(): boolean {
    this.#db.resetReadTxn();
    const lease = readLease(this.#db);
    return isLive(lease) && lease.token === this.token;
  }

  /**
   * Runs `write` in one transaction, fenced by the lease: unless this lock still holds an
   * unexpired lease, writes nothing and throws {@link LockCompromisedError}.
   */
  writeFenced(write: () => void): void {
    const token = this.token;
    const written = this.#db.transactionSync(() => {
      const lease = readLease(this.#db);
      if (!isLive(lease) || lease.token !== token) return false;
      write();
      return true;
    });
    if (!written) {
      throw new LockCompromisedError(
        this.lease.name,
        'its lease ran out or another holder took it over before the commit',
      );
    }
  }

  protected override claim(token: string): boolean {
    return this.#db.transactionSync(() => {
      const now = Date.now();
      if (isLive(readLease(this.#db), now)) return false;
      this.#db.put(LEASE_KEY, `${token} ${now + this.lease.stale}`);
      return true;
    });
  }

  protected override extend(token: string): boolean {
    return this.#db.transactionSync(() => {
      const now = Date.now();
      const lease = readLease(this.#db);
      if (!isLive(lease, now) || lease.token !== token) return false;
      this.#db.put(LEASE_KEY, `${token} ${now + this.lease.stale}`);
      return true;
    });
  }

  protected override unclaim(token: string): void {
    this.#db.transactionSync(() => {
      if (readLease(this.#db)?.token === token) this.#db.remove(LEASE_KEY);
    });
  }
}
