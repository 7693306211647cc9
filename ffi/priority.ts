/**
 * Raising the scheduling priority of this whole process (every thread), so
 * that a watcher wakes ahead of the workload it watches: on a busy machine a
 * short-lived process can otherwise exec and exit before procwatch reads its
 * command line. forkstat offers the same (`-r`).
 *
 * @module
 */

import { listDirectory } from "./proc_fs.ts";
import { readLink } from "./proc_fs.ts";
import { check, libc } from "./libc.ts";

/** `PRIO_PROCESS` (sys/resource.h) and `SCHED_FIFO` (include/uapi/linux/sched.h). */
const PRIO_PROCESS = 0;
const SCHED_FIFO = 1;

/**
 * How much to raise the priority.
 *
 * @example
 * ```ts
 * import type { PriorityLevel } from "@procwatch/procwatch/proc";
 * const level: PriorityLevel = "realtime";
 * console.log(level);
 * ```
 */
export type PriorityLevel = "high" | "realtime";

/**
 * Raises every thread of this process: `"high"` to nice -20, `"realtime"` to
 * `SCHED_FIFO` priority 1 (above every normal task; needs root). Threads
 * created later inherit it. Throws {@linkcode ErrnoError} when not allowed.
 *
 * @example
 * ```ts
 * import { raisePriority } from "@procwatch/procwatch/proc";
 * raisePriority("high");
 * ```
 */
export function raisePriority(level: PriorityLevel): void {
  const c = libc();
  const param = new Uint8Array(4);
  new DataView(param.buffer).setInt32(0, 1, true);
  for (const name of listDirectory("/proc/thread-self/..") ?? []) {
    const tid = Number(name);
    if (!Number.isInteger(tid)) continue;
    if (level === "realtime") {
      check("sched_setscheduler", c.sched_setscheduler(tid, SCHED_FIFO, param), `(${tid})`);
    } else {
      check("setpriority", c.setpriority(PRIO_PROCESS, tid, -20), `(${tid})`);
    }
  }
}

/**
 * Raises the calling thread only to nice -20 (needs root or CAP_SYS_NICE).
 * Returns whether it worked; never throws. For a helper thread that does
 * little but must run the moment it wakes.
 *
 * @example
 * ```ts
 * import { raiseThisThread } from "./priority.ts";
 * raiseThisThread();
 * ```
 */
export function raiseThisThread(): boolean {
  // "/proc/thread-self" links to "PID/task/TID".
  const tid = Number(readLink("/proc/thread-self")?.split("/").at(-1));
  if (!Number.isInteger(tid) || tid <= 0) return false;
  return libc().setpriority(PRIO_PROCESS, tid, -20) === 0;
}
