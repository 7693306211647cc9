/**
 * Decoding of proc connector datagrams: bytes in, typed events out. Pure: no
 * FFI, no clock, no I/O, so it is tested from byte fixtures without root.
 *
 * A datagram holds one or more netlink messages, each aligned to 4 bytes
 * (`NLMSG_ALIGN`). A message that lies about its size is counted as malformed;
 * the messages before it still decode.
 *
 * @module
 */

import type { KernelEvent } from "../events/events.ts";
import { ROW_OF_WHAT } from "../events/event_types.ts";
import {
  CN_IDX_PROC,
  CN_VAL_PROC,
  NLMSG_DONE,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  PROC_EVENT_HEAD,
  PROC_EVENT_OFFSET,
  ProcEventWhat,
} from "../../ground/cn_proc.ts";
import { decodeWaitStatus } from "../events/signals.ts";

/** What one netlink message turned out to be. */
export type DecodedMessage =
  | {
    kind: "event";
    event: KernelEvent;
    /** Per-CPU sequence number the kernel gave the message (`cn_msg.seq`). */
    seq: number;
  }
  | {
    kind: "ack";
    /**
     * The CPU whose counter numbered it (`cn_proc_ack()` goes through
     * `send_msg()` in cn_proc.c: 4.9 and 6.18 checked); `null` for the -1 of
     * older kernels (3.x), whose ACKs take no number.
     */
    cpu: number | null;
    /** That CPU's sequence number; on older kernels an echo of the request's `seq`. */
    seq: number;
    /** The request's `ack` + 1. */
    ack: number;
    /** The kernel's answer: 0 or an errno value. */
    error: number;
  }
  | {
    /** A proc event whose `what` this decoder does not know (a newer kernel). */
    kind: "unknown";
    what: number;
    cpu: number;
    seq: number;
  }
  | {
    /** A connector message for another connector user (`cn_msg.id` not proc). */
    kind: "other";
  }
  | {
    kind: "malformed";
    /** Why the message could not be decoded. */
    reason: string;
  };

/** Minimum `cn_msg.len` of the ACK (`PROC_EVENT_NONE`): the head and `event_data.ack.err`. */
const ACK_LENGTH = PROC_EVENT_HEAD + 4;

/** `cn_msg.len` from which coredump and exit events carry the parent (Linux 4.18). */
const COREDUMP_WITH_PARENT = PROC_EVENT_HEAD + 16;
const EXIT_WITH_PARENT = PROC_EVENT_HEAD + 24;

/** Wall − monotonic offset: fixed, or per timestamp (`WallClock` from ./wall_clock.ts). */
export type WallOffset = bigint | { offsetAt(timestampNs: bigint): bigint };

const utf8 = new TextDecoder("utf-8", { fatal: false });
/** `execEventAt()`'s output for the decoder: process id, thread id. */
const execIds = new Int32Array(2);

/**
 * Decodes one datagram of `length` bytes and appends what it held to `out`.
 *
 * `wallOffsetNs` is wall clock minus monotonic clock: a fixed offset, or a
 * clock (a `WallClock`) that gives the offset for each timestamp, so
 * `time` matches what the formatters print for the same event.
 *
 * @example
 * ```ts
 * import { decodeDatagram, type DecodedMessage } from "./decode.ts";
 * const out: DecodedMessage[] = [];
 * decodeDatagram(new Uint8Array(8), 8, 0n, out);
 * console.log(out[0].kind); // "malformed"
 * ```
 */
export function decodeDatagram(
  bytes: Uint8Array,
  length: number,
  wallOffsetNs: WallOffset,
  out: DecodedMessage[],
): void {
  const end = Math.min(length, bytes.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, end);
  let offset = 0;
  while (offset < end) {
    const remaining = end - offset;
    if (remaining < NLMSG_HDRLEN) {
      out.push({ kind: "malformed", reason: `${remaining} trailing bytes` });
      return;
    }
    const messageLength = view.getUint32(offset, true);
    if (messageLength < NLMSG_HDRLEN || messageLength > remaining) {
      out.push({
        kind: "malformed",
        reason: `nlmsg_len ${messageLength} with ${remaining} bytes left`,
      });
      return;
    }
    const type = view.getUint16(offset + 4, true);
    if (type !== NLMSG_NOOP) {
      out.push(
        type === NLMSG_DONE
          ? decodeConnectorMessage(view, offset, messageLength, wallOffsetNs)
          : { kind: "malformed", reason: `nlmsg_type ${type}` },
      );
    }
    offset += (messageLength + 3) & ~3;
  }
}

function decodeConnectorMessage(
  view: DataView,
  start: number,
  messageLength: number,
  wallOffsetNs: WallOffset,
): DecodedMessage {
  if (messageLength < PROC_EVENT_OFFSET) {
    return { kind: "malformed", reason: `nlmsg_len ${messageLength} holds no cn_msg` };
  }
  const idx = view.getUint32(start + NLMSG_HDRLEN, true);
  const val = view.getUint32(start + NLMSG_HDRLEN + 4, true);
  if (idx !== CN_IDX_PROC || val !== CN_VAL_PROC) return { kind: "other" };
  const seq = view.getUint32(start + NLMSG_HDRLEN + 8, true);
  const ack = view.getUint32(start + NLMSG_HDRLEN + 12, true);
  const dataLength = view.getUint16(start + NLMSG_HDRLEN + 16, true);
  if (dataLength > messageLength - PROC_EVENT_OFFSET) {
    return {
      kind: "malformed",
      reason: `cn_msg.len ${dataLength} exceeds nlmsg_len ${messageLength}`,
    };
  }
  if (dataLength < PROC_EVENT_HEAD) {
    return { kind: "malformed", reason: `cn_msg.len ${dataLength} holds no proc_event` };
  }
  const base = start + PROC_EVENT_OFFSET;
  const what = view.getUint32(base, true);
  const cpu = view.getUint32(base + 4, true);
  // The event type's row (lib/events/event_types.ts) names the type and the
  // bytes it needs; PROC_EVENT_NONE, the ACK, is no event type.
  const row = ROW_OF_WHAT.get(what);
  if (row === undefined && what !== ProcEventWhat.NONE) return { kind: "unknown", what, cpu, seq };
  const required = row === undefined ? ACK_LENGTH : row.size;
  if (dataLength < required) {
    return {
      kind: "malformed",
      reason: `what 0x${what.toString(16)} needs ${required} bytes, cn_msg.len is ${dataLength}`,
    };
  }
  if (row === undefined) {
    const ackCpu = cpu === 0xffffffff ? null : cpu;
    return { kind: "ack", cpu: ackCpu, seq, ack, error: view.getUint32(base + 16, true) };
  }
  const timestampNs = view.getBigUint64(base + 8, true);
  const time = new Date(
    Number(
      (timestampNs +
        (typeof wallOffsetNs === "bigint" ? wallOffsetNs : wallOffsetNs.offsetAt(timestampNs))) /
        1_000_000n,
    ),
  );
  // Each event is one object literal, its keys in the order of the KernelEvent
  // types (type, cpu, timestampNs, time, then the type's own), read straight
  // from the view: no spread head object and no accessor closures per message,
  // since `watch` decodes every event of a storm.
  const d = base + PROC_EVENT_HEAD;
  let event: KernelEvent;
  switch (row.type) {
    case "fork": {
      const childTid = view.getInt32(d + 8, true);
      const childPid = view.getInt32(d + 12, true);
      event = {
        type: "fork",
        cpu,
        timestampNs,
        time,
        parentPid: view.getInt32(d + 4, true),
        parentTid: view.getInt32(d, true),
        childPid,
        childTid,
        thread: childPid !== childTid,
      };
      break;
    }
    case "exec":
      // The reader the exec-capture worker runs too (one layout for both).
      execEventAt(view, start, messageLength, execIds);
      event = { type: "exec", cpu, timestampNs, time, pid: execIds[0], tid: execIds[1] };
      break;
    case "uid":
      event = {
        type: "uid",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        ruid: view.getUint32(d + 8, true),
        euid: view.getUint32(d + 12, true),
      };
      break;
    case "gid":
      event = {
        type: "gid",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        rgid: view.getUint32(d + 8, true),
        egid: view.getUint32(d + 12, true),
      };
      break;
    case "sid":
      event = {
        type: "sid",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
      };
      break;
    case "ptrace":
      event = {
        type: "ptrace",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        tracerPid: view.getInt32(d + 12, true),
        tracerTid: view.getInt32(d + 8, true),
      };
      break;
    case "comm": {
      const name = new Uint8Array(view.buffer, view.byteOffset + d + 8, 16);
      const nul = name.indexOf(0);
      event = {
        type: "comm",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        comm: utf8.decode(nul < 0 ? name : name.subarray(0, nul)),
      };
      break;
    }
    case "coredump": {
      const hasParent = dataLength >= COREDUMP_WITH_PARENT;
      event = {
        type: "coredump",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        parentPid: hasParent ? view.getInt32(d + 12, true) : null,
        parentTid: hasParent ? view.getInt32(d + 8, true) : null,
      };
      break;
    }
    default: {
      // ProcEventWhat.EXIT, the only `what` left in REQUIRED_LENGTH.
      const status = view.getUint32(d + 8, true);
      const decoded = decodeWaitStatus(status);
      const hasParent = dataLength >= EXIT_WITH_PARENT;
      event = {
        type: "exit",
        cpu,
        timestampNs,
        time,
        pid: view.getInt32(d + 4, true),
        tid: view.getInt32(d, true),
        exitCode: decoded.exitCode,
        signal: decoded.signal,
        coreDumped: decoded.coreDumped,
        status,
        exitSignal: view.getInt32(d + 12, true),
        parentPid: hasParent ? view.getInt32(d + 20, true) : null,
        parentTid: hasParent ? view.getInt32(d + 16, true) : null,
      };
    }
  }
  return { kind: "event", event, seq };
}

// The readers below run in the exec-capture worker too, from their source text
// (lib/process/exec_capture_worker.ts): each may refer only to its parameters,
// to ground/cn_proc.ts's constants and to the readers before it.

/**
 * The `what` of the proc event in the netlink message at `offset` of a
 * datagram, when that message is a proc connector message (`NLMSG_DONE`,
 * `cn_msg.id` CN_IDX_PROC/CN_VAL_PROC) whose `cn_msg.len` holds at least
 * `dataBytes` bytes of `struct proc_event` and fits in the message; else -1.
 * `messageLength` is the message's `nlmsg_len`, already checked to lie within
 * the datagram.
 *
 * @example
 * ```ts
 * import { procEventAt } from "./decode.ts";
 * console.log(procEventAt(new DataView(new ArrayBuffer(16)), 0, 16, 16)); // -1
 * ```
 */
export function procEventAt(
  view: DataView,
  offset: number,
  messageLength: number,
  dataBytes: number,
): number {
  if (
    messageLength < PROC_EVENT_OFFSET + dataBytes ||
    view.getUint16(offset + 4, true) !== NLMSG_DONE ||
    view.getUint32(offset + NLMSG_HDRLEN, true) !== CN_IDX_PROC ||
    view.getUint32(offset + NLMSG_HDRLEN + 4, true) !== CN_VAL_PROC
  ) {
    return -1;
  }
  const dataLength = view.getUint16(offset + NLMSG_HDRLEN + 16, true); // cn_msg.len
  if (dataLength < dataBytes || dataLength > messageLength - PROC_EVENT_OFFSET) return -1;
  return view.getUint32(offset + PROC_EVENT_OFFSET, true);
}

/**
 * Reads the exec event in the netlink message at `offset` of a datagram
 * (`struct proc_event` with `event_data.exec`): returns its `timestamp_ns`
 * and writes `process_tgid` (the process id) to `ids[0]` and `process_pid`
 * (the thread id) to `ids[1]`; `null` when the message is no exec event (see
 * {@linkcode procEventAt}). Allocates nothing but the timestamp: the
 * exec-capture worker calls it for every message it receives.
 *
 * @example
 * ```ts
 * import { execEventAt } from "./decode.ts";
 * const ids = new Int32Array(2);
 * console.log(execEventAt(new DataView(new ArrayBuffer(64)), 0, 64, ids)); // null
 * ```
 */
export function execEventAt(
  view: DataView,
  offset: number,
  messageLength: number,
  ids: Int32Array,
): bigint | null {
  if (procEventAt(view, offset, messageLength, PROC_EVENT_HEAD + 8) !== ProcEventWhat.EXEC) {
    return null;
  }
  const data = offset + PROC_EVENT_OFFSET + PROC_EVENT_HEAD;
  ids[0] = view.getInt32(data + 4, true); // process_tgid
  ids[1] = view.getInt32(data, true); // process_pid
  return view.getBigUint64(offset + PROC_EVENT_OFFSET + 8, true); // timestamp_ns
}

/**
 * The kernel's answer in the netlink message at `offset` of a datagram when
 * it is the ACK of a request sent with `cn_msg.ack` = `ack` (the kernel
 * answers `ack` + 1, cn_proc_ack() in drivers/connector/cn_proc.c): 0 or an
 * errno value (`event_data.ack.err`); `null` for any other message.
 *
 * @example
 * ```ts
 * import { ackErrorAt } from "./decode.ts";
 * console.log(ackErrorAt(new DataView(new ArrayBuffer(64)), 0, 64, 7)); // null
 * ```
 */
export function ackErrorAt(
  view: DataView,
  offset: number,
  messageLength: number,
  ack: number,
): number | null {
  if (
    procEventAt(view, offset, messageLength, PROC_EVENT_HEAD + 4) !== ProcEventWhat.NONE ||
    view.getUint32(offset + NLMSG_HDRLEN + 12, true) !== ((ack + 1) >>> 0)
  ) {
    return null;
  }
  return view.getUint32(offset + PROC_EVENT_OFFSET + PROC_EVENT_HEAD, true);
}
