/**
 * A tiny load generator for tests: many processes that exit at once.
 *
 * Each child is a vfork-style `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)` whose
 * start function is libc's `_exit` itself, so it exits on our stack before
 * running any JS (~40 µs a process against ~0.6 ms for fork()). The parent is
 * suspended until the child has exited, then reaps it with `waitpid`.
 *
 * ```sh
 * deno run --allow-ffi ffi/clone_storm.ts 100000 [exit-code]
 * ```
 *
 * @module
 */

import { check, cString, libc } from "./libc.ts";

/** `CLONE_VM | CLONE_VFORK` (include/uapi/linux/sched.h) with `SIGCHLD` (17) as exit signal. */
const CLONE_FLAGS = 0x100 | 0x4000 | 17;
const STACK_BYTES = 64 * 1024;

/**
 * Creates `count` processes, each exiting at once with `exitCode`, and reaps
 * them. Returns their pids.
 *
 * @example
 * ```ts ignore
 * import { spawnExitStorm } from "./clone_storm.ts";
 * const pids = spawnExitStorm(1000);
 * ```
 */
export function spawnExitStorm(count: number, exitCode = 0): number[] {
  const c = libc();
  const exit = c.dlsym(null, cString("_exit"));
  if (exit === null) throw new Error("dlsym(_exit) failed");
  const stack = new Uint8Array(STACK_BYTES);
  // The stack grows down: pass its 16-byte aligned top.
  const top = Deno.UnsafePointer.create(
    (Deno.UnsafePointer.value(Deno.UnsafePointer.of(stack)) + BigInt(STACK_BYTES - 64)) & ~15n,
  );
  const arg = Deno.UnsafePointer.create(BigInt(exitCode & 0xff));
  const status = new Uint8Array(4);
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const pid = check("clone", c.clone(exit, top, CLONE_FLAGS, arg));
    check("waitpid", c.waitpid(pid, status, 0));
    pids.push(pid);
  }
  return pids;
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? "1000");
  const code = Number(Deno.args[1] ?? "0");
  const pids = spawnExitStorm(count, code);
  console.log(`${pids.length} ${pids[0] ?? 0} ${pids.at(-1) ?? 0}`);
}
