/**
 * The cheap, per-event choice of what a watcher delivers: event types,
 * threads, failed exits only, and pids. It runs on every kernel event before
 * any process filter that may read /proc (those are in filters.ts and
 * lib/process/enrich.ts).
 *
 * May import: lib/events/ and this room's options.ts (types only).
 *
 * @module
 */

import { isThreadEvent, type KernelEvent } from "../events/events.ts";
import type { WatchSettings } from "./options.ts";

/**
 * Whether an event passes `types`, `threads`, `failedOnly` and `pids`.
 *
 * @example
 * ```ts
 * import { EventSelection } from "./select.ts";
 * import { resolveOptions } from "./options.ts";
 * const select = new EventSelection(resolveOptions({ events: ["exit"], failedOnly: true }));
 * console.log(select.accepts({
 *   type: "exit", pid: 7, tid: 7, cpu: 0, timestampNs: 0n, time: new Date(0),
 *   exitCode: 0, signal: null, coreDumped: false, status: 0, exitSignal: 17, parentPid: 1, parentTid: 1,
 * })); // false: it succeeded
 * ```
 */
export class EventSelection {
  readonly #types: ReadonlySet<string>;
  readonly #pids: ReadonlySet<number> | null;
  readonly #threads: boolean;
  readonly #failedOnly: boolean;

  /** Selects what `settings` ask for. */
  constructor(settings: Pick<WatchSettings, "types" | "pids" | "threads" | "failedOnly">) {
    this.#types = settings.types;
    this.#pids = settings.pids;
    this.#threads = settings.threads;
    this.#failedOnly = settings.failedOnly;
  }

  /** Whether `event` is one the watcher delivers (before process filters). */
  accepts(event: KernelEvent): boolean {
    if (!this.#types.has(event.type)) return false;
    if (!this.#threads && isThreadEvent(event)) return false;
    if (this.#failedOnly && event.type === "exit" && event.status === 0) return false;
    if (this.#pids !== null) {
      if (event.type === "fork") {
        // A new thread belongs to its process; its `parentPid` is that process's
        // parent (task->real_parent, copy_process()), which must not pull in the
        // threads of a watched pid's children. Its exit carries the process's pid too.
        if (event.thread) return this.#pids.has(event.childPid);
        return this.#pids.has(event.childPid) || this.#pids.has(event.parentPid);
      }
      return this.#pids.has(event.pid);
    }
    return true;
  }
}
