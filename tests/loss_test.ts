/**
 * Exact loss accounting, proven against a reference listener.
 *
 * A watcher with a tiny receive buffer ("A") runs on the test's main thread;
 * a fork storm made synchronously on that same thread keeps it from reading,
 * so the kernel drops messages for it. A reference listener ("B", in a
 * Worker, 64 MiB buffer, its own socket and decoder) keeps up and sees what
 * was generated. The kernel numbers messages per CPU and both sockets get
 * each CPU's messages in the same order, so per CPU, between marker processes
 * pinned to that CPU, A's received events plus A's reported loss must equal
 * B's count: reported loss = generated − received, exactly when no ACK fell
 * in the window. An ACK (any process's LISTEN or IGNORE, multicast to every
 * listener) takes a number like an event; A cannot tell a dropped ACK from a
 * dropped event, so each ACK B saw in a window may add one to A's count there.
 */

import assert from "node:assert/strict";
import { pinToCpu, spawnExiting, spawnExitingMany } from "./support/ffi/clone.ts";
import type { ProcEvent } from "../lib/events/events.ts";
import type { ProcWatcher } from "../lib/watch/watcher.ts";
import { readNetlinkDrops } from "../lib/connector/drops.ts";
import { ProcEventWhat } from "../ground/cn_proc.ts";
import {
  ACK_KEY,
  type ReferenceCommand,
  type ReferenceReply,
} from "./support/reference_listener.ts";
import { kernelTest, watchAll } from "./support/kernel.ts";

const START_CODE = 77;
const END_CODE = 78;
const STORM = 6000;
const CPUS = navigator.hardwareConcurrency;

/** A's stream, in order: per entry its CPU, a key (our exit's pid, 0, or -1 for `lost`), a lost count. */
class Recorder {
  readonly cpus: number[] = [];
  readonly keys: number[] = [];
  readonly lost: number[] = [];
  readonly exits = new Map<number, number>(); // our exit pid → its cpu
  lostEvents = 0;

  add(event: ProcEvent): void {
    if (event.type === "lost") {
      assert.equal(event.reason, "kernel");
      this.lostEvents += event.count;
      this.cpus.push(event.cpu ?? -1);
      this.keys.push(-1);
      this.lost.push(event.count);
      return;
    }
    const key = event.type === "exit" && event.parentPid === Deno.pid ? event.pid : 0;
    if (key !== 0) this.exits.set(key, event.cpu ?? -1);
    this.cpus.push(event.cpu ?? -1);
    this.keys.push(key);
    this.lost.push(0);
  }
}

/**
 * Counts per CPU `cpu` the entries after the one keyed `from` up to and
 * including `to`: events, reported losses (key -1), ACKs ({@linkcode ACK_KEY}).
 */
function window(
  cpus: readonly number[],
  keys: readonly number[],
  lost: readonly number[] | null,
  cpu: number,
  from: number,
  to: number,
): { events: number; lost: number; acks: number } {
  let inside = false;
  let events = 0;
  let lostCount = 0;
  let acks = 0;
  let found = false;
  for (let i = 0; i < keys.length; i++) {
    // A loss without a CPU (drop counter) belongs to no window: it makes the count fail.
    if (cpus[i] !== cpu) continue;
    if (!inside) {
      if (keys[i] === from) inside = true;
      continue;
    }
    if (keys[i] === -1) lostCount += lost?.[i] ?? 0;
    else if (keys[i] === ACK_KEY) acks++;
    else events++;
    if (keys[i] === to) {
      found = true;
      break;
    }
  }
  assert.ok(inside && found, `markers ${from}..${to} not both seen on cpu ${cpu}`);
  return { events, lost: lostCount, acks };
}

function startReference(
  command: Extract<ReferenceCommand, { type: "start" }>,
): {
  ready: Promise<void>;
  stop(endPids: number[]): Promise<Extract<ReferenceReply, { type: "done" }>>;
} {
  const worker = new Worker(new URL("./support/reference_listener.ts", import.meta.url), {
    type: "module",
  });
  let onReady: () => void = () => {};
  let onDone: (reply: Extract<ReferenceReply, { type: "done" }>) => void = () => {};
  let onError: (error: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onError = reject;
  });
  const done = new Promise<Extract<ReferenceReply, { type: "done" }>>((resolve, reject) => {
    onDone = resolve;
    const previous = onError;
    onError = (error) => {
      previous(error);
      reject(error);
    };
  });
  done.catch(() => {});
  worker.onmessage = (message: MessageEvent<ReferenceReply>) => {
    const reply = message.data;
    if (reply.type === "ready") onReady();
    else if (reply.type === "done") onDone(reply);
    else onError(new Error(`reference listener: ${reply.message}`));
  };
  worker.postMessage(command);
  return {
    ready,
    async stop(endPids) {
      worker.postMessage({ type: "stop", endPids } satisfies ReferenceCommand);
      try {
        return await done;
      } finally {
        worker.terminate();
      }
    },
  };
}

/** Reads A in the background into `recorder`. */
function record(watcher: ProcWatcher, recorder: Recorder): Promise<void> {
  return (async () => {
    for await (const batch of watcher.batches()) for (const event of batch) recorder.add(event);
  })();
}

const tick = (ms = 2) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Makes marker processes pinned to each CPU until A has received one per CPU;
 * returns the marker pid A saw for each CPU. Waits between tries so A reads.
 */
async function markEachCpu(recorder: Recorder, code: number): Promise<number[]> {
  const markers: number[] = [];
  for (let cpu = 0; cpu < CPUS; cpu++) {
    let seen: number | undefined;
    for (let attempt = 0; attempt < 200 && seen === undefined; attempt++) {
      const restore = pinToCpu(cpu);
      const pid = (() => {
        try {
          return spawnExiting(code);
        } finally {
          restore();
        }
      })();
      for (let wait = 0; wait < 50 && !recorder.exits.has(pid); wait++) await tick();
      if (recorder.exits.get(pid) === cpu) seen = pid;
    }
    assert.ok(seen !== undefined, `no marker reached the lossy watcher on cpu ${cpu}`);
    markers.push(seen);
  }
  return markers;
}

kernelTest("sequence gaps: reported loss equals generated minus received, per CPU", async () => {
  const reference = startReference({
    type: "start",
    parent: Deno.pid,
    receiveBufferBytes: 64 << 20,
  });
  await reference.ready;
  // A: everything, so gaps in each CPU's numbers count losses exactly; tiny buffer.
  const watcher = watchAll({ receiveBufferBytes: 4096 });
  assert.equal(watcher.filterMode, "kernel");
  const recorder = new Recorder();
  const reading = record(watcher, recorder);
  try {
    const starts = await markEachCpu(recorder, START_CODE);
    // The storm: this thread cannot read while it runs, so the kernel drops.
    const made = spawnExitingMany(STORM, Infinity);
    assert.equal(made, STORM);
    const ends = await markEachCpu(recorder, END_CODE);
    const drops = readNetlinkDrops(watcher.portId);
    const ref = await reference.stop(ends);
    assert.equal(ref.lost, 0, "the reference listener must not lose anything");
    assert.equal(ref.gaps, 0, "the reference listener must see every number of every CPU");

    let generated = 0;
    let received = 0;
    let reported = 0;
    const rows: string[] = [];
    let withinBounds = true;
    for (let cpu = 0; cpu < CPUS; cpu++) {
      const b = window(ref.cpus, ref.keys, null, cpu, starts[cpu], ends[cpu]);
      const a = window(recorder.cpus, recorder.keys, recorder.lost, cpu, starts[cpu], ends[cpu]);
      generated += b.events;
      received += a.events;
      reported += a.lost;
      const missed = b.events - a.events;
      // Never below what was missed; above it by at most the ACKs in the window.
      if (a.lost < missed || a.lost > missed + b.acks) withinBounds = false;
      rows.push(
        `cpu ${cpu}: reported ${a.lost}, generated ${b.events} − received ${a.events} = ${missed}` +
          ` (ACKs in the window: ${b.acks})`,
      );
    }
    assert.ok(generated >= 2 * STORM, `generated ${generated}`);
    assert.ok(reported > 0, "the tiny buffer should have overflowed");
    assert.ok(
      !recorder.cpus.some((cpu, i) => cpu === -1 && recorder.keys[i] === -1),
      "every loss has its CPU",
    );
    assert.ok(withinBounds, rows.join("\n"));
    // The counters and the stream agree, and the kernel's own drop counter
    // (which also counts drops after the last marker) is not below them.
    assert.equal(watcher.stats.lostByKernel, recorder.lostEvents);
    assert.ok(drops !== null && drops >= reported, `sk_drops ${drops} < reported ${reported}`);
  } finally {
    watcher.close();
    await reading;
  }
});

/**
 * The kernel filters exits for A: through proc_input, or through the classic
 * BPF socket filter that kernels before 6.6 get (forced here with
 * `kernelFilter: "bpf"`). Either way sequence numbers have gaps by design.
 */
function kernelFilterLossTest(kernelFilter: true | "bpf"): () => Promise<void> {
  return async () => {
    const reference = startReference({
      type: "start",
      parent: Deno.pid,
      eventMask: ProcEventWhat.EXIT,
      receiveBufferBytes: 64 << 20,
    });
    await reference.ready;
    // A filtered set of types: sequence numbers have gaps by design, so losses
    // come from /proc/net/netlink's Drops column. A moderate buffer keeps
    // unrelated bursts outside the storm from overflowing it.
    const watcher = watchAll({ events: ["exit"], receiveBufferBytes: 32 << 10, kernelFilter });
    assert.equal(watcher.filterMode, "kernel");
    assert.equal(watcher.socketFilter.types, kernelFilter === "bpf");
    const recorder = new Recorder();
    const reading = record(watcher, recorder);
    try {
      const starts = await markEachCpu(recorder, START_CODE);
      const lostBefore = watcher.stats.lostByKernel;
      spawnExitingMany(STORM, Infinity);
      const ends = await markEachCpu(recorder, END_CODE);
      const lostAfter = watcher.stats.lostByKernel;
      const ref = await reference.stop(ends);
      assert.equal(ref.lost, 0, "the reference listener must not lose anything");

      let generated = 0;
      let received = 0;
      for (let cpu = 0; cpu < CPUS; cpu++) {
        generated += window(ref.cpus, ref.keys, null, cpu, starts[cpu], ends[cpu]).events;
        const a = window(recorder.cpus, recorder.keys, null, cpu, starts[cpu], ends[cpu]);
        received += a.events;
      }
      assert.ok(generated >= STORM, `generated ${generated}`);
      assert.ok(lostAfter - lostBefore > 0, "the buffer should have overflowed");
      assert.equal(lostAfter - lostBefore, generated - received);
      await tick(20);
      // Every drop is in the stream as a `lost` event (not exact per CPU: the
      // drop counter does not say which CPU).
      assert.equal(recorder.lostEvents, watcher.stats.lostByKernel);
      // Only exits reached A: the program, attached before LISTEN, dropped every
      // other type in the kernel (proc_input narrows only after a first LISTEN).
      if (kernelFilter === "bpf") assert.equal(watcher.stats.filtered, 0);
    } finally {
      watcher.close();
      await reading;
    }
  };
}

kernelTest(
  "kernel filter: loss from the socket's drop counter equals generated minus received",
  kernelFilterLossTest(true),
);

kernelTest(
  "BPF socket filter (no proc_input): loss from the drop counter equals generated minus received",
  kernelFilterLossTest("bpf"),
);
