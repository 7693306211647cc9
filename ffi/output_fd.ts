/**
 * Writing to stdout/stderr without ever blocking the JS thread.
 *
 * A blocking `write(2)` to a pipe whose reader has stopped reading sleeps in
 * the kernel (`pipe_write`) until the reader drains it; while it sleeps, the JS
 * thread cannot run signal listeners, so Ctrl-C and `systemctl stop` would be
 * ignored. Setting `O_NONBLOCK` on fd 1/2 is not an option: the flag lives in
 * the open file description, shared with the shell and every other process
 * writing to the same terminal or pipe. Instead, procwatch asks `poll(2)`
 * first and writes only what the kernel will take at once:
 *
 * - a pipe is `POLLOUT` when at least one of its buffer slots is free
 *   (`pipe_poll()` in fs/pipe.c), and a write of at most `PIPE_BUF` (4096)
 *   bytes then fits into that slot without sleeping;
 * - a unix socket (journald) is `POLLOUT` while less than a quarter of its
 *   send buffer is in use (`unix_writable()`), far more than 4096 bytes;
 * - a terminal is `POLLOUT` when its output buffer is nearly empty and has
 *   room (`n_tty_poll()`); a stopped terminal (Ctrl-S) is not;
 * - a regular file is always writable.
 *
 * Waiting for room happens with a `poll` on another thread (nonblocking FFI),
 * so the JS thread stays free meanwhile.
 *
 * @module
 */

import { Errno, errno, libc } from "./libc.ts";

/** At most this many bytes per write: `PIPE_BUF`, what a pipe slot takes whole. */
export const WRITE_CHUNK = 4096;

/** include/uapi/asm-generic/poll.h */
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;

/** The result of one {@linkcode writeSome}: bytes written, or why none were. */
export type WriteResult = number | "blocked" | "closed";

function pollFd(fd: number): Uint8Array<ArrayBuffer> {
  // struct pollfd { int fd; short events; short revents; }
  const buffer = new Uint8Array(8);
  const view = new DataView(buffer.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLOUT, true);
  return buffer;
}

function revents(buffer: Uint8Array<ArrayBuffer>): number {
  return new DataView(buffer.buffer).getInt16(6, true);
}

/**
 * Writes up to {@linkcode WRITE_CHUNK} bytes of `bytes` to `fd` if the kernel
 * takes them without sleeping; `"blocked"` if it would sleep, `"closed"` if
 * the reader has gone (`EPIPE`: Deno ignores SIGPIPE) or the descriptor is bad.
 *
 * @example
 * ```ts
 * import { writeSome } from "./output_fd.ts";
 * const result = writeSome(1, new TextEncoder().encode("hello\n"));
 * ```
 */
export function writeSome(fd: number, bytes: Uint8Array<ArrayBuffer>): WriteResult {
  const poll = pollFd(fd);
  const ready = libc().poll(poll, 1n, 0);
  if (ready < 0) return errno() === Errno.EINTR ? "blocked" : "closed";
  if (ready === 0) return "blocked";
  const events = revents(poll);
  if (events & POLLNVAL) return "closed";
  // POLLERR/POLLHUP without POLLOUT: the write below reports what happened.
  if ((events & (POLLOUT | POLLERR | POLLHUP)) === 0) return "blocked";
  const chunk = bytes.length > WRITE_CHUNK ? bytes.subarray(0, WRITE_CHUNK) : bytes;
  const written = Number(libc().write(fd, chunk, BigInt(chunk.length)));
  if (written >= 0) return written;
  const code = errno();
  // EPIPE (the reader left), EBADF, EIO, ENOSPC...: nothing more can be written.
  return code === Errno.EAGAIN || code === Errno.EINTR ? "blocked" : "closed";
}

const SEEK_CUR = 1;

/**
 * Whether writes to `fd` never wait for a reader: it can seek (a regular file,
 * `/dev/null`). Pipes, FIFOs, sockets and terminals cannot (`ESPIPE`): those
 * are written through {@linkcode writeSome}'s poll-first path.
 *
 * @example
 * ```ts
 * import { neverWaits } from "./output_fd.ts";
 * console.log(neverWaits(1)); // true with `> file`, false with `| less`
 * ```
 */
export function neverWaits(fd: number): boolean {
  return libc().lseek(fd, 0n, SEEK_CUR) >= 0n;
}

/**
 * Writes as much of `bytes` as one `write(2)` takes, to a descriptor for
 * which {@linkcode neverWaits} holds: no poll, no chunking.
 *
 * @example
 * ```ts
 * import { writeDirect } from "./output_fd.ts";
 * writeDirect(1, new TextEncoder().encode("hello\n"));
 * ```
 */
export function writeDirect(fd: number, bytes: Uint8Array<ArrayBuffer>): WriteResult {
  const written = Number(libc().write(fd, bytes, BigInt(bytes.length)));
  if (written >= 0) return written;
  const code = errno();
  return code === Errno.EAGAIN || code === Errno.EINTR ? "blocked" : "closed";
}

/**
 * Waits on another thread until `fd` can take a write, for at most
 * `timeoutMs`. The JS thread runs timers and signal listeners meanwhile.
 *
 * @example
 * ```ts
 * import { waitWritable } from "./output_fd.ts";
 * await waitWritable(1, 50);
 * ```
 */
export async function waitWritable(fd: number, timeoutMs: number): Promise<void> {
  await libc().poll_wait(pollFd(fd), 1n, Math.max(0, Math.round(timeoutMs)));
}
