/**
 * The kernel's clocks, read through libc (Deno has no monotonic-ns API).
 *
 * @module
 */

import { libc } from "./libc.ts";

/** `CLOCK_REALTIME`, `CLOCK_MONOTONIC` (include/uapi/linux/time.h). */
const CLOCK_REALTIME = 0;
const CLOCK_MONOTONIC = 1;

const timespec = new Uint8Array(16);
const view = new DataView(timespec.buffer);

function read(clock: number): bigint {
  libc().clock_gettime(clock, timespec);
  return view.getBigInt64(0, true) * 1_000_000_000n + view.getBigInt64(8, true);
}

/** `CLOCK_MONOTONIC` in nanoseconds: the clock of `proc_event.timestamp_ns` (`ktime_get_ns()`). */
export function monotonicNs(): bigint {
  return read(CLOCK_MONOTONIC);
}

/** `CLOCK_REALTIME` in nanoseconds since the epoch. */
export function realtimeNs(): bigint {
  return read(CLOCK_REALTIME);
}

const bracketSpecs = new BigInt64Array(6);
const beforeSpec = new Uint8Array(bracketSpecs.buffer, 0, 16);
const wallSpec = new Uint8Array(bracketSpecs.buffer, 16, 16);
const afterSpec = new Uint8Array(bracketSpecs.buffer, 32, 16);

/**
 * Reads `CLOCK_MONOTONIC`, `CLOCK_REALTIME`, `CLOCK_MONOTONIC` back to back
 * into `out` (ns: before, wall, after). The three calls come first and the
 * conversions after, so the realtime read is as tightly bracketed as the FFI
 * allows: its moment lies between `before` and `after`.
 *
 * @example
 * ```ts
 * import { readBracket } from "./clock.ts";
 * const out = new BigInt64Array(3);
 * readBracket(out);
 * console.log("offset within", out[1] - out[2], "..", out[1] - out[0]);
 * ```
 */
export function readBracket(out: BigInt64Array): void {
  const c = libc();
  c.clock_gettime(CLOCK_MONOTONIC, beforeSpec);
  c.clock_gettime(CLOCK_REALTIME, wallSpec);
  c.clock_gettime(CLOCK_MONOTONIC, afterSpec);
  const t = bracketSpecs;
  out[0] = t[0] * 1_000_000_000n + t[1];
  out[1] = t[2] * 1_000_000_000n + t[3];
  out[2] = t[4] * 1_000_000_000n + t[5];
}

/** `CLOCK_BOOTTIME` (include/uapi/linux/time.h): monotonic, counting suspend too. */
const CLOCK_BOOTTIME = 7;

/**
 * `CLOCK_BOOTTIME` in nanoseconds: the clock of `/proc/PID/stat` starttime
 * (`task->start_boottime`, Linux ≥ 5.5).
 *
 * @example
 * ```ts
 * import { boottimeNs, monotonicNs } from "./clock.ts";
 * console.log("suspended for", boottimeNs() - monotonicNs(), "ns");
 * ```
 */
export function boottimeNs(): bigint {
  return read(CLOCK_BOOTTIME);
}

/** `_SC_CLK_TCK` (glibc's bits/confname.h). */
const SC_CLK_TCK = 2;
let ticks: number | undefined;

/**
 * Clock ticks per second (`USER_HZ`, 100 on Linux): the unit of `/proc/PID/stat` times.
 *
 * @example
 * ```ts
 * import { clockTicksPerSecond } from "./clock.ts";
 * console.log(clockTicksPerSecond()); // 100
 * ```
 */
export function clockTicksPerSecond(): number {
  if (ticks === undefined) {
    const value = Number(libc().sysconf(SC_CLK_TCK));
    ticks = value > 0 ? value : 100;
  }
  return ticks;
}
