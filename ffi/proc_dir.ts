/**
 * Listing the processes in /proc (through libc: Deno's own directory API
 * refuses /proc without `--allow-all`).
 *
 * @module
 */

import { listDirectory } from "./proc_fs.ts";

/**
 * The pids in /proc, ascending.
 *
 * @example
 * ```ts
 * import { listPids } from "@procwatch/procwatch/proc";
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
