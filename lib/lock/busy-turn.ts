/**
 * Lets the event loop turn during a burst of lock work. Taking a lock and opening its view
 * is synchronous work at heart (a lock file, an LMDB open), chained through callbacks and
 * promises, so hundreds of locks taken at once run as one chain that keeps timers from
 * firing, among them the ones that renew the leases of the locks already held: past
 * `lockStale`, every lock of the burst is lost and nothing commits.
 * @module
 */

/** How long lock work may run before it lets timers fire. */
export const BUSY_TURN_MS = 20;

let turnStarted = performance.now();
let nextTurn: Promise<void> | undefined;

/**
 * `undefined` unless lock work has run for {@link BUSY_TURN_MS} since the event loop last
 * turned for it; then the next turn of the loop (timers fire first), shared by every caller
 * that waits meanwhile. Check it right before the synchronous work, with no `await` between:
 * callers that interleave would otherwise all pass the check before any of them works.
 */
export function busyTurn(): Promise<void> | undefined {
  if (performance.now() - turnStarted < BUSY_TURN_MS) return undefined;
  nextTurn ??= new Promise<void>((resolve) => {
    setImmediate(() => {
      nextTurn = undefined;
      turnStarted = performance.now();
      resolve();
    });
  });
  return nextTurn;
}
