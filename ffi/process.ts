/**
 * Process-level libc calls: existence checks and signals.
 *
 * @module
 */

import { Errno, errno, ErrnoError, libc } from "./libc.ts";

/**
 * Whether a process with this pid exists (zombies included): `kill(pid, 0)`
 * succeeds or fails with `EPERM` (exists, not ours to signal).
 *
 * @example
 * ```ts
 * import { processExists } from "@procwatch/procwatch/proc";
 * console.log(processExists(Deno.pid)); // true
 * ```
 */
export function processExists(pid: number): boolean {
  if (libc().kill(pid, 0) === 0) return true;
  return errno() === Errno.EPERM;
}

/**
 * Whether `pid` is a process (a thread group's leader) that exists:
 * tgkill(pid, pid, 0) fails with ESRCH for a missing pid and for a thread id
 * that is not its group's leader (do_tkill(), kernel/signal.c), and with EPERM
 * only after that check. `false` too when libc has no tgkill (before glibc 2.30).
 */
export function isProcess(pid: number): boolean {
  try {
    if (libc().tgkill(pid, pid, 0) === 0) return true;
  } catch {
    return false;
  }
  return errno() === Errno.EPERM;
}

/** Sends `signal` to `pid`. Throws {@linkcode ErrnoError} (e.g. `ESRCH`). */
export function sendSignal(pid: number, signal: number): void {
  if (libc().kill(pid, signal) < 0) throw new ErrnoError("kill", errno(), `(${pid}, ${signal})`);
}

/**
 * Ends the process now with `code` through `_exit(2)`, skipping Deno's
 * teardown (about 0.6 ms here). Only for a CLI that has written all its
 * output synchronously and released everything it registered.
 *
 * @example
 * ```ts
 * import { exitNow } from "@procwatch/procwatch/wait";
 * exitNow(0);
 * ```
 */
export function exitNow(code: number): never {
  libc()._exit(code);
  throw new Error("_exit returned");
}

/** The effective user id of this process. */
export function effectiveUid(): number {
  return libc().geteuid();
}

/** The thread id of the JS thread (Deno runs JS on a thread other than the process's first). */
export function currentThreadId(): number {
  return libc().gettid();
}
