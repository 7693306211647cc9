/**
 * Making processes fast without a native build: `clone(2)` through FFI.
 *
 * `fork()` from Deno copies a large address space (~0.6 ms); a vfork-style
 * `clone(fn, stackTop, CLONE_VM | CLONE_VFORK | SIGCHLD, arg)` shares it and
 * costs ~40 µs. The child runs `fn(arg)` on the stack we hand it: with `fn` =
 * libc's `_exit` it exits at once with status `arg`, which is all a fork storm
 * needs. Deno cannot take a symbol's address from `Deno.dlopen`, so the
 * address comes from `dlsym(RTLD_DEFAULT, "_exit")` called through FFI.
 *
 * Without `CLONE_VFORK`, with `fn` = `pause` and a stack each, the same call
 * makes cheap sleeping processes (Oracle's "8,000 processes killed at once").
 *
 * Used by the benchmark and the loss tests; not part of the public API.
 *
 * @module
 */

import { cString, ErrnoError } from "../../../ffi/libc.ts";
import { errno, testLibc } from "./libc.ts";

/** `CLONE_VM`, `CLONE_VFORK` (include/uapi/linux/sched.h), `SIGCHLD` (17 on x86/arm). */
const CLONE_VM = 0x00000100;
const CLONE_VFORK = 0x00004000;
const SIGCHLD = 17;
/** `SIGKILL`. */
const SIGKILL = 9;
/** `__WALL` (include/uapi/linux/wait.h): wait for any child, whatever its exit signal. */
const WALL = 0x40000000;
/** Stack of a vfork child: `_exit` needs a few hundred bytes; the rest is margin. */
const VFORK_STACK_BYTES = 64 * 1024;
/** Stack of a sleeping child: `pause` needs little; 16 KiB × 8,000 = 128 MiB of address space. */
const SLEEPER_STACK_BYTES = 16 * 1024;

/** The address of a libc function, from `dlsym(RTLD_DEFAULT, name)`. */
function symbolAddress(name: string): Deno.PointerObject {
  const pointer = testLibc().dlsym(null, cString(name));
  if (pointer === null) throw new Error(`dlsym: libc has no ${name}`);
  return pointer;
}

let exitAddress: Deno.PointerObject | undefined;
let pauseAddress: Deno.PointerObject | undefined;

/** The top of `buffer` as a 16-byte aligned stack pointer (stacks grow down on x86-64 and arm64). */
function stackTop(buffer: Uint8Array<ArrayBuffer>): Deno.PointerObject {
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
  const top = (BigInt(base) + BigInt(buffer.length)) & ~15n;
  const pointer = Deno.UnsafePointer.create(top);
  if (pointer === null) throw new Error("stack pointer is null");
  return pointer;
}

/** `arg` for the child's function: `_exit(arg)` exits with it (`void *` → `int`). */
function argument(value: number): Deno.PointerObject | null {
  return value === 0 ? null : Deno.UnsafePointer.create(BigInt(value));
}

// One stack per thread (a Worker has its own module instance): the vfork
// child is done with it before clone() returns in the parent.
const vforkStack = new Uint8Array(VFORK_STACK_BYTES);
let vforkStackTop: Deno.PointerObject | undefined;
/**
 * The signal a storm child sends its parent on exit. SIGCHLD, as for a fork,
 * unless `setStormExitSignal(0)`: then no signal at all, which spares a
 * multi-threaded parent a signal delivery (and Deno's SIGCHLD handling) per
 * process; `waitpid(__WALL)` reaps either way.
 */
let exitSignal = SIGCHLD;

/**
 * Chooses the exit signal of processes {@linkcode spawnExiting} makes: 17
 * (SIGCHLD, the default) or 0 (none). Events are the same; 0 is faster.
 *
 * @example
 * ```ts ignore
 * import { setStormExitSignal } from "./clone.ts";
 * setStormExitSignal(0);
 * ```
 */
export function setStormExitSignal(signal: 0 | 17): void {
  exitSignal = signal;
}
const statusBuffer = new Uint8Array(4);
const statusView = new DataView(statusBuffer.buffer);

/**
 * Makes one process that exits at once with `exitCode`, and reaps it.
 * Returns the child's pid. Cost ~40 µs: the parent is suspended until the
 * child has exited (`CLONE_VFORK`), then `waitpid` collects it.
 *
 * @example
 * ```ts ignore
 * import { spawnExiting } from "./clone.ts";
 * const pid = spawnExiting(3); // a process that exited with code 3, already reaped
 * console.log(pid > 0);
 * ```
 */
export function spawnExiting(exitCode = 0): number {
  exitAddress ??= symbolAddress("_exit");
  vforkStackTop ??= stackTop(vforkStack);
  const c = testLibc();
  const pid = c.clone(
    exitAddress,
    vforkStackTop,
    CLONE_VM | CLONE_VFORK | exitSignal,
    argument(exitCode),
  );
  if (pid < 0) throw new ErrnoError("clone", errno(), "(CLONE_VM|CLONE_VFORK)");
  reap(pid);
  return pid;
}

/**
 * Makes processes that exit at once, as fast as this thread can, until
 * `count` are made or `deadline` (a `performance.now()` value) passes.
 * Returns how many were made. With `firstPids`, the first pids are recorded.
 *
 * @example
 * ```ts ignore
 * import { spawnExitingMany } from "./clone.ts";
 * console.log(spawnExitingMany(1000, Infinity)); // 1000
 * ```
 */
export function spawnExitingMany(count: number, deadline: number, exitCode = 0): number {
  let made = 0;
  // Checking the clock every 64 processes keeps the loop at clone speed.
  while (made < count) {
    spawnExiting(exitCode);
    made++;
    if ((made & 63) === 0 && performance.now() >= deadline) break;
  }
  return made;
}

/**
 * Makes `count` processes that exit at once with `exitCode`, reaping each;
 * returns their pids in creation order.
 *
 * @example
 * ```ts ignore
 * import { spawnExitingPids } from "./clone.ts";
 * const pids = spawnExitingPids(100, 3); // 100 processes that exited with code 3
 * console.log(pids.length);
 * ```
 */
export function spawnExitingPids(count: number, exitCode = 0): number[] {
  const pids = new Array<number>(count);
  for (let i = 0; i < count; i++) pids[i] = spawnExiting(exitCode);
  return pids;
}

/**
 * Waits for child `pid` to end; returns its raw wait status. Throws on `ECHILD`.
 *
 * @example
 * ```ts ignore
 * import { prepareProgram, reap } from "./clone.ts";
 * const status = reap(prepareProgram("/bin/sh", ["sh", "-c", "exit 3"]).spawn());
 * console.log(status >> 8); // 3
 * ```
 */
export function reap(pid: number): number {
  for (;;) {
    const result = testLibc().waitpid(pid, statusBuffer, WALL);
    if (result === pid) return statusView.getInt32(0, true);
    const code = errno();
    if (result < 0 && code === 4) continue; // EINTR
    throw new ErrnoError("waitpid", code, `(${pid})`);
  }
}

/**
 * A group of sleeping processes made with `clone(pause, stack, CLONE_VM |
 * SIGCHLD)`: each shares our memory and sleeps on a stack of its own until
 * killed. Kill them with {@linkcode SleepingProcesses.killAll}; dispose to
 * make sure none is left behind.
 *
 * @example
 * ```ts ignore
 * import { SleepingProcesses } from "./clone.ts";
 * using sleepers = SleepingProcesses.spawn(8000);
 * sleepers.killAll();
 * sleepers.reapAll();
 * ```
 */
export class SleepingProcesses implements Disposable {
  /** The sleepers' pids, in creation order. */
  readonly pids: readonly number[];
  // Kept so the stacks outlive the processes that run on them.
  readonly #stacks: Uint8Array<ArrayBuffer>;
  #killed = false;
  #reaped = false;

  private constructor(pids: number[], stacks: Uint8Array<ArrayBuffer>) {
    this.pids = pids;
    this.#stacks = stacks;
  }

  /** Makes `count` sleeping processes. On failure, kills those already made and throws. */
  static spawn(count: number): SleepingProcesses {
    pauseAddress ??= symbolAddress("pause");
    const stacks = new Uint8Array(count * SLEEPER_STACK_BYTES);
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(stacks)));
    const pids: number[] = [];
    const c = testLibc();
    for (let i = 0; i < count; i++) {
      const top = Deno.UnsafePointer.create((base + BigInt((i + 1) * SLEEPER_STACK_BYTES)) & ~15n);
      const pid = c.clone(pauseAddress, top, CLONE_VM | SIGCHLD, null);
      if (pid < 0) {
        const error = new ErrnoError("clone", errno(), `(sleeper ${i + 1} of ${count})`);
        new SleepingProcesses(pids, stacks)[Symbol.dispose]();
        throw error;
      }
      pids.push(pid);
      // One process group of their own (led by the first): killAll() is then
      // a single kill(-pgid), all 8,000 at once, as in Oracle's measurement.
      if (c.setpgid(pid, pids[0]) < 0) {
        const error = new ErrnoError("setpgid", errno(), `(${pid}, ${pids[0]})`);
        new SleepingProcesses(pids, stacks)[Symbol.dispose]();
        throw error;
      }
    }
    return new SleepingProcesses(pids, stacks);
  }

  /** Sends SIGKILL to every sleeper at once: one `kill(-pgid)` for their process group. */
  killAll(): void {
    if (this.#killed || this.pids.length === 0) return;
    this.#killed = true;
    const c = testLibc();
    if (c.kill(-this.pids[0], SIGKILL) < 0) {
      // Not a group after all (a partial spawn): one by one.
      for (const pid of this.pids) c.kill(pid, SIGKILL);
    }
  }

  /** Waits for every sleeper to end (call after {@linkcode killAll}). */
  reapAll(): void {
    if (this.#reaped) return;
    this.#reaped = true;
    for (const pid of this.pids) reap(pid);
  }

  /** Kills and reaps whatever is left. */
  [Symbol.dispose](): void {
    this.killAll();
    this.reapAll();
    // The stacks may be collected only now that nothing runs on them.
    void this.#stacks;
  }
}

/**
 * Runs `path` with `argv` through `posix_spawn` (glibc uses a vfork-style
 * clone for it) and waits for it; returns the raw wait status.
 *
 * @example
 * ```ts ignore
 * import { spawnProgram } from "./clone.ts";
 * console.log(spawnProgram("/bin/true", ["true"])); // 0
 * ```
 */
export function spawnProgram(path: string, argv: readonly string[]): number {
  const prepared = prepareProgram(path, argv);
  return reap(prepared.spawn());
}

/**
 * A program ready to be spawned repeatedly without re-encoding its arguments.
 *
 * @example
 * ```ts ignore
 * import { type PreparedProgram, prepareProgram, reap } from "./clone.ts";
 * const program: PreparedProgram = prepareProgram("/bin/true", ["true"]);
 * for (let i = 0; i < 3; i++) reap(program.spawn());
 * ```
 */
export interface PreparedProgram {
  /** Starts the program; returns its pid (not reaped). */
  spawn(): number;
}

/**
 * Encodes `path`, `argv` and an empty environment once, for many spawns.
 *
 * @example
 * ```ts ignore
 * import { prepareProgram, reap } from "./clone.ts";
 * const program = prepareProgram("/bin/true", ["true"]);
 * reap(program.spawn());
 * ```
 */
export function prepareProgram(path: string, argv: readonly string[]): PreparedProgram {
  const pathBytes = cString(path);
  const strings = argv.map(cString);
  const vector = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    vector[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  const argvBytes = new Uint8Array(vector.buffer);
  const envBytes = new Uint8Array(8); // { NULL }
  const pidBytes = new Uint8Array(4);
  const pidView = new DataView(pidBytes.buffer);
  return {
    spawn(): number {
      const result = testLibc().posix_spawn(pidBytes, pathBytes, null, null, argvBytes, envBytes);
      // Keep the argument strings reachable while the vector points at them.
      void strings;
      if (result !== 0) throw new ErrnoError("posix_spawn", result, `(${path})`);
      return pidView.getInt32(0, true);
    },
  };
}

/** `cpu_set_t` is 1024 bits in glibc. */
const CPU_SET_BYTES = 128;

/**
 * Pins the calling thread (and the processes it clones from now on) to one
 * CPU, so the events they cause are numbered by that CPU's counter. Returns a
 * function that restores the previous affinity.
 *
 * @example
 * ```ts ignore
 * import { pinToCpu, spawnExiting } from "./clone.ts";
 * const restore = pinToCpu(1);
 * spawnExiting(); // its exit event says cpu 1
 * restore();
 * ```
 */
export function pinToCpu(cpu: number): () => void {
  const c = testLibc();
  const previous = new Uint8Array(CPU_SET_BYTES);
  if (c.sched_getaffinity(0, BigInt(CPU_SET_BYTES), previous) < 0) {
    throw new ErrnoError("sched_getaffinity", errno());
  }
  const mask = new Uint8Array(CPU_SET_BYTES);
  mask[cpu >> 3] = 1 << (cpu & 7);
  if (c.sched_setaffinity(0, BigInt(CPU_SET_BYTES), mask) < 0) {
    throw new ErrnoError("sched_setaffinity", errno(), `(cpu ${cpu})`);
  }
  return () => {
    c.sched_setaffinity(0, BigInt(CPU_SET_BYTES), previous);
  };
}
