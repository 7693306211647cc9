/**
 * Raw netlink connector sockets: sending to a chosen port and receiving
 * without blocking. Tests use them to play a process that forges proc events,
 * and to read from (or withdraw the registration of) a borrowed watcher
 * socket. procwatch itself only ever sends to the kernel (port 0), through
 * `ffi/connector.ts`.
 *
 * @module
 */

import { Errno, ErrnoError } from "../../../ffi/libc.ts";
import { errno, testLibc } from "./libc.ts";
import { AF_NETLINK, NETLINK_CONNECTOR } from "../../../ground/cn_proc.ts";

/** `SOCK_DGRAM | SOCK_CLOEXEC` (include/linux/net.h, fcntl.h). */
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
/** `MSG_DONTWAIT` (include/linux/socket.h). */
const MSG_DONTWAIT = 0x40;
/** `struct sockaddr_nl`: family, pad, nl_pid, nl_groups. */
const SOCKADDR_NL_SIZE = 12;

/**
 * Opens an unbound `NETLINK_CONNECTOR` socket (the kernel gives it a port on
 * first send). Throws {@linkcode ErrnoError}. Close it with `closeDescriptor`.
 *
 * @example
 * ```ts ignore
 * import { closeDescriptor, openConnectorSender, sendToPort } from "./netlink_raw.ts";
 * const fd = openConnectorSender();
 * console.log(sendToPort(fd, 0, new Uint8Array(16))); // 0 or an errno
 * closeDescriptor(fd);
 * ```
 */
export function openConnectorSender(): number {
  const fd = testLibc().socket(AF_NETLINK, SOCK_DGRAM_CLOEXEC, NETLINK_CONNECTOR);
  if (fd < 0) throw new ErrnoError("socket", errno(), "(AF_NETLINK, NETLINK_CONNECTOR)");
  return fd;
}

/**
 * Sends `message` from socket `fd` to netlink port `port` (0 is the kernel;
 * any other port is a user socket, which needs `CAP_NET_ADMIN` for
 * `NETLINK_CONNECTOR`). Returns 0 on success or the errno of `sendto`.
 *
 * @example
 * ```ts ignore
 * import { openConnectorSender, sendToPort } from "./netlink_raw.ts";
 * const result = sendToPort(openConnectorSender(), 12345, new Uint8Array(76));
 * if (result !== 0) console.log("refused with errno", result);
 * ```
 */
export function sendToPort(fd: number, port: number, message: Uint8Array<ArrayBuffer>): number {
  const address = new Uint8Array(SOCKADDR_NL_SIZE);
  const view = new DataView(address.buffer);
  view.setUint16(0, AF_NETLINK, true);
  view.setUint32(4, port >>> 0, true); // nl_pid: the destination port
  view.setUint32(8, 0, true); // nl_groups: unicast only
  const sent = testLibc().sendto(fd, message, BigInt(message.length), 0, address, SOCKADDR_NL_SIZE);
  return sent < 0 ? errno() : 0;
}

/** One datagram received by {@linkcode receiveNow}. */
export interface RawDatagram {
  /** Bytes received into the buffer. */
  length: number;
  /** The sender's netlink port (0 = the kernel). */
  senderPort: number;
}

/**
 * Receives one datagram from netlink socket `fd` without blocking: `null` when
 * nothing is queued. A receive-buffer overrun (`ENOBUFS`) is reported as a
 * zero-length datagram from port 0, so callers still see that traffic came.
 * Throws {@linkcode ErrnoError} on other failures.
 *
 * @example
 * ```ts ignore
 * import { receiveNow } from "./netlink_raw.ts";
 * const buffer = new Uint8Array(65536);
 * for (let d = receiveNow(3, buffer); d !== null; d = receiveNow(3, buffer)) console.log(d.length);
 * ```
 */
export function receiveNow(fd: number, buffer: Uint8Array<ArrayBuffer>): RawDatagram | null {
  const from = new Uint8Array(SOCKADDR_NL_SIZE);
  const fromLength = new Uint8Array(4);
  new DataView(fromLength.buffer).setUint32(0, SOCKADDR_NL_SIZE, true);
  for (;;) {
    const n = Number(
      testLibc().recvfrom(fd, buffer, BigInt(buffer.length), MSG_DONTWAIT, from, fromLength),
    );
    if (n >= 0) return { length: n, senderPort: new DataView(from.buffer).getUint32(4, true) };
    const code = errno();
    if (code === Errno.EAGAIN) return null;
    if (code === Errno.ENOBUFS) return { length: 0, senderPort: 0 };
    if (code !== Errno.EINTR) throw new ErrnoError("recvfrom", code);
  }
}

/** `SOL_SOCKET`, `SO_DETACH_FILTER` (include/uapi/asm-generic/socket.h). */
const SOL_SOCKET = 1;
const SO_DETACH_FILTER = 27;

/**
 * Takes any classic BPF filter off socket `fd` (a borrowed copy acts on the
 * owner's socket); `false` when it had none (`ENOENT`).
 *
 * @example
 * ```ts ignore
 * import { detachFilter } from "./netlink_raw.ts";
 * detachFilter(listener.fd);
 * ```
 */
export function detachFilter(fd: number): boolean {
  return testLibc().setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, new Uint8Array(4), 4) === 0;
}

/**
 * Closes a descriptor opened by this module or borrowed with `borrowDescriptor` (borrow_fd.ts).
 *
 * @example
 * ```ts ignore
 * import { closeDescriptor, openConnectorSender } from "./netlink_raw.ts";
 * closeDescriptor(openConnectorSender());
 * ```
 */
export function closeDescriptor(fd: number): void {
  testLibc().close(fd);
}
