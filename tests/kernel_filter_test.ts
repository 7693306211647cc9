/**
 * Kernel-side event filtering (Linux ≥ 6.6, `struct proc_input`): detected at
 * run time, used when a subset of event types is asked for, and proven to be
 * the kernel's doing by procwatch's own filter counter staying at zero.
 */

import assert from "node:assert/strict";
import { prepareProgram, reap, spawnExiting } from "./support/ffi/clone.ts";
import type { ExitEvent, ProcEvent } from "../lib/events/events.ts";
import { collectUntil, kernelTest, watchAll } from "./support/kernel.ts";

const END_CODE = 97;

/**
 * procwatch's own filter count once the subscription has settled. Detection
 * listens for everything until the kernel's ACK, then narrows the mask; what
 * arrived in between is filtered in procwatch, so tests measure from here.
 */
async function settledFiltered(watcher: ReturnType<typeof watchAll>): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 50));
  return watcher.stats.filtered;
}

/** Waits until the exit of the process `done` names; returns what came before. */
function untilExit(
  watcher: ReturnType<typeof watchAll>,
  pid: () => number,
): Promise<ProcEvent[]> {
  return collectUntil(watcher, (event) => event.type === "exit" && event.pid === pid());
}

kernelTest("the kernel filter is detected on this kernel (≥ 6.6) and can be refused", () => {
  using kernel = watchAll({ events: ["exit"] });
  assert.equal(kernel.filterMode, "kernel");
  using all = watchAll();
  assert.equal(all.filterMode, "kernel");
  using refused = watchAll({ events: ["exit"], kernelFilter: false });
  assert.equal(refused.filterMode, "userspace");
  return Promise.resolve();
});

kernelTest("failedOnly asks the kernel for NONZERO_EXIT: only failures arrive", async () => {
  using watcher = watchAll({ events: ["exit"], failedOnly: true });
  assert.equal(watcher.filterMode, "kernel");
  const filteredBefore = await settledFiltered(watcher);
  const ours = new Map<number, number>();
  for (let i = 0; i < 50; i++) {
    ours.set(spawnExiting(0), 0);
    ours.set(spawnExiting(3), 3);
  }
  let end = 0;
  const collecting = untilExit(watcher, () => end);
  end = spawnExiting(END_CODE);
  ours.set(end, END_CODE);
  const seen = await collecting;

  for (const event of seen) {
    // Nobody's successful exit reaches us: not ours, not anyone else's.
    assert.equal(event.type, "exit", `unexpected ${event.type}`);
    assert.notEqual((event as ExitEvent).status, 0, "a successful exit got through");
  }
  const received = seen.filter((e): e is ExitEvent =>
    e.type === "exit" && ours.has(e.pid) && e.parentPid === Deno.pid
  );
  assert.deepEqual(
    received.map((e) => e.exitCode).filter((code) => code === 3).length,
    50,
    "every failure of ours arrives",
  );
  assert.equal(received.filter((e) => e.exitCode === 0).length, 0);
  // The kernel did the selecting: procwatch threw nothing away itself.
  assert.equal(watcher.stats.filtered - filteredBefore, 0);
  assert.equal(watcher.stats.lostByKernel, 0);
});

kernelTest(
  "failedOnly without the kernel filter gives the same events, filtered in procwatch",
  async () => {
    using watcher = watchAll({ events: ["exit"], failedOnly: true, kernelFilter: false });
    assert.equal(watcher.filterMode, "userspace");
    const ours = new Set<number>();
    for (let i = 0; i < 20; i++) {
      ours.add(spawnExiting(0));
      ours.add(spawnExiting(5));
    }
    let end = 0;
    const collecting = untilExit(watcher, () => end);
    end = spawnExiting(END_CODE);
    const seen = await collecting;
    const received = seen.filter((e): e is ExitEvent => e.type === "exit" && ours.has(e.pid));
    assert.equal(received.length, 20);
    assert.ok(received.every((e) => e.exitCode === 5));
    assert.ok(seen.every((e) => e.type === "exit" && e.status !== 0));
    // Our 20 successful exits at least (and our forks) were dropped by procwatch.
    assert.ok(watcher.stats.filtered >= 60, `filtered ${watcher.stats.filtered}`);
  },
);

kernelTest("a requested subset of types is delivered, and only it, by the kernel", async () => {
  using watcher = watchAll({ events: ["fork", "exit"] });
  assert.equal(watcher.filterMode, "kernel");
  const filteredBefore = await settledFiltered(watcher);
  let pid = 0;
  const collecting = collectUntil(
    watcher,
    (event) => event.type === "exit" && event.pid === pid && pid !== 0,
  );
  // posix_spawn: fork + exec + exit; the exec must not be sent to us.
  pid = prepareProgram("/bin/sh", ["sh", "-c", "exit 4"]).spawn();
  assert.equal(reap(pid), 4 << 8);
  const seen = await collecting;
  assert.ok(seen.every((e) => e.type === "fork" || e.type === "exit"), "only fork and exit");
  const fork = seen.find((e) => e.type === "fork" && e.childPid === pid);
  assert.ok(fork, "the fork of our child arrives");
  const exit = seen.find((e): e is ExitEvent => e.type === "exit" && e.pid === pid);
  assert.equal(exit?.exitCode, 4);
  assert.equal(
    watcher.stats.filtered - filteredBefore,
    0,
    "the kernel sent no exec (nor any other type)",
  );
});
