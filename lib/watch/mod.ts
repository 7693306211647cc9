/**
 * The watch stream: `watch()` and its `ProcWatcher`, an `AsyncIterable` of
 * typed events closed by `close()` or `using`, made of small parts: options
 * and their defaults (options.ts), the subscription from open to close
 * (subscribe.ts), the pump that polls and drains (pump.ts, receive.ts), loss
 * accounting (loss.ts), the bounded queue (queue.ts), the per-event
 * selection (select.ts), counters (stats.ts), shutdown however the process
 * ends (shutdown.ts, lifecycle.ts), and the process context plugged in
 * (context.ts, process_context.ts).
 *
 * What the package exports of this room, `"."` re-exports from here.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * using watcher = watch({ events: ["exit"] });
 * for await (const event of watcher) if (event.type === "exit") console.log(event.pid);
 * ```
 *
 * May import: ground/, ffi/, lib/events/, lib/connector/, lib/process/.
 *
 * @module
 */

// Loading it plugs the process context into every watcher (context.ts).
import "./process_context.ts";

export { ProcWatcher, watch, type WatcherStats, type WatchOptions } from "./watcher.ts";
export { closeAll } from "./lifecycle.ts";
