/**
 * What a pid given by a user may be: within the kernel's pid range, naming a
 * process (not one of its threads) that exists. One check for `watch -p`,
 * `--tree`, `--ppid` and `wait`, so that the same input gets the same answer.
 *
 * @module
 */

import { readFileText } from "../../ffi/proc_fs.ts";
import { processExists } from "../../ffi/process.ts";
import { NoSuchProcessError, UsageError } from "../../ground/errors.ts";
import { readProcStatus } from "./proc_stat.ts";

export { PID_MAX_LIMIT } from "../../ground/pid_limits.ts";

/**
 * This system's `/proc/sys/kernel/pid_max`: new pids are below it. `null`
 * when it cannot be read. A process created before pid_max was lowered may
 * still hold a pid at or above it, so this names a limit for new processes.
 *
 * @example
 * ```ts
 * import { pidMax } from "@procwatch/procwatch/proc";
 * console.log(pidMax()); // 4194304 on most distributions, 32768 on some
 * ```
 */
export function pidMax(): number | null {
  const text = readFileText("/proc/sys/kernel/pid_max", 64)?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}

/**
 * Checks that `pid` names an existing process, not a thread of one (a thread
 * id has its own `/proc/TID` whose `Tgid` is its process's pid). `use` says
 * what to give instead, e.g. `"wait for"` gives "…: wait for 1234".
 * Throws {@linkcode NoSuchProcessError} (noting pid_max when the pid is above
 * it) or {@linkcode UsageError} for a thread id.
 *
 * @param pid The process id to check.
 * @param use What the caller does with it, for the message about a thread id.
 * @throws {NoSuchProcessError} (code `"NO_SUCH_PROCESS"`) when no process has this pid.
 * @throws {UsageError} (code `"USAGE"`) when `pid` is a thread id, naming its process.
 *
 * @example
 * ```ts
 * import { checkProcessId } from "@procwatch/procwatch/proc";
 * checkProcessId(1, "wait for"); // fine: init exists
 * ```
 */
export function checkProcessId(pid: number, use: string): void {
  const status = readProcStatus(pid);
  if (status === null) {
    // /proc may be hidden (hidepid) while the process exists.
    if (processExists(pid)) return;
    const max = pidMax();
    throw new NoSuchProcessError(pid, {
      why: max !== null && pid >= max
        ? `pids here are below ${max}, /proc/sys/kernel/pid_max`
        : undefined,
    });
  }
  if (status.tgid !== pid) {
    throw new UsageError(
      `${pid} is a thread of process ${status.tgid}, not a process: ${use} ${status.tgid}`,
    );
  }
}
