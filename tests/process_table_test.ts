/**
 * The process table stays bounded: exits evict after the grace, and entries
 * whose exit was never seen (filtered by the kernel, or lost) are swept.
 */

import assert from "node:assert/strict";
import { monotonicNs } from "../ffi/clock.ts";
import { listPids } from "../ffi/proc_dir.ts";
import type { ForkEvent } from "../lib/events/events.ts";
import { ProcessTable } from "../lib/process/table.ts";
import { watchAll } from "./support/kernel.ts";
import { serialKernelTest } from "./support/subprocess.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Runs tests/support/clone_storm.ts in a child Deno: `count` processes that exit at once. */
function storm(count: number, exitCode = 0): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "tests/support/clone_storm.ts", String(count), String(exitCode)],
    cwd: ROOT,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

serialKernelTest(
  "the process table stays bounded through 100K short processes",
  async () => {
    const limit = 20_000;
    await using watcher = watchAll({
      events: ["exit"],
      context: true,
      threads: false,
      processTableSize: limit,
      exitGraceMs: 100,
    });
    const table = watcher.processTable;
    assert.ok(table !== null);
    const before = table.size;
    const child = storm(100_000);
    let largest = 0;
    let exits = 0;
    let lost = 0;
    for await (const batch of watcher.batches()) {
      let finished = false;
      for (const event of batch) {
        if (event.type === "lost") lost += event.count;
        else if (event.type === "exit" && event.process?.ppid === child.pid) exits++;
        else if (event.type === "exit" && event.pid === child.pid) finished = true;
      }
      largest = Math.max(largest, table.size);
      if (finished) break;
    }
    assert.equal((await child.status).code, 0);
    assert.ok(largest <= limit, `table grew to ${largest} (limit ${limit})`);
    // Every child's exit was seen (bar what the kernel dropped) and named after its parent.
    assert.ok(exits + lost >= 100_000, `exits ${exits}, lost ${lost}`);
    // After the grace, only live processes remain.
    await new Promise((resolve) => setTimeout(resolve, 150));
    table.evictExited(monotonicNs());
    const live = listPids().length;
    assert.ok(
      table.size <= Math.max(before, live) + 64,
      `table holds ${table.size} entries; ${live} processes live`,
    );
  },
);

serialKernelTest(
  "exits the kernel never sends (failedOnly) are swept when the table is full",
  async () => {
    const limit = 4_000;
    await using watcher = watchAll({
      events: ["exit"],
      failedOnly: true,
      context: true,
      threads: false,
      processTableSize: limit,
    });
    const table = watcher.processTable;
    assert.ok(table !== null);
    const child = storm(30_000);
    // The storm's own exit is successful, so the kernel filters it too: stop on its status.
    const stopped = child.status.then(() => setTimeout(() => watcher.close(), 300));
    let largest = 0;
    for await (const _batch of watcher.batches()) largest = Math.max(largest, table.size);
    await stopped;
    largest = Math.max(largest, table.size);
    assert.ok(largest <= limit, `table grew to ${largest} (limit ${limit})`);
    assert.ok(table.evictedUnseen > 0, "entries whose exit never came were swept");
  },
);

Deno.test("ProcessTable: a fork inherits the parent's context; exit evicts after the grace", () => {
  const table = new ProcessTable({ exitGraceMs: 1, details: false });
  table.load(1);
  const base = { cpu: 0, time: new Date(0) };
  const fork: ForkEvent = {
    ...base,
    type: "fork",
    timestampNs: 1_000n,
    parentPid: 1,
    parentTid: 1,
    childPid: 4_000_000,
    childTid: 4_000_000,
    thread: false,
  };
  table.observe(fork);
  const child = table.get(4_000_000);
  assert.equal(child?.ppid, 1);
  assert.equal(child?.comm, table.get(1)?.comm);
  assert.equal(child?.startNs, 1_000n);
  table.observe({
    ...base,
    type: "comm",
    timestampNs: 2_000n,
    pid: 4_000_000,
    tid: 4_000_000,
    comm: "renamed",
  });
  assert.equal(table.get(4_000_000)?.comm, "renamed");
  table.observe({
    ...base,
    type: "exit",
    timestampNs: 3_000n,
    pid: 4_000_000,
    tid: 4_000_000,
    exitCode: 0,
    signal: null,
    coreDumped: false,
    status: 0,
    exitSignal: 17,
    parentPid: 1,
    parentTid: 1,
  });
  assert.equal(table.get(4_000_000)?.exitNs, 3_000n, "kept during the grace");
  table.evictExited(3_000n + 2_000_000n);
  assert.equal(table.get(4_000_000), undefined, "evicted after the grace");
});
