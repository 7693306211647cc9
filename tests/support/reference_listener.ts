/**
 * A Worker that listens with a large receive buffer on a thread of its own,
 * so it keeps up while the test's main thread is busy making a storm: the
 * reference that the lossy watcher's loss reports are checked against.
 *
 * It records, in arrival order, each event's CPU and a key: the pid for an
 * exit of a child of `parent` (markers and storm processes), else 0.
 *
 * @module
 */

import type { EventType } from "../../lib/events.ts";
import { watch } from "../../lib/watcher.ts";

/**
 * Messages the test sends.
 *
 * @example
 * ```ts
 * import type { ReferenceCommand } from "./reference_listener.ts";
 * const start: ReferenceCommand = { type: "start", parent: Deno.pid, receiveBufferBytes: 64 << 20 };
 * ```
 */
export type ReferenceCommand =
  | { type: "start"; parent: number; events?: EventType[]; receiveBufferBytes: number }
  | { type: "stop"; endPids: number[] };

/**
 * Messages the worker sends back.
 *
 * @example
 * ```ts
 * import type { ReferenceReply } from "./reference_listener.ts";
 * const ready: ReferenceReply = { type: "ready" };
 * ```
 */
export type ReferenceReply =
  | { type: "ready" }
  | {
    type: "done";
    cpus: number[];
    keys: number[];
    lost: number;
    /** ACK messages received: they take sequence numbers but are not events. */
    acks: number;
  }
  | { type: "error"; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<ReferenceCommand>) => void) | null;
  postMessage(message: ReferenceReply): void;
}

const scope = globalThis as unknown as WorkerScope;
let pending: Set<number> | null = null;
const seenExits = new Set<number>();
let stop: (() => void) | null = null;

scope.onmessage = (message) => {
  const command = message.data;
  if (command.type === "start") {
    run(command).catch((error) => scope.postMessage({ type: "error", message: String(error) }));
  } else {
    pending = new Set(command.endPids.filter((pid) => !seenExits.has(pid)));
    if (pending.size === 0) stop?.();
  }
};

async function run(command: Extract<ReferenceCommand, { type: "start" }>): Promise<void> {
  const watcher = watch({
    events: command.events,
    threads: true,
    handleSignals: false,
    receiveBufferBytes: command.receiveBufferBytes,
  });
  stop = () => watcher.close();
  const cpus: number[] = [];
  const keys: number[] = [];
  scope.postMessage({ type: "ready" });
  for await (const batch of watcher.batches()) {
    for (const event of batch) {
      if (event.type === "lost") continue;
      cpus.push(event.cpu ?? -1);
      const key = event.type === "exit" && event.parentPid === command.parent ? event.pid : 0;
      keys.push(key);
      if (key !== 0) {
        seenExits.add(key);
        if (pending?.delete(key) && pending.size === 0) watcher.close();
      }
    }
  }
  const stats = watcher.stats;
  scope.postMessage({
    type: "done",
    cpus,
    keys,
    lost: stats.lostByKernel + stats.lostInQueue,
    acks: stats.received - stats.delivered - stats.filtered - stats.unknown,
  });
}
