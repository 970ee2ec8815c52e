/**
 * The in-process read/write lock, keyed by the storage a namespace lives in. It queues
 * waiters first come, first served (a waiting writer holds back later readers, so writers
 * are not starved) and forgets keys nobody holds or awaits.
 * @module
 */
import { MAX_TIMER_DELAY } from '../options.js';

/** Gives a held lock back. Calling it twice is a no-op. */
export type Release = () => void;

/** A lock mode: shared (`read`) or exclusive (`write`). */
export type LockMode = 'read' | 'write';

interface Waiter {
  mode: LockMode;
  grant: () => void;
}

interface KeyState {
  readers: number;
  writer: boolean;
  queue: Waiter[];
}

/** What a key's lock looks like at one moment; for diagnostics and tests. */
export interface LockSnapshot {
  readers: number;
  writer: boolean;
  waiting: number;
}

/** Options of {@link KeyedRWLock.acquire}. */
export interface AcquireOptions {
  deadline: number;
  /**
   * `false`: give up at once when the lock is busy. `'readers'`: wait while only readers hold
   * it, give up at once when a writer holds it or waits for it.
   * @default true
   */
  wait?: boolean | 'readers';
  onWait?: () => void;
}

export class KeyedRWLock {
  readonly #keys = new Map<string, KeyState>();
  #sweepAt = MIN_SWEEP_AT;

  /**
   * Takes the lock of `key` in `mode`. Resolves with a release function, or with
   * `undefined` when `deadline` (epoch ms) passes first or, with `wait: false`, when the
   * lock is busy (with `wait: 'readers'`, when a writer holds or awaits it). `onWait` is called once if the call has to queue.
   */
  async acquire(key: string, mode: LockMode, options: AcquireOptions): Promise<Release | undefined> {
    return this.take(key, mode, options);
  }

  /** {@link acquire}, but a lock that is free right now comes back at once, without a promise. */
  take(key: string, mode: LockMode, options: AcquireOptions): Release | Promise<Release | undefined> {
    const state = this.#state(key);
    if (state.queue.length === 0 && this.#grantable(state, mode)) return this.#grant(state, mode);
    if (options.wait === false || (options.wait === 'readers' && hasWriter(state))) {
      this.#forgetIdle();
      return Promise.resolve(undefined);
    }
    options.onWait?.();
    return new Promise<Release | undefined>((resolve) => {
      const waiter: Waiter = {
        mode,
        grant: () => {
          clearTimeout(timer);
          resolve(this.#grant(state, mode));
        },
      };
      const timer = timeoutAt(options.deadline, () => {
        state.queue.splice(state.queue.indexOf(waiter), 1);
        this.#pump(state);
        resolve(undefined);
      });
      state.queue.push(waiter);
    });
  }

  /** How many keys the lock remembers now: those held or awaited, and some idle ones not yet forgotten. */
  get size(): number {
    return this.#keys.size;
  }

  /** The current state of `key`'s lock. */
  snapshot(key: string): LockSnapshot {
    const state = this.#keys.get(key);
    return { readers: state?.readers ?? 0, writer: state?.writer ?? false, waiting: state?.queue.length ?? 0 };
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) {
      state = { readers: 0, writer: false, queue: [] };
      this.#keys.set(key, state);
    }
    return state;
  }

  #grantable(state: KeyState, mode: LockMode): boolean {
    return mode === 'read' ? !state.writer : !state.writer && state.readers === 0;
  }

  #grant(state: KeyState, mode: LockMode): Release {
    if (mode === 'read') state.readers++;
    else state.writer = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (mode === 'read') state.readers--;
      else state.writer = false;
      this.#pump(state);
    };
  }

  #pump(state: KeyState): void {
    while (state.queue.length > 0) {
      const next = state.queue[0] as Waiter;
      if (!this.#grantable(state, next.mode)) break;
      state.queue.shift();
      next.grant();
    }
    this.#forgetIdle();
  }

  /**
   * Forgets idle keys in batches, once the map has doubled since the last sweep: a map that
   * keeps emptying and refilling with every lock costs V8 several times more than one that
   * keeps a few idle entries.
   */
  #forgetIdle(): void {
    if (this.#keys.size < this.#sweepAt) return;
    for (const [key, state] of this.#keys) {
      if (state.readers === 0 && !state.writer && state.queue.length === 0) this.#keys.delete(key);
    }
    this.#sweepAt = Math.max(MIN_SWEEP_AT, 2 * this.#keys.size);
  }
}

function hasWriter(state: KeyState): boolean {
  return state.writer || state.queue.some((waiter) => waiter.mode === 'write');
}

/** How many keys the lock may remember before it forgets the idle ones. */
const MIN_SWEEP_AT = 1024;

/** Runs `fn` at `deadline` (epoch ms); no timer at all for a deadline beyond what timers can hold. */
function timeoutAt(deadline: number, fn: () => void): NodeJS.Timeout | undefined {
  const delay = Math.max(0, deadline - Date.now());
  return delay > MAX_TIMER_DELAY ? undefined : setTimeout(fn, delay);
}

/** The lock every NamespaceManager in this process shares. */
export const processLocks = new KeyedRWLock();
