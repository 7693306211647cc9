/**
 * Listing a directory through libc (`opendir`/`readdir`): Deno's own
 * `readDir` needs `--allow-read`, and procwatch runs with `--allow-ffi` only.
 *
 * @module
 */

import { cString, libc } from "./libc.ts";

/** Offset of `d_name` in glibc's `struct dirent64` (ino 8, off 8, reclen 2, type 1). */
const D_NAME_OFFSET = 19;

/**
 * The entry names of a directory (without `.` and `..`), or `null` when it
 * cannot be opened.
 *
 * @example
 * ```ts ignore
 * import { listDirectory } from "./proc_dir.ts";
 * const pids = (listDirectory("/proc") ?? []).filter((name) => /^\d+$/.test(name));
 * ```
 */
export function listDirectory(path: string): string[] | null {
  const c = libc();
  const dir = c.opendir(cString(path));
  if (dir === null) return null;
  const names: string[] = [];
  try {
    for (;;) {
      const entry = c.readdir(dir);
      if (entry === null) break;
      const name = Deno.UnsafePointerView.getCString(entry, D_NAME_OFFSET);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    c.closedir(dir);
  }
  return names;
}

/**
 * The pids in /proc, ascending.
 *
 * @example
 * ```ts ignore
 * import { listPids } from "./proc_dir.ts";
 * console.log(listPids().includes(1)); // true
 * ```
 */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of listDirectory("/proc") ?? []) {
    const code = name.charCodeAt(0);
    if (code >= 48 && code <= 57) pids.push(Number(name));
  }
  return pids.sort((a, b) => a - b);
}

/** `_SC_CLK_TCK` (glibc bits/confname.h). */
const SC_CLK_TCK = 2;
let ticks: number | undefined;

/**
 * Clock ticks per second of /proc/PID/stat's time fields (`sysconf(_SC_CLK_TCK)`).
 *
 * @example
 * ```ts ignore
 * import { clockTicksPerSecond } from "./proc_dir.ts";
 * console.log(clockTicksPerSecond()); // 100
 * ```
 */
export function clockTicksPerSecond(): number {
  ticks ??= Number(libc().sysconf(SC_CLK_TCK)) || 100;
  return ticks;
}
