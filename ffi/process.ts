/**
 * Process-level libc calls: existence checks and signals.
 *
 * @module
 */

import { Errno, errno, ErrnoError, libc } from "./libc.ts";

/**
 * Whether a process with this pid exists (zombies included): `kill(pid, 0)`
 * succeeds or fails with `EPERM` (exists, not ours to signal).
 */
export function processExists(pid: number): boolean {
  if (libc().kill(pid, 0) === 0) return true;
  return errno() === Errno.EPERM;
}

/** Sends `signal` to `pid`. Throws {@linkcode ErrnoError} (e.g. `ESRCH`). */
export function sendSignal(pid: number, signal: number): void {
  if (libc().kill(pid, signal) < 0) throw new ErrnoError("kill", errno(), `(${pid}, ${signal})`);
}

/** The effective user id of this process. */
export function effectiveUid(): number {
  return libc().geteuid();
}

/** The thread id of the JS thread (Deno runs JS on a thread other than the process's first). */
export function currentThreadId(): number {
  return libc().gettid();
}
