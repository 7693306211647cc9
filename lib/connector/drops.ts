/**
 * The kernel's count of messages dropped for one netlink socket: the `Drops`
 * column of /proc/net/netlink (`sk_drops`, raised by `netlink_overrun()` for
 * every message that did not fit the receive buffer).
 *
 * @module
 */

import { readFileText } from "../../ffi/proc_fs.ts";
import { NETLINK_CONNECTOR } from "../../ground/cn_proc.ts";

/**
 * Finds the `Drops` value of the socket with netlink port `portId` in the text
 * of /proc/net/netlink; `null` when it is not listed.
 *
 * @example
 * ```ts
 * import { parseNetlinkDrops } from "./drops.ts";
 * const text = "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode\n" +
 *   "0000 11 4242 00000001 0 0 0 2 17 99\n";
 * console.log(parseNetlinkDrops(text, 4242)); // 17
 * ```
 */
export function parseNetlinkDrops(text: string, portId: number): number | null {
  const lines = text.split("\n");
  const header = lines[0]?.trim().split(/\s+/) ?? [];
  const eth = header.indexOf("Eth");
  const pid = header.indexOf("Pid");
  const drops = header.indexOf("Drops");
  if (eth < 0 || pid < 0 || drops < 0) return null;
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (Number(fields[eth]) === NETLINK_CONNECTOR && Number(fields[pid]) === portId) {
      return Number(fields[drops]);
    }
  }
  return null;
}

/** Reads the drop count of our connector socket, or `null` if /proc does not show it. */
export function readNetlinkDrops(portId: number): number | null {
  const text = readFileText("/proc/net/netlink");
  return text === null ? null : parseNetlinkDrops(text, portId);
}
