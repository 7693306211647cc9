/**
 * Process names for output: what `comm` each pid has, kept current from the
 * events themselves so that a name is known even after the process is gone.
 *
 * @module
 */

import { readFileText } from "../ffi/proc_fs.ts";
import type { ProcEvent } from "./events.ts";

const MAX_ENTRIES = 65536;

/**
 * A bounded pid → name map fed by events, with /proc as the source of truth
 * for processes seen for the first time or after exec.
 *
 * @example
 * ```ts ignore
 * import { ProcessNames } from "./names.ts";
 * const names = new ProcessNames();
 * console.log(names.get(1)); // "systemd"
 * ```
 */
export class ProcessNames {
  readonly #names = new Map<number, string>();

  /** The name of `pid`: remembered, else read from /proc, else `"?"`. */
  get(pid: number): string {
    const known = this.#names.get(pid);
    if (known !== undefined) return known;
    const read = readFileText(`/proc/${pid}/comm`, 64)?.trimEnd();
    if (read === undefined || read === "") return "?";
    this.#remember(pid, read);
    return read;
  }

  /** Name for an event's process, updating what is remembered. Call once per event, in order. */
  forEvent(event: ProcEvent): string {
    switch (event.type) {
      case "lost":
        return "";
      case "fork": {
        const parent = this.get(event.parentPid);
        if (!event.thread) this.#remember(event.childPid, parent);
        return parent;
      }
      case "exec":
        this.#names.delete(event.pid);
        return this.get(event.pid);
      case "comm":
        if (event.pid === event.tid) this.#remember(event.pid, event.comm);
        return event.comm;
      case "exit": {
        const name = this.get(event.pid);
        if (event.pid === event.tid) this.#names.delete(event.pid);
        return name;
      }
      default:
        return this.get(event.pid);
    }
  }

  /** How many pids are remembered (bounded by 65,536). */
  get size(): number {
    return this.#names.size;
  }

  #remember(pid: number, name: string): void {
    if (this.#names.size >= MAX_ENTRIES) this.#names.clear();
    this.#names.set(pid, name);
  }
}
