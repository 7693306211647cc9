/**
 * Byte fixtures: proc connector datagrams built field by field as the kernel
 * lays them out (struct nlmsghdr + struct cn_msg + struct proc_event).
 *
 * @module
 */

import { ProcEventWhat } from "../../ground/cn_proc.ts";

/** Fields of one message to build. */
export interface FixtureMessage {
  what: number;
  cpu?: number;
  seq?: number;
  ack?: number;
  timestampNs?: bigint;
  /** The event_data words after the 16-byte head, as 32-bit values. */
  data?: number[];
  /** Raw bytes appended after `data` (e.g. a comm name). */
  tail?: Uint8Array;
  /** cn_msg.len; default: 16 + data + tail, padded to 40 like the kernel's sizeof(struct proc_event). */
  dataLength?: number;
  /** Override nlmsg_len. */
  nlmsgLength?: number;
  /** cn_msg.id; default proc (1, 1). */
  idx?: number;
  val?: number;
  nlmsgType?: number;
}

/** Builds one netlink message (not padded). */
export function message(fields: FixtureMessage): Uint8Array {
  const data = fields.data ?? [];
  const tail = fields.tail ?? new Uint8Array(0);
  const natural = 16 + data.length * 4 + tail.length;
  const dataLength = fields.dataLength ?? Math.max(natural, 40);
  const bodyLength = Math.max(dataLength, natural);
  const bytes = new Uint8Array(36 + bodyLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, fields.nlmsgLength ?? bytes.length, true);
  view.setUint16(4, fields.nlmsgType ?? 3, true);
  view.setUint32(8, fields.seq ?? 0, true);
  view.setUint32(16, fields.idx ?? 1, true);
  view.setUint32(20, fields.val ?? 1, true);
  view.setUint32(24, fields.seq ?? 0, true);
  view.setUint32(28, fields.ack ?? 0, true);
  view.setUint16(32, dataLength, true);
  view.setUint32(36, fields.what >>> 0, true);
  view.setUint32(40, fields.cpu ?? 0, true);
  view.setBigUint64(44, fields.timestampNs ?? 1_000_000_000n, true);
  data.forEach((word, i) => view.setUint32(52 + i * 4, word >>> 0, true));
  bytes.set(tail, 52 + data.length * 4);
  return bytes;
}

/** Concatenates messages into one datagram, each padded to 4 bytes (NLMSG_ALIGN). */
export function datagram(...messages: Uint8Array[]): Uint8Array {
  const padded = messages.map((m) => (m.length + 3) & ~3);
  const out = new Uint8Array(padded.reduce((a, b) => a + b, 0));
  let offset = 0;
  messages.forEach((m, i) => {
    out.set(m, offset);
    offset += padded[i];
  });
  return out;
}

/** A comm name as the kernel stores it: 16 bytes, NUL-padded. */
export function commBytes(name: string): Uint8Array {
  const out = new Uint8Array(16);
  out.set(new TextEncoder().encode(name).subarray(0, 15));
  return out;
}

export { ProcEventWhat };
