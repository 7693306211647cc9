/**
 * A bounded FIFO between the socket drain and a consumer.
 *
 * @module
 */

/**
 * A ring buffer of at most `capacity` items; `push` refuses when full.
 *
 * @example
 * ```ts
 * import { BoundedQueue } from "./queue.ts";
 * const queue = new BoundedQueue<number>(2);
 * queue.push(1);
 * console.log(queue.shift()); // 1
 * ```
 */
export class BoundedQueue<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #length = 0;
  #highWater = 0;

  /** Creates a queue holding at most `capacity` items. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`queue capacity must be a positive integer, got ${capacity}`);
    }
    this.#items = new Array(capacity);
  }

  /** How many items are queued. */
  get length(): number {
    return this.#length;
  }

  /** The most items ever queued at once (the queue's high-water mark). */
  get highWater(): number {
    return this.#highWater;
  }

  /** Appends an item; returns `false` (and keeps nothing) when full. */
  push(item: T): boolean {
    if (this.#length === this.capacity) return false;
    this.#items[(this.#head + this.#length) % this.capacity] = item;
    this.#length++;
    if (this.#length > this.#highWater) this.#highWater = this.#length;
    return true;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.capacity;
    this.#length--;
    return item;
  }

  /** Removes and returns every queued item, oldest first. */
  takeAll(): T[] {
    const out = new Array<T>(this.#length);
    for (let i = 0; i < out.length; i++) out[i] = this.shift() as T;
    return out;
  }
}
