/**
 * A lock held as a random token with a lease in a store (an LMDB record, a Redis key).
 * The holder renews the lease while it holds the lock; a holder that dies stops renewing
 * and its lease runs out, so the lock cannot be stranded. A holder that could not renew in
 * time (a blocked event loop, a paused process) learns it from its next operation through
 * {@link LockCompromisedError}; stores check the token again inside every commit.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { LockCompromisedError } from '../errors.js';
import { MAX_TIMER_DELAY } from '../options.js';

export interface LeaseOptions {
  /** Lease length in milliseconds (the `lockStale` option). */
  stale: number;
  /** Names the lock in errors and log lines. */
  name: string;
  log?: ((line: string) => void) | undefined;
}

/** Renews a third of the way into the lease, at least every 1 ms and at most every {@link MAX_TIMER_DELAY}. */
function renewalInterval(stale: number): number {
  return Math.min(Math.max(1, stale / 3), MAX_TIMER_DELAY);
}

export abstract class LeaseLock {
  protected readonly lease: LeaseOptions;
  #token: string | undefined;
  #expiresAt = 0;
  #lost: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(lease: LeaseOptions) {
    this.lease = lease;
  }

  /** The token of the held lock, if held. */
  get token(): string | undefined {
    return this.#token;
  }

  /** Tries once to take the lock (taking over an expired lease). */
  async tryAcquire(): Promise<boolean> {
    const token = randomBytes(12).toString('base64url');
    const started = Date.now();
    if (!(await this.claim(token))) return false;
    this.#token = token;
    this.#expiresAt = started + this.lease.stale;
    this.#lost = undefined;
    this.#timer = setInterval(() => void this.#renew(), renewalInterval(this.lease.stale));
    this.#timer.unref();
    return true;
  }

  /** Throws {@link LockCompromisedError} unless the lock is held with an unexpired lease (as far as this process knows). */
  verify(): void {
    const lost = this.#lostReason();
    if (lost) throw new LockCompromisedError(this.lease.name, lost);
  }

  /** Gives the lock back; throws {@link LockCompromisedError} if it had been lost meanwhile. */
  async release(): Promise<void> {
    const token = this.#token;
    if (token === undefined) return;
    const lost = this.#lostReason();
    this.abandon();
    await this.unclaim(token);
    if (lost) throw new LockCompromisedError(this.lease.name, lost);
  }

  /** Stops renewing and forgets the lock without touching the store (its record is going away with the data). */
  abandon(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#token = undefined;
  }

  /** Writes `token` as the holder if nobody holds an unexpired lease. */
  protected abstract claim(token: string): boolean | Promise<boolean>;
  /** Renews the lease if `token` still holds it unexpired; false otherwise. */
  protected abstract extend(token: string): boolean | Promise<boolean>;
  /** Deletes the lock if `token` holds it. */
  protected abstract unclaim(token: string): void | Promise<void>;

  #lostReason(): string | undefined {
    if (this.#lost) return this.#lost;
    const overdue = Date.now() - this.#expiresAt;
    if (overdue >= 0) {
      return `its lease of ${this.lease.stale} ms ran out ${overdue} ms ago without renewal (was the event loop blocked?)`;
    }
    return undefined;
  }

  async #renew(): Promise<void> {
    const token = this.#token;
    if (token === undefined) return;
    const started = Date.now();
    let renewed: boolean;
    try {
      renewed = await this.extend(token);
    } catch (error) {
      this.lease.log?.(`could not renew the lock of ${this.lease.name}: ${(error as Error).message}`);
      return;
    }
    if (token !== this.#token) return;
    if (renewed) {
      this.#expiresAt = started + this.lease.stale;
      return;
    }
    this.#lost = 'its lease ran out and it could not be renewed (another holder may have taken it over)';
    this.lease.log?.(`lock of ${this.lease.name} compromised: ${this.#lost}`);
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
