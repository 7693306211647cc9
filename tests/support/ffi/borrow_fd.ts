/**
 * Borrowing another process's open descriptor (`pidfd_getfd(2)`, Linux ≥ 5.6).
 *
 * The copy refers to the same open socket, so the socket outlives the owner's
 * `close()` and exit. Tests use this to ask the kernel, after a watcher
 * process has ended, whether that very socket is still registered as a proc
 * event listener. Needs ptrace rights over the target (root does).
 *
 * @module
 */

import { ErrnoError } from "../../../ffi/libc.ts";
import { errno, testLibc } from "./libc.ts";

/** `__NR_pidfd_open`, `__NR_pidfd_getfd`: the same on every architecture (asm-generic/unistd.h). */
const SYS_PIDFD_OPEN = 434n;
const SYS_PIDFD_GETFD = 438n;

/**
 * Returns a descriptor of this process that refers to descriptor `fd` of
 * process `pid`. Throws {@linkcode ErrnoError} (`ESRCH` gone, `EBADF` no such
 * descriptor, `EPERM` not allowed).
 *
 * @example
 * ```ts ignore
 * import { borrowDescriptor } from "./borrow_fd.ts";
 * const copy = borrowDescriptor(1234, 7);
 * ```
 */
export function borrowDescriptor(pid: number, fd: number): number {
  const c = testLibc();
  const pidfd = c.syscall2(SYS_PIDFD_OPEN, BigInt(pid), 0n);
  if (pidfd < 0n) throw new ErrnoError("pidfd_open", errno(), `(${pid})`);
  try {
    const copy = c.syscall3(SYS_PIDFD_GETFD, pidfd, BigInt(fd), 0n);
    if (copy < 0n) throw new ErrnoError("pidfd_getfd", errno(), `(${pid}, ${fd})`);
    return Number(copy);
  } finally {
    c.close(Number(pidfd));
  }
}
