/**
 * Reading /proc through libc. Deno's file API refuses /proc paths without
 * `--allow-all`; procwatch runs with `--allow-ffi` only, so it reads them with
 * `open`/`read`/`readlink` here.
 *
 * @module
 */

import { cString, errno, libc } from "./libc.ts";

/** `O_RDONLY | O_CLOEXEC` (include/uapi/asm-generic/fcntl.h). */
const O_RDONLY_CLOEXEC = 0o2000000;

let scratch = new Uint8Array(4096);
const decoder = new TextDecoder();

/** The result of a read: the bytes, or the errno that stopped it. */
export type ReadResult = { ok: true; bytes: Uint8Array } | { ok: false; errno: number };

/**
 * Reads a whole file (e.g. `/proc/1234/cmdline`), up to `limit` bytes.
 * Returns the errno on failure (`ENOENT`/`ESRCH` once a process is gone).
 */
export function readFileBytes(path: string, limit = 1 << 20): ReadResult {
  const c = libc();
  const fd = c.open(cString(path), O_RDONLY_CLOEXEC, 0);
  if (fd < 0) return { ok: false, errno: errno() };
  try {
    let length = 0;
    while (length < limit) {
      if (length === scratch.length) {
        const grown = new Uint8Array(scratch.length * 2);
        grown.set(scratch);
        scratch = grown;
      }
      const chunk = scratch.subarray(length);
      const n = Number(c.read(fd, chunk, BigInt(Math.min(chunk.length, limit - length))));
      if (n < 0) return { ok: false, errno: errno() };
      if (n === 0) break;
      length += n;
    }
    return { ok: true, bytes: scratch.slice(0, length) };
  } finally {
    c.close(fd);
  }
}

/**
 * Reads a one-record /proc file (`/proc/PID/stat`: the kernel makes the whole
 * record in one read when it fits, seq_read_iter() with single_open()) with a
 * single read of up to `limit` bytes: open, read, close, where
 * {@linkcode readFileText} reads again to see the end. `null` when it cannot
 * be read. `wait` on 8,000 pids reads each pid's stat once while arming.
 *
 * @example
 * ```ts
 * import { readRecordText } from "./proc_fs.ts";
 * console.log(readRecordText("/proc/self/stat", 4096));
 * ```
 */
export function readRecordText(path: string, limit: number): string | null {
  const c = libc();
  // The path in a buffer kept for it: a new one per call cost more than the read.
  if (pathBuffer.length < path.length * 3 + 1) pathBuffer = new Uint8Array(path.length * 3 + 1);
  const { written } = pathEncoder.encodeInto(path, pathBuffer);
  pathBuffer[written] = 0;
  const fd = c.open(pathBuffer, O_RDONLY_CLOEXEC, 0);
  if (fd < 0) return null;
  try {
    if (scratch.length < limit) scratch = new Uint8Array(limit);
    const n = Number(c.read(fd, scratch, BigInt(limit)));
    return n < 0 ? null : decoder.decode(scratch.subarray(0, n));
  } finally {
    c.close(fd);
  }
}

let pathBuffer = new Uint8Array(256);
const pathEncoder = new TextEncoder();

/** Reads a whole file as UTF-8 text, or `null` when it cannot be read. */
export function readFileText(path: string, limit?: number): string | null {
  const result = readFileBytes(path, limit);
  return result.ok ? decoder.decode(result.bytes) : null;
}

const linkBuffer = new Uint8Array(4096);

/** The target of a symbolic link (e.g. `/proc/1234/exe`), or `null`. */
export function readLink(path: string): string | null {
  const n = Number(libc().readlink(cString(path), linkBuffer, BigInt(linkBuffer.length)));
  return n < 0 ? null : decoder.decode(linkBuffer.subarray(0, n));
}

/** Offset of `d_name` in glibc's `struct dirent` on 64-bit Linux: d_ino 8, d_off 8, d_reclen 2, d_type 1. */
const DIRENT_NAME_OFFSET = 19;

/**
 * The entry names of a directory (without `.` and `..`), e.g. the open
 * descriptors in `/proc/self/fd`, or `null` when it cannot be opened. Reads
 * with libc's `opendir`/`readdir`, so it needs `--allow-ffi` only.
 *
 * @example
 * ```ts
 * import { listDirectory } from "./proc_fs.ts";
 * console.log(listDirectory("/proc/self/fd")?.length); // open descriptors (+1 for the listing)
 * ```
 */
export function listDirectory(path: string): string[] | null {
  const c = libc();
  const directory = c.opendir(cString(path));
  if (directory === null) return null;
  const names: string[] = [];
  try {
    for (;;) {
      const entry = c.readdir(directory);
      if (entry === null) break;
      const name = new Deno.UnsafePointerView(entry).getCString(DIRENT_NAME_OFFSET);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    c.closedir(directory);
  }
  return names;
}
