/**
 * Opening a proc connector subscription: the socket, the LISTEN request, and
 * finding out whether this kernel filters events for us (Linux ≥ 6.6).
 *
 * @module
 */

import { ConnectorSocket } from "../../ffi/connector.ts";
import { Errno, ErrnoError } from "../../ffi/libc.ts";
import {
  NetworkNamespaceError,
  PermissionError,
  ProcEventsUnavailableError,
} from "../../ground/errors.ts";
import {
  controlMessage,
  PROC_CN_MCAST_IGNORE,
  PROC_CN_MCAST_LISTEN,
  PROC_EVENT_ALL,
} from "../../ground/cn_proc.ts";

/**
 * How events are selected: by the kernel (`struct proc_input`, 6.6+) or by procwatch.
 *
 * @example
 * ```ts
 * import { watch } from "@procwatch/procwatch";
 * using watcher = watch({ events: ["exit"] });
 * console.log(watcher.filterMode); // "kernel" on Linux >= 6.6
 * ```
 */
export type FilterMode = "kernel" | "userspace";

/** Receives what the socket holds and reports whether the ACK numbered `ack` has arrived. */
export type AckWaiter = (ack: number) => { seen: boolean; error: number };

/** How long to wait for the kernel's ACK of a LISTEN before deciding it is not coming. */
const ACK_TIMEOUT_MS = 200;
const LISTEN_TIMEOUT_MS = 1000;
/** How long to wait for the ACK of a repeatable request before sending it again. */
const RESEND_MS = 20;

/**
 * Opens the socket (with a BPF socket `filter` attached before it joins the
 * proc events group, when given), translating system errors into {@linkcode ProcwatchError}s
 * with advice.
 */
export function openSocket(
  receiveBufferBytes: number,
  filter: Uint8Array<ArrayBuffer> | null = null,
): ConnectorSocket {
  try {
    return ConnectorSocket.open({ receiveBufferBytes, filter });
  } catch (error) {
    throw explain(error);
  }
}

/**
 * Registers as a listener. Asks for `eventMask` through the kernel filter when
 * the kernel has one (it ACKs an 8-byte `struct proc_input`; older kernels
 * silently drop it), else falls back to the classic 4-byte LISTEN.
 *
 * `pump` must receive and process whatever the socket holds (events that
 * arrive meanwhile are not lost) and report whether the ACK has been seen.
 */
export function listen(
  socket: ConnectorSocket,
  eventMask: number,
  allowKernelFilter: boolean,
  pump: AckWaiter,
): FilterMode {
  try {
    if (allowKernelFilter) {
      const ack = randomU32();
      // PROC_EVENT_ALL first: the kernel filter drops ACKs (what = 0) for any narrower mask.
      const request = controlMessage(PROC_CN_MCAST_LISTEN, socket.portId, ack, ack, PROC_EVENT_ALL);
      socket.send(request);
      if (awaitAck(socket, pump, (ack + 1) >>> 0, ACK_TIMEOUT_MS, request)) {
        if ((eventMask >>> 0) !== (PROC_EVENT_ALL >>> 0)) {
          socket.send(controlMessage(PROC_CN_MCAST_LISTEN, socket.portId, ack, ack, eventMask));
        }
        return "kernel";
      }
    }
    const ack = randomU32();
    socket.send(controlMessage(PROC_CN_MCAST_LISTEN, socket.portId, ack, ack));
    if (!awaitAck(socket, pump, (ack + 1) >>> 0, LISTEN_TIMEOUT_MS)) {
      throw new ProcEventsUnavailableError("the kernel did not acknowledge PROC_CN_MCAST_LISTEN");
    }
    return "userspace";
  } catch (error) {
    throw explain(error);
  }
}

/** Tells the kernel to stop sending to this socket. Never throws. */
export function ignore(socket: ConnectorSocket): boolean {
  try {
    socket.send(controlMessage(PROC_CN_MCAST_IGNORE, socket.portId, 0, 0));
    return true;
  } catch {
    return false;
  }
}

function awaitAck(
  socket: ConnectorSocket,
  pump: AckWaiter,
  ack: number,
  timeoutMs: number,
  resend: Uint8Array<ArrayBuffer> | null = null,
): boolean {
  // The kernel handles a LISTEN inside our send() call, so its ACK is normally
  // queued already; the timed wait covers kernels that answer from a workqueue.
  // The ACK is a multicast like any event: with a small buffer on a busy
  // machine it can be dropped (an overrun drops everything until the queue is
  // read empty). `resend` is a request that is safe to repeat: an 8-byte
  // `proc_input` LISTEN only sets the socket's filter again on 6.6+
  // (cn_proc_mcast_ctl() counts a listener once), and older kernels ignore it.
  // It goes out right after a drain, when the queue has room for its ACK.
  const deadline = Date.now() + timeoutMs;
  let resendAt = Date.now() + RESEND_MS;
  for (;;) {
    const result = pump(ack);
    if (result.seen) {
      if (result.error === Errno.EPERM || result.error === Errno.EACCES) {
        throw new PermissionError();
      }
      if (result.error !== 0) {
        throw new ProcEventsUnavailableError(
          `the kernel answered LISTEN with errno ${result.error}`,
        );
      }
      return true;
    }
    const now = Date.now();
    const left = deadline - now;
    if (left <= 0) return false;
    if (resend !== null && now >= resendAt) {
      socket.send(resend);
      resendAt = now + RESEND_MS;
    }
    socket.waitSync(resend === null ? left : Math.min(left, RESEND_MS));
  }
}

function randomU32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff;
}

/** Turns a system error into one with advice for the user. */
export function explain(error: unknown): unknown {
  if (!(error instanceof ErrnoError)) return error;
  switch (error.errno) {
    case Errno.EPERM:
    case Errno.EACCES:
      return new PermissionError({ cause: error });
    case Errno.ECONNREFUSED:
      return new NetworkNamespaceError({ cause: error });
    case Errno.EPROTONOSUPPORT:
    case Errno.EAFNOSUPPORT:
      return new ProcEventsUnavailableError("this kernel has no netlink connector", {
        cause: error,
      });
    default:
      return error;
  }
}
