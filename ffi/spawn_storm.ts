/**
 * Many short-lived processes, fast, for long-run tests: a vfork-style
 * `clone(_exit, stack, CLONE_VM | CLONE_VFORK, 0)` through FFI costs tens of
 * microseconds (a `fork()` of Deno ~0.6 ms) and makes one fork and one exit
 * event. Children exit with no signal to the parent and are reaped with
 * `waitpid(__WALL)`. (The benchmark has its own richer `ffi/clone.ts`.)
 *
 * @module
 */

import { cString, errno, ErrnoError, libc } from "./libc.ts";

/** `CLONE_VM`, `CLONE_VFORK` (include/uapi/linux/sched.h); exit signal 0 = none. */
const CLONE_FLAGS = 0x00000100 | 0x00004000;
/** `__WALL` (include/uapi/linux/wait.h): reap children whatever their exit signal. */
const WALL = 0x40000000;

const stack = new Uint8Array(64 * 1024);
let exitAddress: Deno.PointerObject | null = null;
let stackTop: Deno.PointerObject | null = null;

/**
 * Makes `count` processes that exit at once with status 0, one after the
 * other, and reaps them. Returns their pids. Throws {@linkcode ErrnoError}.
 *
 * @example
 * ```ts ignore
 * import { spawnStorm } from "./spawn_storm.ts";
 * const pids = spawnStorm(1000); // 1000 fork + 1000 exit events
 * ```
 */
export function spawnStorm(count: number): number[] {
  const c = libc();
  if (exitAddress === null) {
    exitAddress = c.dlsym(null, cString("_exit"));
    if (exitAddress === null) throw new Error("dlsym: libc has no _exit");
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(stack)));
    stackTop = Deno.UnsafePointer.create((base + BigInt(stack.length)) & ~15n);
  }
  const status = new Uint8Array(4);
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const pid = c.clone(exitAddress, stackTop, CLONE_FLAGS, null);
    if (pid < 0) throw new ErrnoError("clone", errno());
    if (c.waitpid(pid, status, WALL) < 0) throw new ErrnoError("waitpid", errno(), `(${pid})`);
    pids.push(pid);
  }
  return pids;
}
