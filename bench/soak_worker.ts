/**
 * Worker of bench/soak.ts: makes short-lived processes on its own thread
 * (so the watcher's thread only drains) until told to stop.
 *
 * @module
 */

import { spawnStorm } from "../ffi/spawn_storm.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<"stop">) => void) | null;
  postMessage(message: number): void;
}
const scope = self as unknown as WorkerScope;

let running = true;
scope.onmessage = () => running = false;
let made = 0;
while (running) {
  made += spawnStorm(200).length;
  scope.postMessage(made);
  // Let the "stop" message in.
  await new Promise((resolve) => setTimeout(resolve, 0));
}
self.close();
