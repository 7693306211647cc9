/**
 * The watcher's bounded event queue (lib/watch/queue.ts).
 */

import assert from "node:assert/strict";
import { BoundedQueue } from "../lib/watch/queue.ts";

Deno.test("queue: keeps order and refuses a push when full", () => {
  const queue = new BoundedQueue<number>(3);
  assert.ok(queue.push(1) && queue.push(2) && queue.push(3));
  assert.equal(queue.push(4), false);
  assert.equal(queue.shift(), 1);
  assert.ok(queue.push(5));
  assert.deepEqual(queue.takeAll(), [2, 3, 5]);
  assert.equal(queue.length, 0);
  assert.throws(() => new BoundedQueue(0), RangeError);
});
