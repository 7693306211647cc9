/**
 * A minimal ptrace tracer for tests and demos: attach to a process without
 * stopping it for long, then detach (`PTRACE_SEIZE`, `PTRACE_INTERRUPT`,
 * `waitpid(__WALL)`, `PTRACE_DETACH`; include/uapi/linux/ptrace.h).
 *
 * The tracee should not be a child of this Deno process: Deno reaps its own
 * children and could take the wait status the tracer needs.
 *
 * @module
 */

import { check, libc } from "./libc.ts";

const PTRACE_DETACH = 17;
const PTRACE_SEIZE = 0x4206;
const PTRACE_INTERRUPT = 0x4207;
/** `__WALL` (include/uapi/linux/wait.h): wait for any child, clone or not. */
const WALL = 0x40000000;

/**
 * Attaches to `pid` as its tracer, stops it once, and detaches: the kernel
 * sends a ptrace attach event, then a detach event.
 *
 * @example
 * ```ts ignore
 * import { attachAndDetach } from "./ptrace.ts";
 * attachAndDetach(4242);
 * ```
 */
export function attachAndDetach(pid: number): void {
  const c = libc();
  check("ptrace(PTRACE_SEIZE)", c.ptrace(BigInt(PTRACE_SEIZE), pid, null, null), `${pid}`);
  try {
    check("ptrace(PTRACE_INTERRUPT)", c.ptrace(BigInt(PTRACE_INTERRUPT), pid, null, null));
    const status = new Uint8Array(4);
    check("waitpid", c.waitpid(pid, status, WALL));
  } finally {
    // A tracee must be stopped to be detached; it is, after the interrupt.
    c.ptrace(BigInt(PTRACE_DETACH), pid, null, null);
  }
}
