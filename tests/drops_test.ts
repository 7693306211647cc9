/**
 * The drop counter of the watcher's own socket, read from the Drops column of
 * /proc/net/netlink (lib/connector/drops.ts).
 */

import assert from "node:assert/strict";
import { parseNetlinkDrops } from "../lib/connector/drops.ts";

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
