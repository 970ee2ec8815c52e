/**
 * Running asynchronous operations one after another, in call order, without a promise
 * chain when nothing else is running.
 * @module
 */

/** A queue of asynchronous operations: each starts when the previous one has settled. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #running = 0;

  /** Runs `operation` once every operation run before it has settled; settles as it does. */
  run<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#running === 0 ? operation() : this.#tail.then(operation, operation);
    this.#running++;
    this.#tail = run.then(this.#finished, this.#finished);
    return run;
  }

  readonly #finished = () => {
    this.#running--;
  };
}
