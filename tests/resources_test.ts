/**
 * A watcher's resources stay bounded (the ≥5M-event soak is bench/soak.ts):
 * 100,000 events leave no growth in open descriptors, active timers and
 * handles, or heap (a leaked promise, closure or event per message would
 * show as megabytes after a full GC), and close() gives the socket and the
 * eventfd back and leaves no async op pending.
 *
 * Deno 2 has no Deno.resources()/Deno.metrics(): descriptors are counted in
 * /proc/self/fd (ffi/proc_fs.ts listDirectory), timers and handles with
 * node:process getActiveResourcesInfo(), pending promises through the heap
 * after `gc()` in a child started with --v8-flags=--expose-gc, and pending
 * ops (the FFI poll, timers) by Deno's own op and resource sanitizers.
 */

import assert from "node:assert/strict";
import { listDirectory } from "../ffi/proc_fs.ts";
import { effectiveUid } from "../ffi/process.ts";
import { setStormExitSignal, spawnExitingPids } from "./support/ffi/clone.ts";
import { kernelTest, watchAll } from "./support/kernel.ts";
import { libc, LIBC_SYMBOLS } from "../ffi/libc.ts";
import { testLibc } from "./support/ffi/libc.ts";

// Storm children exit without SIGCHLD: no signal delivery per process.
setStormExitSignal(0);

const probe = new URL("./support/resources_probe.ts", import.meta.url).pathname;

interface Sample {
  delivered: number;
  lost: number;
  /** What each open descriptor refers to (inode numbers removed), sorted. */
  fds: string[];
  resources: string[];
  heapUsed: number;
  rss: number;
}

/** Heap growth allowed over 100K events: 2 MiB is 20 bytes per event. */
const HEAP_SLACK = 2 * 1024 * 1024;

kernelTest("100K events: no growth in descriptors, timers/handles or heap", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--v8-flags=--expose-gc", probe, "100000"],
    stdin: "null",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const { before, after, closed } = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    before: Sample;
    after: Sample;
    closed: Sample;
  };
  // Deno opens and closes its own caches (sqlite files in DENO_DIR) and
  // non-netlink sockets (its signal and process plumbing) when it likes —
  // later on a busy machine. A watcher only ever opens a netlink socket and
  // an eventfd; everything else that is not the runtime's is compared too.
  const ours = (sample: Sample) =>
    sample.fds.filter((fd) => !/_cache_v\d+(-wal|-shm)?$/.test(fd) && fd !== "socket:other");
  const events = after.delivered + after.lost - before.delivered - before.lost;
  assert.ok(events >= 100_000, `only ${events} events`);
  assert.deepEqual(
    ours(after),
    ours(before),
    `descriptors changed while watching: ${JSON.stringify(ours(before))} → ${
      JSON.stringify(ours(after))
    }`,
  );
  // The pump has at most one timer of its own (its pacing sleep while events
  // flow, lib/watcher.ts #sleep), there or not depending on what the rest of
  // the machine does at that moment; a leak would add one per batch or event.
  const withoutPacing = (resources: string[]) => {
    const at = resources.indexOf("Timeout");
    return at < 0 ? resources : resources.toSpliced(at, 1);
  };
  assert.deepEqual(
    withoutPacing(after.resources),
    withoutPacing(before.resources),
    "timers or handles grew while watching",
  );
  assert.ok(
    after.heapUsed - before.heapUsed < HEAP_SLACK,
    `heap grew by ${after.heapUsed - before.heapUsed} bytes over ${events} events`,
  );
  const released = [...ours(before)];
  released.splice(released.indexOf("socket:netlink"), 1);
  released.splice(released.indexOf("anon_inode:[eventfd]"), 1);
  assert.deepEqual(ours(closed), released, "close() did not release the socket and the eventfd");
  assert.deepEqual(
    closed.resources,
    withoutPacing(before.resources),
    "close() left a timer or handle",
  );
});

const isRoot = effectiveUid() === 0;

// libc symbols are bound on first use, each by its own Deno.dlopen, and stay bound for the
// process's life. Bind them all before the sanitized test so that its resource check sees the
// watcher's resources only, not a symbol the watcher happens to call first inside the test.
for (const name of Object.keys(LIBC_SYMBOLS) as (keyof typeof LIBC_SYMBOLS)[]) void libc()[name];
// The test's own storm (spawnExitingPids) calls the helpers' table: one library, opened here too.
testLibc();

Deno.test({
  name: "[kernel] a closed watcher leaves no pending op or resource (Deno's sanitizers)",
  ignore: !isRoot && Deno.env.get("PROCWATCH_REQUIRE_KERNEL") !== "1",
  sanitizeOps: true,
  sanitizeResources: true,
  fn: async () => {
    if (!isRoot) throw new Error("real-kernel test needs root");
    const fds = listDirectory("/proc/self/fd")!.length;
    const watcher = watchAll();
    const pids = new Set(spawnExitingPids(2000));
    let seen = 0;
    for await (const batch of watcher.batches()) {
      for (const event of batch) if (event.type === "exit" && pids.has(event.pid)) seen++;
      if (seen === pids.size) break;
    }
    assert.equal(seen, 2000);
    await watcher[Symbol.asyncDispose]();
    assert.equal(listDirectory("/proc/self/fd")!.length, fds);
  },
});
