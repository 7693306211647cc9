/**
 * Test helpers around netlink sockets: which connector sockets a process
 * holds (from /proc/net/netlink and /proc/PID/fd), forged proc event messages,
 * and whether a borrowed listener socket still gets events from the kernel.
 *
 * @module
 */

import { listDirectory, readFileText, readLink } from "../../ffi/proc_fs.ts";
import { receiveNow } from "./ffi/netlink_raw.ts";
import { CN_IDX_PROC, CN_VAL_PROC, NETLINK_CONNECTOR, NLMSG_DONE } from "../../ground/cn_proc.ts";
import { ProcEventWhat } from "../../ground/cn_proc.ts";
import { decodeDatagram, type DecodedMessage } from "../../lib/connector/decode.ts";

/** One row of /proc/net/netlink. */
export interface NetlinkSocketRow {
  /** Netlink protocol (11 = NETLINK_CONNECTOR). */
  protocol: number;
  /** Port id (`nl_pid`). */
  port: number;
  /** First 32 multicast group bits. */
  groups: number;
  /** Socket inode, as in `socket:[inode]` links. */
  inode: number;
}

/**
 * Parses /proc/net/netlink (this network namespace's netlink sockets).
 *
 * @example
 * ```ts ignore
 * import { netlinkSockets } from "./netlink.ts";
 * console.log(netlinkSockets().filter((row) => row.protocol === 11).length);
 * ```
 */
export function netlinkSockets(): NetlinkSocketRow[] {
  const text = readFileText("/proc/net/netlink") ?? "";
  const rows: NetlinkSocketRow[] = [];
  for (const line of text.split("\n").slice(1)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    rows.push({
      protocol: Number(fields[1]),
      port: Number(fields[2]),
      groups: parseInt(fields[3], 16),
      inode: Number(fields[9]),
    });
  }
  return rows;
}

/**
 * Descriptors of process `pid` that are netlink connector sockets bound to the proc events group.
 *
 * @example
 * ```ts ignore
 * import { procConnectorDescriptors } from "./netlink.ts";
 * console.log(procConnectorDescriptors(Deno.pid)); // [{ fd: 12, port: 4242 }] while watching
 * ```
 */
export function procConnectorDescriptors(pid: number): { fd: number; port: number }[] {
  const rows = new Map<number, NetlinkSocketRow>();
  for (const row of netlinkSockets()) {
    if (row.protocol === NETLINK_CONNECTOR && (row.groups & CN_IDX_PROC) !== 0) {
      rows.set(row.inode, row);
    }
  }
  const found: { fd: number; port: number }[] = [];
  for (const name of listDirectory(`/proc/${pid}/fd`) ?? []) {
    const match = /^socket:\[(\d+)\]$/.exec(readLink(`/proc/${pid}/fd/${name}`) ?? "");
    const row = match ? rows.get(Number(match[1])) : undefined;
    if (row) found.push({ fd: Number(name), port: row.port });
  }
  return found;
}

/**
 * A well-formed proc connector exit message, as the kernel would build it
 * (nlmsghdr + cn_msg + struct proc_event with exit data, 76 bytes).
 *
 * @example
 * ```ts ignore
 * import { forgedExitMessage } from "./netlink.ts";
 * const bytes = forgedExitMessage(1234, 3); // "pid 1234 exited with 3", 76 bytes
 * ```
 */
export function forgedExitMessage(pid: number, exitCode: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(16 + 20 + 16 + 24);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, bytes.length, true); // nlmsg_len
  view.setUint16(4, NLMSG_DONE, true);
  view.setUint32(16, CN_IDX_PROC, true);
  view.setUint32(20, CN_VAL_PROC, true);
  view.setUint32(24, 1, true); // cn_msg.seq
  view.setUint16(32, 16 + 24, true); // cn_msg.len
  view.setUint32(36, ProcEventWhat.EXIT, true);
  view.setUint32(40, 0, true); // cpu
  view.setBigUint64(44, 1n, true); // timestamp_ns
  view.setInt32(52, pid, true); // process_pid
  view.setInt32(56, pid, true); // process_tgid
  view.setUint32(60, (exitCode & 0xff) << 8, true); // exit_code (wait status)
  view.setUint32(64, 17, true); // exit_signal SIGCHLD
  view.setInt32(68, 1, true); // parent_pid
  view.setInt32(72, 1, true); // parent_tgid
  return bytes;
}

/**
 * Everything socket `fd` holds right now, decoded; `datagrams` counts what arrived.
 *
 * @example
 * ```ts ignore
 * import { drainDecoded } from "./netlink.ts";
 * const { datagrams, messages } = drainDecoded(fd);
 * ```
 */
export function drainDecoded(fd: number): { datagrams: number; messages: DecodedMessage[] } {
  const buffer = new Uint8Array(1 << 16);
  const messages: DecodedMessage[] = [];
  let datagrams = 0;
  for (let d = receiveNow(fd, buffer); d !== null; d = receiveNow(fd, buffer)) {
    datagrams++;
    decodeDatagram(buffer, d.length, 0n, messages);
  }
  return { datagrams, messages };
}
