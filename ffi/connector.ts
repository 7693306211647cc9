/**
 * The proc connector socket: a netlink socket bound to `CN_IDX_PROC`, an
 * eventfd to wake its waiter, and the calls that move bytes. Policy (what to
 * listen for, how to read ACKs) lives in `lib/connector/subscription.ts`.
 *
 * @module
 */

import { check, Errno, errno, ErrnoError, libc } from "./libc.ts";
import { AF_NETLINK, CN_IDX_PROC, NETLINK_CONNECTOR } from "../ground/cn_proc.ts";

/** `SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC` (include/linux/net.h, fcntl.h). */
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** `EFD_NONBLOCK | EFD_CLOEXEC` (include/uapi/linux/eventfd.h). */
const EFD_FLAGS = 0o4000 | 0o2000000;
/** `SOL_SOCKET`, `SO_RCVBUF`, `SO_RCVBUFFORCE` (include/uapi/asm-generic/socket.h). */
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
/** `SO_MEMINFO` (include/uapi/asm-generic/socket.h, Linux 4.6). */
const SO_MEMINFO = 55;
/**
 * `SK_MEMINFO_VARS` u32s, of which `SK_MEMINFO_DROPS` is the last
 * (include/uapi/linux/sock_diag.h): `sk_drops`, which netlink_overrun()
 * raises and /proc/net/netlink prints as `Drops`.
 */
const SK_MEMINFO_BYTES = 9 * 4;
const SK_MEMINFO_DROPS = 8;
/** `SO_ATTACH_FILTER` (include/uapi/asm-generic/socket.h). */
const SO_ATTACH_FILTER = 26;
/** `struct sock_fprog` on 64-bit Linux: u16 len, padding, `struct sock_filter *`. */
const SOCK_FPROG_SIZE = 16;
/** `MSG_DONTWAIT` (include/linux/socket.h). */
const MSG_DONTWAIT = 0x40;
/** `POLLIN` (include/uapi/asm-generic/poll.h). */
const POLLIN = 0x1;
/** `struct sockaddr_nl`: family, pad, nl_pid, nl_groups. */
const SOCKADDR_NL_SIZE = 12;

/** Options for {@linkcode ConnectorSocket.open}. */
export interface ConnectorSocketOptions {
  /**
   * Receive buffer size to ask for, in bytes. More than the kernel grants is
   * capped to what it grants (see {@linkcode receiveBufferRequest}); the
   * socket's `receiveBufferBytes` says what that was.
   */
  receiveBufferBytes: number;
  /**
   * A classic BPF program (encoded `struct sock_filter`s, see `lib/connector/bpf.ts`)
   * to attach before the socket joins the group, so that no message arrives
   * unfiltered. When the kernel refuses it the socket opens without it and
   * `filterError` says why.
   */
  filter?: Uint8Array<ArrayBuffer> | null;
}

/**
 * A netlink connector socket bound to the proc events group.
 *
 * @example
 * ```ts
 * import { ConnectorSocket } from "./connector.ts";
 * const socket = ConnectorSocket.open({ receiveBufferBytes: 4 << 20 });
 * socket.close();
 * ```
 */
export class ConnectorSocket {
  /** The socket's file descriptor. */
  readonly fd: number;
  /** The eventfd that wakes a pending {@linkcode wait}. */
  readonly wakeFd: number;
  /** Our netlink port id (`nl_pid` the kernel assigned). */
  readonly portId: number;
  /** The receive buffer size the kernel granted, in bytes. */
  readonly receiveBufferBytes: number;
  /** Why the `filter` asked for at open was not attached (`null`: attached, or none asked for). */
  readonly filterError: string | null;
  #closed = false;
  #waiting: Promise<number> | undefined;
  readonly #pollFds = new Uint8Array(16);

  private constructor(
    fd: number,
    wakeFd: number,
    portId: number,
    receiveBufferBytes: number,
    filterError: string | null,
  ) {
    this.fd = fd;
    this.filterError = filterError;
    this.wakeFd = wakeFd;
    this.portId = portId;
    this.receiveBufferBytes = receiveBufferBytes;
    const view = new DataView(this.#pollFds.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLIN, true);
    view.setInt32(8, wakeFd, true);
    view.setInt16(12, POLLIN, true);
  }

  /**
   * Creates the socket, sizes its receive buffer and binds it to `CN_IDX_PROC`.
   * Throws {@linkcode ErrnoError}: `EPROTONOSUPPORT` without a connector,
   * `EPERM` where listening needs `CAP_NET_ADMIN`.
   */
  static open(options: ConnectorSocketOptions): ConnectorSocket {
    const c = libc();
    const fd = check(
      "socket",
      c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR),
      "(AF_NETLINK, NETLINK_CONNECTOR)",
    );
    try {
      const granted = setReceiveBuffer(fd, options.receiveBufferBytes);
      let filterError: string | null = null;
      if (options.filter) {
        try {
          attachFilter(fd, options.filter);
        } catch (error) {
          if (!(error instanceof ErrnoError)) throw error;
          filterError = error.message;
        }
      }
      const address = new Uint8Array(SOCKADDR_NL_SIZE);
      const view = new DataView(address.buffer);
      view.setUint16(0, AF_NETLINK, true);
      view.setUint32(4, 0, true); // nl_pid 0: the kernel picks a unique port
      view.setUint32(8, CN_IDX_PROC, true); // nl_groups: the proc events group
      check("bind", c.bind(fd, address, SOCKADDR_NL_SIZE), "(CN_IDX_PROC)");
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, SOCKADDR_NL_SIZE, true);
      check("getsockname", c.getsockname(fd, address, length));
      const portId = view.getUint32(4, true);
      const wakeFd = check("eventfd", c.eventfd(0, EFD_FLAGS));
      return new ConnectorSocket(fd, wakeFd, portId, granted, filterError);
    } catch (error) {
      c.close(fd);
      throw error;
    }
  }

  /** Sends a control message to the kernel (port 0). Throws {@linkcode ErrnoError}. */
  send(message: Uint8Array<ArrayBuffer>): void {
    const result = libc().send(this.fd, message, BigInt(message.length), 0);
    check("send", result, "(proc connector control message)");
  }

  /**
   * Attaches a classic BPF program (`SO_ATTACH_FILTER`; it replaces any
   * earlier one): `program` holds the encoded `struct sock_filter` array
   * (see `lib/connector/bpf.ts`). The kernel copies and checks it (sk_attach_filter(),
   * net/core/filter.c). Throws {@linkcode ErrnoError}.
   */
  attachFilter(program: Uint8Array<ArrayBuffer>): void {
    attachFilter(this.fd, program);
  }

  #batch: ReceiveBatch | undefined;

  /**
   * Receives up to {@linkcode RECEIVE_BATCH_SLOTS} datagrams in one
   * `recvmmsg(MSG_DONTWAIT)` call: one system call and one FFI call for a
   * whole batch instead of one each per datagram. Read the datagrams with
   * {@linkcode ConnectorSocket.datagram} and {@linkcode ConnectorSocket.sender}
   * until the next call. Synchronous, so errno is still ours to read.
   */
  receiveMany(): { kind: "datagrams"; count: number } | { kind: "empty" } | { kind: "overrun" } {
    const batch = this.#batch ??= new ReceiveBatch();
    batch.reset();
    const count = libc().recvmmsg(this.fd, batch.headers, RECEIVE_BATCH_SLOTS, MSG_DONTWAIT, null);
    if (count >= 0) {
      batch.used(count);
      return count === 0 ? { kind: "empty" } : { kind: "datagrams", count };
    }
    const code = errno();
    if (code === Errno.EAGAIN) return { kind: "empty" };
    if (code === Errno.ENOBUFS) return { kind: "overrun" };
    if (code === Errno.EINTR) return this.receiveMany();
    throw new ErrnoError("recvmmsg", code);
  }

  /** Datagram `index` of the last {@linkcode receiveMany}; a view into a reused buffer. */
  datagram(index: number): Uint8Array<ArrayBuffer> {
    return this.#batch!.datagram(index);
  }

  /** The netlink port that sent datagram `index` of the last {@linkcode receiveMany} (0 = the kernel). */
  sender(index: number): number {
    return this.#batch!.sender(index);
  }

  /** Whether datagram `index` of the last {@linkcode receiveMany} did not fit its slot. */
  truncated(index: number): boolean {
    return this.#batch!.truncated(index);
  }

  /**
   * Waits on another thread until the socket is readable or {@linkcode wake}
   * is called, or `timeoutMs` passes (-1: no limit). Only one wait at a time.
   */
  wait(timeoutMs = -1): Promise<number> {
    if (this.#waiting) return this.#waiting;
    this.#waiting = libc().poll_wait(this.#pollFds, 2n, timeoutMs).finally(() => {
      this.#waiting = undefined;
      this.#drainWake();
    });
    return this.#waiting;
  }

  /** Blocks the JS thread up to `timeoutMs` for the socket to become readable. */
  waitSync(timeoutMs: number): boolean {
    const fds = new Uint8Array(8);
    const view = new DataView(fds.buffer);
    view.setInt32(0, this.fd, true);
    view.setInt16(4, POLLIN, true);
    return libc().poll(fds, 1n, timeoutMs) > 0;
  }

  /**
   * The kernel's count of messages dropped for this socket (`sk_drops`),
   * read with `getsockopt(SO_MEMINFO)`: one system call, where finding the
   * socket's line in /proc/net/netlink reads every netlink socket of the
   * machine (~0.4 ms here). `null` when the kernel does not answer (before
   * Linux 4.6) or the socket is closed.
   */
  kernelDrops(): number | null {
    if (this.#closed) return null;
    const info = this.#memInfo;
    const length = this.#memInfoLength;
    length[0] = SK_MEMINFO_BYTES;
    const result = libc().getsockopt(this.fd, SOL_SOCKET, SO_MEMINFO, info, length);
    if (result < 0 || length[0] < SK_MEMINFO_BYTES) return null;
    return new DataView(info.buffer).getUint32(SK_MEMINFO_DROPS * 4, true);
  }
  readonly #memInfo = new Uint8Array(SK_MEMINFO_BYTES);
  readonly #memInfoLength = new Uint32Array(1);

  /** Whether a {@linkcode wait} is pending on another thread. */
  get waiting(): boolean {
    return this.#waiting !== undefined;
  }

  /** Wakes a pending {@linkcode wait}: the eventfd becomes readable. */
  wake(): void {
    if (this.#closed) return;
    const one = new Uint8Array(8);
    one[0] = 1;
    libc().write(this.wakeFd, one, 8n);
  }

  #drainWake(): void {
    if (this.#closed) return;
    const sink = new Uint8Array(8);
    libc().read(this.wakeFd, sink, 8n);
  }

  /**
   * Closes both descriptors. If a wait is pending, it is woken first and the
   * descriptors are closed once it has returned, so the poll never sees a
   * reused descriptor.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const pending = this.#waiting;
    const release = () => {
      if (this.#closed) return;
      this.#closed = true;
      libc().close(this.fd);
      libc().close(this.wakeFd);
    };
    if (pending === undefined) {
      release();
      return Promise.resolve();
    }
    this.wake();
    return pending.then(release, release);
  }

  /** Whether {@linkcode close} has released the descriptors. */
  get closed(): boolean {
    return this.#closed;
  }
}

/** `setsockopt(SO_ATTACH_FILTER)` with a `struct sock_fprog` pointing at `program`. */
function attachFilter(fd: number, program: Uint8Array<ArrayBuffer>): void {
  const instructions = program.length / 8;
  const fprog = new Uint8Array(SOCK_FPROG_SIZE);
  const view = new DataView(fprog.buffer);
  view.setUint16(0, instructions, true);
  view.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(program))), true);
  const result = libc().setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, SOCK_FPROG_SIZE);
  check("setsockopt", result, `(SO_ATTACH_FILTER, ${instructions} instructions)`);
}

/**
 * The largest request the kernel heeds: `__sock_set_rcvbuf()` (net/core/sock.c)
 * clamps the value to `INT_MAX / 2` before doubling it, so no request gets more
 * than `INT_MAX − 1` bytes.
 *
 * @example
 * ```ts
 * import { MAX_RECEIVE_BUFFER_REQUEST, watch } from "@procwatch/procwatch";
 * using watcher = watch({ receiveBufferBytes: MAX_RECEIVE_BUFFER_REQUEST });
 * ```
 */
export const MAX_RECEIVE_BUFFER_REQUEST = 0x3fff_ffff;

/**
 * The `int` to pass to `setsockopt` for a request of `bytes`: clamped to
 * `[0, INT_MAX / 2]`. The option value is a C `int`: 2 GiB would wrap to a
 * negative number, which the kernel raises to its minimum (`SOCK_MIN_RCVBUF`,
 * 2304 bytes), and 4 GiB or 100 GiB wrap to 0, the same minimum.
 *
 * @example
 * ```ts
 * import { receiveBufferRequest } from "./connector.ts";
 * console.log(receiveBufferRequest(2 ** 31)); // 1073741823: the kernel grants 2147483646
 * ```
 */
export function receiveBufferRequest(bytes: number): number {
  if (!(bytes > 0)) return 0;
  return Math.min(Math.floor(bytes), MAX_RECEIVE_BUFFER_REQUEST);
}

/**
 * Asks for `bytes` of receive buffer: `SO_RCVBUFFORCE` passes `rmem_max` for
 * root, `SO_RCVBUF` is capped at it. Returns what the kernel granted (it
 * doubles the request for bookkeeping, see socket(7)), read back with
 * `getsockopt`: a request past the kernel's limits gets that limit.
 */
function setReceiveBuffer(fd: number, bytes: number): number {
  const c = libc();
  const value = new Uint8Array(4);
  const view = new DataView(value.buffer);
  view.setInt32(0, receiveBufferRequest(bytes), true);
  if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, value, 4) < 0) {
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4);
  }
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, 4, true);
  c.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, length);
  return view.getInt32(0, true);
}

/**
 * Datagrams one {@linkcode ConnectorSocket.receiveMany} call can return.
 *
 * @example
 * ```ts
 * import { RECEIVE_BATCH_SLOTS } from "./connector.ts";
 * console.log(RECEIVE_BATCH_SLOTS); // 256
 * ```
 */
export const RECEIVE_BATCH_SLOTS = 256;
/** Bytes per datagram slot: a proc event message is 76 bytes; larger ones are foreign. */
const SLOT_BYTES = 512;
/** `struct mmsghdr` on 64-bit Linux: `struct msghdr` (56 bytes) + `msg_len`, padded to 64. */
const MMSGHDR_BYTES = 64;
/** `struct iovec`: base pointer + length. */
const IOVEC_BYTES = 16;
/** `MSG_TRUNC` in `msg_flags`: the datagram was longer than its slot. */
const MSG_TRUNC = 0x20;

/**
 * The buffers of a `recvmmsg` call: one `mmsghdr`, `iovec`, `sockaddr_nl` and
 * data slot per datagram. The headers hold the addresses of the others, so
 * they are written once: ArrayBuffer memory does not move.
 */
class ReceiveBatch {
  readonly headers = new Uint8Array(RECEIVE_BATCH_SLOTS * MMSGHDR_BYTES);
  readonly #headerView = new DataView(this.headers.buffer);
  readonly #iovecs = new Uint8Array(RECEIVE_BATCH_SLOTS * IOVEC_BYTES);
  readonly #names = new Uint8Array(RECEIVE_BATCH_SLOTS * 16);
  readonly #nameView = new DataView(this.#names.buffer);
  readonly #data = new Uint8Array(RECEIVE_BATCH_SLOTS * SLOT_BYTES);

  constructor() {
    const address = (bytes: Uint8Array) =>
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    const data = address(this.#data);
    const iovecs = address(this.#iovecs);
    const names = address(this.#names);
    const iovecView = new DataView(this.#iovecs.buffer);
    for (let i = 0; i < RECEIVE_BATCH_SLOTS; i++) {
      iovecView.setBigUint64(i * IOVEC_BYTES, data + BigInt(i * SLOT_BYTES), true);
      iovecView.setBigUint64(i * IOVEC_BYTES + 8, BigInt(SLOT_BYTES), true);
      const header = i * MMSGHDR_BYTES;
      this.#headerView.setBigUint64(header, names + BigInt(i * 16), true); // msg_name
      this.#headerView.setBigUint64(header + 16, iovecs + BigInt(i * IOVEC_BYTES), true); // msg_iov
      this.#headerView.setBigUint64(header + 24, 1n, true); // msg_iovlen
    }
  }

  #used = RECEIVE_BATCH_SLOTS;

  /** Restores the in/out field the kernel overwrote last time (msg_namelen). */
  reset(): void {
    for (let i = 0; i < this.#used; i++) {
      this.#headerView.setUint32(i * MMSGHDR_BYTES + 8, SOCKADDR_NL_SIZE, true);
    }
    this.#used = 0;
  }

  /** Notes how many slots the kernel filled. */
  used(count: number): void {
    this.#used = count;
  }

  datagram(index: number): Uint8Array<ArrayBuffer> {
    const length = Math.min(
      this.#headerView.getUint32(index * MMSGHDR_BYTES + 56, true),
      SLOT_BYTES,
    );
    return this.#data.subarray(index * SLOT_BYTES, index * SLOT_BYTES + length);
  }

  sender(index: number): number {
    return this.#nameView.getUint32(index * 16 + 4, true);
  }

  truncated(index: number): boolean {
    return (this.#headerView.getInt32(index * MMSGHDR_BYTES + 48, true) & MSG_TRUNC) !== 0;
  }
}
