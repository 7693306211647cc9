/**
 * The Deno exit floor: a Deno script that writes one line (its CLOCK_MONOTONIC
 * time, ns) and ends at once. The kernel's exit event of the process comes
 * this long after the line whatever the script did before: the share of
 * `wait`'s death → return latency that is the runtime's own exit, not
 * procwatch's. bench/wait_latency.ts runs it beside `cli.ts wait`.
 *
 * `deno run --allow-ffi bench/exit_floor.ts [_exit|Deno.exit|exit_group|touch]`:
 * how it ends (libc `_exit()`, `Deno.exit()`, the exit_group syscall), or
 * `touch`: 64 MiB of memory touched first, then `_exit()`.
 *
 * @module
 */

import { monotonicNs } from "../ffi/clock.ts";

const how = Deno.args[0] ?? "_exit";
const libc = Deno.dlopen("libc.so.6", {
  _exit: { parameters: ["i32"], result: "void" },
  syscall: { parameters: ["i64", "i64"], result: "i64" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
}).symbols;
let touched: Uint8Array | undefined;
if (how === "touch") {
  touched = new Uint8Array(64 << 20);
  for (let i = 0; i < touched.length; i += 4096) touched[i] = 1;
}
const line = new TextEncoder().encode(`${monotonicNs()}\n`);
libc.write(1, line, BigInt(line.length));
if (how === "Deno.exit") Deno.exit(0);
if (how === "exit_group") libc.syscall(231n, 0n); // __NR_exit_group on x86_64
libc._exit(touched === undefined ? 0 : touched[0] - 1);
