/**
 * Whether a process the user named has ended, told from /proc alone (exit
 * events may be filtered out or lost): gone, its pid reused, or a zombie.
 *
 * @module
 */

import { listDirectory } from "../../ffi/proc_fs.ts";
import { processExists } from "../../ffi/process.ts";
import { readProcStat } from "./proc_stat.ts";

/**
 * Whether `pid` (started at `startTicks`, its `/proc/PID/stat` start time, or
 * `null` when unknown) has ended: gone, reused by another process, or a zombie
 * whose threads have all ended.
 *
 * @example
 * ```ts
 * import { processGone } from "@procwatch/procwatch/proc";
 * console.log(processGone(Deno.pid, null)); // false
 * ```
 */
export function processGone(pid: number, startTicks: bigint | null): boolean {
  if (!processExists(pid)) return true;
  const stat = readProcStat(pid);
  if (stat === null) return true;
  if (startTicks !== null && stat.startTicks !== startTicks) return true; // pid reused
  if (stat.state !== "Z" && stat.state !== "X") return false;
  // A zombie leader whose other threads still run has not ended: the kernel
  // delays its release until they exit (delay_group_leader(), kernel/exit.c).
  return (listDirectory(`/proc/${pid}/task`)?.length ?? 0) <= 1;
}
