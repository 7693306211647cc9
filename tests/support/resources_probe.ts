/**
 * Fixture for tests/resources_test.ts (run with `--v8-flags=--expose-gc`):
 * watches while it makes `Deno.args[0]` events (default 100,000) with a
 * clone storm, and prints JSON samples of open descriptors, active timers and
 * handles, heap after a full GC, and RSS: after a warm-up, after the run, and
 * after close().
 *
 * @module
 */

import process from "node:process";
import { listDirectory, readFileText, readLink } from "../../ffi/proc_fs.ts";
import { setStormExitSignal, spawnExitingPids } from "./ffi/clone.ts";
import { watch } from "../../mod.ts";

// Storm children exit without SIGCHLD: no signal delivery per process.
setStormExitSignal(0);

const target = Number(Deno.args[0] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

const watcher = watch({ handleSignals: false });
let delivered = 0;
let lost = 0;
const consuming = (async () => {
  for await (const batch of watcher.batches()) {
    for (const event of batch) {
      if (event.type === "lost") lost += event.count;
      else delivered++;
    }
  }
})();

async function generate(until: number): Promise<void> {
  while (delivered + lost < until) {
    spawnExitingPids(500);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  // Let the pump finish what is queued before measuring.
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * What each open descriptor refers to, sorted, without inode numbers;
 * sockets are told apart as netlink (what a watcher opens) or other (the
 * runtime's own, e.g. its signal or child-process plumbing).
 */
function descriptors(): string[] {
  const netlink = new Set(
    (readFileText("/proc/self/net/netlink") ?? "").split("\n").slice(1)
      .map((line) => line.trim().split(/\s+/)[9]).filter((inode) => inode !== undefined),
  );
  return (listDirectory("/proc/self/fd") ?? []).map((fd) => {
    const target = readLink(`/proc/self/fd/${fd}`) ?? "?";
    const socket = /^socket:\[(\d+)\]$/.exec(target);
    if (socket) return netlink.has(socket[1]) ? "socket:netlink" : "socket:other";
    return target.replace(/\[\d+\]$/, "");
  }).toSorted();
}

/**
 * The timers and handles present in every one of several looks 20 ms apart:
 * while other processes on the machine make events, the watcher's pump sets a
 * short pacing timer now and then (lib/watcher.ts), which one look may catch;
 * a leak is there at every look.
 */
async function steadyResources(): Promise<string[]> {
  let steady: string[] | null = null;
  for (let look = 0; look < 10; look++) {
    const now = (process.getActiveResourcesInfo() as string[]).toSorted();
    if (steady === null) {
      steady = now;
    } else {
      const left = [...now];
      steady = steady.filter((name) => {
        const at = left.indexOf(name);
        if (at < 0) return false;
        left.splice(at, 1);
        return true;
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return steady ?? [];
}

async function sample() {
  const resources = await steadyResources();
  gc!();
  gc!();
  const pageSize = 4096;
  const statm = readFileText("/proc/self/statm") ?? "0 0";
  return {
    delivered,
    lost,
    fds: descriptors(),
    resources,
    heapUsed: Deno.memoryUsage().heapUsed,
    rss: Number(statm.split(" ")[1]) * pageSize,
  };
}

await generate(20_000);
const before = await sample();
await generate(before.delivered + before.lost + target);
const after = await sample();
await watcher[Symbol.asyncDispose](); // closes and waits until the socket is released
await consuming;
const closed = await sample();
console.log(JSON.stringify({ before, after, closed, stats: watcher.stats }));
// A leaked timer must show in the samples, not keep this process alive.
Deno.exit(0);
