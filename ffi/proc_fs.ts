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
