/**
 * The process table stays bounded: exits evict after the grace, and entries
 * whose exit was never seen (filtered by the kernel, or lost) are swept.
 */

import assert from "node:assert/strict";
import { monotonicNs } from "../ffi/clock.ts";
import { listPids } from "../ffi/proc_dir.ts";
import type { ExitEvent, ForkEvent } from "../lib/events/events.ts";
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

const base = { cpu: 0, time: new Date(0) };

/** A process `pid`'s fork from pid 1. */
function forkOf(pid: number, timestampNs: bigint): ForkEvent {
  return {
    ...base,
    type: "fork",
    timestampNs,
    parentPid: 1,
    parentTid: 1,
    childPid: pid,
    childTid: pid,
    thread: false,
  };
}

/** Process `pid`'s exit, code 0, its parent pid 1. */
function exitOf(pid: number, timestampNs: bigint): ExitEvent {
  return {
    ...base,
    type: "exit",
    timestampNs,
    pid,
    tid: pid,
    exitCode: 0,
    signal: null,
    coreDumped: false,
    status: 0,
    exitSignal: 17,
    parentPid: 1,
    parentTid: 1,
  };
}

Deno.test("ProcessTable: a fork inherits the parent's context; exit evicts after the grace", () => {
  const table = new ProcessTable({ exitGraceMs: 1, details: false });
  table.load(1);
  table.observe(forkOf(4_000_000, 1_000n));
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
  table.observe(exitOf(4_000_000, 3_000n));
  assert.equal(table.get(4_000_000)?.exitNs, 3_000n, "kept during the grace");
  table.evictExited(3_000n + 2_000_000n);
  assert.equal(table.get(4_000_000), undefined, "evicted after the grace");
});

Deno.test("ProcessTable: an exited entry answers late events with every field until its grace ends", () => {
  // Exited entries are kept as typed-array columns once the next event comes (memory in a
  // fork storm): what a late event reads must be what the object held.
  const table = new ProcessTable({ exitGraceMs: 1, details: false });
  table.load(1);
  const exit = (pid: number, timestampNs: bigint) => table.observe(exitOf(pid, timestampNs));
  const comm = (pid: number, timestampNs: bigint, name: string) =>
    table.observe({ ...base, type: "comm", timestampNs, pid, tid: pid, comm: name });
  const [a, b, c] = [4_000_001, 4_000_002, 4_000_003];
  table.observe(forkOf(a, 1_000n));
  table.observe(forkOf(b, 1_100n));
  table.observe(forkOf(c, 1_200n));
  // What the context sets on a record (lib/process/enrich.ts).
  const record = table.get(a)!;
  record.cgroup = "/system.slice/x.service";
  record.cgroupInherited = false;
  record.cmdlineUnknown = "gone";
  record.namespaces = new Uint32Array([1, 2, 3, 4, 5, 6, 7]);
  record.ruid = 4_294_967_294;
  record.euid = 0;
  exit(a, 2_000n);
  // Every field's value (an optional field may be absent or undefined: the same to a reader).
  const fields = (entry: object | undefined) =>
    Object.fromEntries(
      Object.entries(entry ?? {}).filter(([, value]) => value !== undefined),
    );
  const atExit = fields({ ...table.get(a)!, threads: new Map() });
  exit(b, 2_100n);
  exit(c, 2_150n);
  comm(1, 2_200n, table.get(1)?.comm ?? "init"); // a later event: the exits are compacted
  assert.deepEqual(fields(table.get(a)), atExit, "every field as it was at the exit");
  assert.equal(table.get(a), table.get(a), "one object while it is asked for");
  assert.equal(table.get(b)?.exitNs, 2_100n);
  assert.equal(table.size, 4);
  // b's pid is reused within b's grace; c exec's after its exit (de_thread()): it lives.
  table.observe(forkOf(b, 2_300n));
  table.observe({ ...base, type: "exec", timestampNs: 2_400n, pid: c, tid: c });
  comm(1, 2_500n, table.get(1)?.comm ?? "init");
  assert.equal(table.get(b)?.startNs, 2_300n, "the new process, not the exited one");
  assert.equal(table.get(b)?.exitNs, null);
  assert.equal(table.get(c)?.exitNs, null, "an exec un-ended it");
  table.evictExited(2_000n + 1_000_000n);
  assert.equal(table.get(a), undefined, "evicted once its grace ended");
  table.evictExited(10_000_000n);
  assert.equal(table.get(b)?.startNs, 2_300n, "the reused pid's entry stays");
  assert.equal(table.get(c)?.execNs, 2_400n, "the revived entry stays");
  assert.equal(table.size, 3);
});
