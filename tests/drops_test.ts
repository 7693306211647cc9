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
  "drops: the count the socket gives equals the Drops column of /proc/net/netlink",
  async () => {
    // Types filtered in the kernel: losses come from the drop counter, not from
    // sequence gaps. A 4 KiB buffer, unread while this thread makes a storm.
    const watcher = watchAll({ events: ["exit"], receiveBufferBytes: 4096, kernelFilter: "bpf" });
    try {
      spawnExitingMany(2000, Infinity);
      const counted = watcher.stats.lostByKernel;
      const listed = readNetlinkDrops(watcher.portId);
      assert.ok(counted > 0, "a 4 KiB buffer left unread through 2,000 exits must drop some");
      assert.equal(counted, listed);
    } finally {
      watcher.close();
      for await (const _ of watcher) { /* drain what was queued */ }
    }
  },
);
