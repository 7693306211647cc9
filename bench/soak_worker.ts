/**
 * Worker of bench/soak.ts: makes short-lived processes on its own thread
 * (so the watcher's thread only drains) until told to stop.
 *
 * @module
 */

import { setStormExitSignal, spawnExitingPids } from "../tests/support/ffi/clone.ts";

// Storm children exit without SIGCHLD: no signal delivery per process.
setStormExitSignal(0);

interface WorkerScope {
  onmessage: ((event: MessageEvent<"stop">) => void) | null;
  postMessage(message: number): void;
}
const scope = self as unknown as WorkerScope;

let running = true;
scope.onmessage = () => running = false;
let made = 0;
while (running) {
  made += spawnExitingPids(200).length;
  scope.postMessage(made);
  // Let the "stop" message in.
  await new Promise((resolve) => setTimeout(resolve, 0));
}
self.close();
