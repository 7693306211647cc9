/**
 * Numbers and byte layouts of the proc connector protocol, shared by the
 * decoder (pure) and the socket (FFI). Each constant names its kernel source.
 *
 * A datagram from the proc connector is one or more netlink messages:
 *
 * ```text
 * struct nlmsghdr   16 bytes  (include/uapi/linux/netlink.h)
 * struct cn_msg     20 bytes  (include/uapi/linux/connector.h)
 * struct proc_event 40 bytes  (include/uapi/linux/cn_proc.h; 32 before comm events)
 * ```
 *
 * @module
 */

/** `AF_NETLINK` (include/linux/socket.h). */
export const AF_NETLINK = 16;
/** `NETLINK_CONNECTOR` (include/uapi/linux/netlink.h). */
export const NETLINK_CONNECTOR = 11;
/** `CN_IDX_PROC`, `CN_VAL_PROC` (include/uapi/linux/connector.h). */
export const CN_IDX_PROC = 1;
/** `CN_VAL_PROC` (include/uapi/linux/connector.h). */
export const CN_VAL_PROC = 1;

/** nlmsghdr.nlmsg_type values (include/uapi/linux/netlink.h). */
export const NLMSG_NOOP = 1;
/** An error or ACK message from netlink itself. */
export const NLMSG_ERROR = 2;
/** The last part of a multipart message. */
export const NLMSG_DONE = 3;
/** Overrun notice (never sent by current kernels; counted if seen). */
export const NLMSG_OVERRUN = 4;

/** Size of `struct nlmsghdr`. */
export const NLMSG_HDRLEN = 16;
/** Size of `struct cn_msg` without its data. */
export const CN_MSG_HDRLEN = 20;
/** Offset of `struct proc_event` in a message: nlmsghdr + cn_msg. */
export const PROC_EVENT_OFFSET = NLMSG_HDRLEN + CN_MSG_HDRLEN;
/** `what`, `cpu`, `timestamp_ns`: the fixed head of `struct proc_event`. */
export const PROC_EVENT_HEAD = 16;

/** `enum proc_cn_mcast_op` (include/uapi/linux/cn_proc.h). */
export const PROC_CN_MCAST_LISTEN = 1;
/** Stop the kernel from sending to this listener. */
export const PROC_CN_MCAST_IGNORE = 2;

/**
 * `enum proc_cn_event` (include/uapi/linux/cn_proc.h). `NONZERO_EXIT` is only a
 * filter bit (Linux 6.6, commit "connector/cn_proc: Performance improvements"):
 * such events still arrive as `EXIT`.
 */
export const ProcEventWhat = {
  NONE: 0x00000000,
  FORK: 0x00000001,
  EXEC: 0x00000002,
  UID: 0x00000004,
  GID: 0x00000040,
  SID: 0x00000080,
  PTRACE: 0x00000100,
  COMM: 0x00000200,
  NONZERO_EXIT: 0x20000000,
  COREDUMP: 0x40000000,
  EXIT: 0x80000000,
} as const;

/** `PROC_EVENT_ALL` (include/uapi/linux/cn_proc.h, Linux 6.6). */
export const PROC_EVENT_ALL = ProcEventWhat.FORK | ProcEventWhat.EXEC | ProcEventWhat.UID |
  ProcEventWhat.GID | ProcEventWhat.SID | ProcEventWhat.PTRACE | ProcEventWhat.COMM |
  ProcEventWhat.NONZERO_EXIT | ProcEventWhat.COREDUMP | ProcEventWhat.EXIT;

/**
 * Builds the control message a listener sends to the kernel: LISTEN or IGNORE.
 *
 * With `eventMask` the message carries `struct proc_input` (op + event mask, 8
 * bytes, Linux ≥ 6.6); without it, the classic 4-byte `enum proc_cn_mcast_op`.
 * `seq` and `ack` are echoed in the kernel's ACK (`ack` + 1), which is how a
 * listener recognises the answer to its own request among others' ACKs.
 */
export function controlMessage(
  op: number,
  portId: number,
  seq: number,
  ack: number,
  eventMask?: number,
): Uint8Array<ArrayBuffer> {
  const payload = eventMask === undefined ? 4 : 8;
  const bytes = new Uint8Array(NLMSG_HDRLEN + CN_MSG_HDRLEN + payload);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, bytes.length, true); // nlmsg_len
  view.setUint16(4, NLMSG_DONE, true); // nlmsg_type
  view.setUint16(6, 0, true); // nlmsg_flags
  view.setUint32(8, seq, true); // nlmsg_seq
  view.setUint32(12, portId, true); // nlmsg_pid
  view.setUint32(16, CN_IDX_PROC, true); // cn_msg.id.idx
  view.setUint32(20, CN_VAL_PROC, true); // cn_msg.id.val
  view.setUint32(24, seq, true); // cn_msg.seq
  view.setUint32(28, ack, true); // cn_msg.ack
  view.setUint16(32, payload, true); // cn_msg.len
  view.setUint16(34, 0, true); // cn_msg.flags
  view.setUint32(36, op, true);
  if (eventMask !== undefined) view.setUint32(40, eventMask >>> 0, true);
  return bytes;
}
