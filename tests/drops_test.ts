/**
 * The drop counter of the watcher's own socket: asked of the socket
 * (`getsockopt(SO_MEMINFO)`, ffi/connector.ts), or read from the Drops column
 * of /proc/net/netlink (lib/connector/drops.ts) where the kernel is too old.
 */

import assert from "node:assert/strict";
import { parseNetlinkDrops, readNetlinkDrops } from "../lib/connector/drops.ts";
import { spawnExitingMany } from "./support/ffi/clone.ts";
import { kernelTest, watchAll } from "./support/kernel.ts";

Deno.test("drops: the Drops column of /proc/net/netlink for our socket's port", () => {
  const text = [
    "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode",
    "0000000000000001 0   4242       00000000 0        0        0     2        5        10",
    "0000000000000002 11  4242       00000001 0        0        0     2        17       11",
    "",
  ].join("\n");
  assert.equal(parseNetlinkDrops(text, 4242), 17);
  assert.equal(parseNetlinkDrops(text, 1), null);
  assert.equal(parseNetlinkDrops("garbage", 1), null);
});

kernelTest(
  "drops: the count the socket gives is the Drops column of /proc/net/netlink",
  async () => {
    // Types filtered in the kernel: losses come from the drop counter, not from
    // sequence gaps. 256 KiB, unread while this thread makes a storm of 6,000
    // exits (~1 KiB of buffer each): it overflows. Not smaller: before LISTEN
    // is answered every event on the machine arrives, and a busy machine could
    // crowd the answer itself out of a tiny buffer.
    const watcher = watchAll({
      events: ["exit"],
      receiveBufferBytes: 256 << 10,
      kernelFilter: "bpf",
    });
    try {
      spawnExitingMany(6000, Infinity);
      // The socket keeps dropping what other processes do meanwhile: the count
      // asked of the socket lies between two readings of /proc/net/netlink.
      const before = readNetlinkDrops(watcher.portId);
      const counted = watcher.stats.lostByKernel;
      const after = readNetlinkDrops(watcher.portId);
      assert.ok(before !== null && after !== null, "our socket is listed in /proc/net/netlink");
      assert.ok(before > 0, "an unread 256 KiB buffer through 6,000 exits must drop some");
      assert.ok(before <= counted && counted <= after, `${before} ≤ ${counted} ≤ ${after}`);
    } finally {
      watcher.close();
      for await (const _ of watcher) { /* drain what was queued */ }
    }
  },
);
