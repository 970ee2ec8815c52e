/**
 * Waiting for something held elsewhere (another process, another machine) without a busy
 * loop: jittered exponential backoff, bounded by a deadline.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffOptions {
  /** Epoch ms after which to give up. */
  deadline: number;
  /** First delay in ms. */
  minDelay?: number;
  /** Largest delay in ms. */
  maxDelay?: number;
  /** Called once, before the first wait. */
  onWait?: () => void;
  /** Wait before the first attempt (the caller has just made one). @default false */
  waitFirst?: boolean;
}

/**
 * Calls `attempt` until it returns something other than `undefined`, sleeping between
 * attempts. Resolves `undefined` when the deadline passes first.
 */
export async function retryWithBackoff<T>(
  attempt: () => T | undefined | Promise<T | undefined>,
  { deadline, minDelay = 1, maxDelay = 32, onWait, waitFirst = false }: BackoffOptions,
): Promise<T | undefined> {
  let delay = minDelay;
  for (let tries = 0; ; tries++) {
    if (tries > 0 || !waitFirst) {
      const result = await attempt();
      if (result !== undefined) return result;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) return undefined;
    if (tries === 0) onWait?.();
    await sleep(Math.min(remaining, delay * (0.5 + Math.random())));
    delay = Math.min(maxDelay, delay * 2);
  }
}
