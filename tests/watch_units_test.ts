/**
 * The parts of the watch stream, without a kernel: options and their
 * documented defaults, the per-event selection, loss accounting into the
 * queue, the pump's pacing and the shutdown's once-only close.
 */

import assert from "node:assert/strict";
import type { ExitEvent, ForkEvent, ProcEvent } from "../lib/events/events.ts";
import { UsageError } from "../ground/errors.ts";
import { resolveOptions, type WatchSettings } from "../lib/watch/options.ts";
import { EventSelection } from "../lib/watch/select.ts";
import { LossAccounting } from "../lib/watch/loss.ts";
import { BoundedQueue } from "../lib/watch/queue.ts";
import { zeroStats } from "../lib/watch/stats.ts";
import { DRAIN_BATCH, Pump } from "../lib/watch/pump.ts";
import { Shutdown } from "../lib/watch/shutdown.ts";
import { closeAll } from "../lib/watch/lifecycle.ts";

const base = { cpu: 0, timestampNs: 1n, time: new Date(0) };
const fork = (parentPid: number, childPid: number, thread = false): ForkEvent => ({
  ...base,
  type: "fork",
  parentPid,
  parentTid: parentPid,
  childPid,
  childTid: thread ? childPid + 1 : childPid,
  thread,
});
const exit = (pid: number, status: number, tid = pid): ExitEvent => ({
  ...base,
  type: "exit",
  pid,
  tid,
  exitCode: status >> 8,
  signal: null,
  coreDumped: false,
  status,
  exitSignal: 17,
  parentPid: 1,
  parentTid: 1,
});

Deno.test("every literal @default documented on WatchOptions is the value the watcher uses", async () => {
  const source = await Deno.readTextFile(new URL("../lib/watch/options.ts", import.meta.url));
  const body = source.slice(source.indexOf("export interface WatchOptions"));
  const documented = new Map<string, string>();
  for (const match of body.matchAll(/@default \{([^}]+)\}\s*\*\/\s*(\w+)\?:/g)) {
    documented.set(match[2], match[1]);
  }
  const settings = resolveOptions({});
  const literal = [...documented].filter(([, value]) => /^(true|false|\d+)$/.test(value));
  // Every boolean and size default is documented as a literal.
  assert.deepEqual(literal.map(([name]) => name).sort(), [
    "context",
    "execCapture",
    "exitGraceMs",
    "failedOnly",
    "handleSignals",
    "kernelFilter",
    "maxBatchDelayMs",
    "namespaces",
    "processTableSize",
    "queueCapacity",
    "receiveBufferBytes",
    "threads",
  ]);
  for (const [name, value] of literal) {
    assert.equal(
      String(settings[name as keyof WatchSettings]),
      value,
      `WatchOptions.${name}: documented @default {${value}}`,
    );
  }
  assert.equal(settings.types.size, 9, "events: all event types");
  assert.equal(settings.pids, null, "pids: every process");
});

Deno.test("options: unknown event types and non-positive pids are usage errors; filters pass through", () => {
  assert.throws(() => resolveOptions({ events: ["exec", "spawn" as "exec"] }), UsageError);
  assert.throws(() => resolveOptions({ pids: [0] }), UsageError);
  assert.throws(() => resolveOptions({ pids: [1.5] }), UsageError);
  for (const queueCapacity of [0, -1, 2.5, NaN]) {
    assert.throws(
      () => resolveOptions({ queueCapacity }),
      UsageError,
      `queueCapacity ${queueCapacity}`,
    );
  }
  assert.throws(() => resolveOptions({ processTableSize: 0 }), UsageError);
  assert.throws(() => resolveOptions({ exitGraceMs: -1 }), UsageError);
  assert.throws(() => resolveOptions({ maxBatchDelayMs: NaN }), UsageError);
  assert.throws(() => resolveOptions({ maxBatchDelayMs: Infinity }), UsageError);
  assert.equal(resolveOptions({ maxBatchDelayMs: 0 }).maxBatchDelayMs, 0);
  const settings = resolveOptions({ pids: [5, 5], comm: "make", threads: true, queueCapacity: 8 });
  assert.deepEqual([...settings.pids!], [5]);
  assert.deepEqual(settings.filters, { comm: "make" });
  assert.equal(settings.threads, true);
  assert.equal(settings.queueCapacity, 8);
});

Deno.test("selection: a watched pid's forks and children, not the threads of its children", () => {
  const select = new EventSelection(resolveOptions({ pids: [100], threads: true }));
  assert.equal(select.accepts(fork(100, 200)), true, "its child");
  assert.equal(select.accepts(fork(50, 100)), true, "its own birth");
  // A thread's parentPid is the process's parent (copy_process()): it must not pull it in.
  assert.equal(select.accepts(fork(100, 200, true)), false, "a thread of its child");
  assert.equal(select.accepts(fork(1, 100, true)), true, "its own thread");
  assert.equal(select.accepts(exit(200, 0)), false);
  assert.equal(select.accepts(exit(100, 0)), true);
});

Deno.test("selection: threads, failed exits and types", () => {
  const select = new EventSelection(resolveOptions({ events: ["exit"], failedOnly: true }));
  assert.equal(select.accepts(exit(7, 0)), false, "success");
  assert.equal(select.accepts(exit(7, 1 << 8)), true, "exit 1");
  assert.equal(select.accepts(exit(7, 9)), true, "SIGKILL");
  assert.equal(select.accepts(exit(7, 1 << 8, 8)), false, "a thread, threads off");
  assert.equal(select.accepts(fork(1, 7)), false, "not an asked type");
});

Deno.test("loss: sequence gaps per CPU become lost events where they happened, only while gaps count", () => {
  const stats = zeroStats();
  const queue = new BoundedQueue<ProcEvent>(16);
  const loss = new LossAccounting(stats, queue, {
    portId: 0,
    closed: true,
    kernelDrops: () => null,
  });
  loss.numbered(0, 10);
  loss.numbered(0, 20); // gaps do not count yet (the kernel might filter)
  assert.equal(queue.length, 0);
  loss.countGaps = true;
  loss.numbered(0, 21);
  loss.numbered(1, 500);
  loss.numbered(0, 25); // 22, 23, 24 never came on CPU 0
  loss.numbered(1, 501);
  loss.numbered(null, 7); // an old kernel's ACK: no number
  loss.numbered(1, 499); // older than expected: a reorder, not 2^32 losses
  assert.equal(stats.lostByKernel, 3);
  const lost = queue.shift();
  assert.equal(lost?.type, "lost");
  if (lost?.type !== "lost") return;
  assert.deepEqual([lost.count, lost.reason, lost.cpu, lost.exact], [3, "kernel", 0, true]);
  assert.equal(queue.length, 0);
});

Deno.test("loss: a full queue counts lost events and reports them ahead of the next event that fits", () => {
  const stats = zeroStats();
  const queue = new BoundedQueue<ProcEvent>(2);
  const loss = new LossAccounting(stats, queue, {
    portId: 0,
    closed: true,
    kernelDrops: () => null,
  });
  loss.countGaps = true;
  loss.push(exit(1, 0));
  loss.numbered(0, 1);
  loss.numbered(0, 3); // the kernel lost #2: its record takes the last slot
  loss.push(exit(2, 0)); // no room
  loss.push(exit(3, 0)); // no room
  assert.equal(stats.lostInQueue, 2);
  assert.equal(loss.pending, true);
  assert.deepEqual(queue.takeAll().map((e) => e.type), ["exit", "lost"]);
  loss.flush(); // the consumer took: the queue loss goes in first
  loss.push(exit(4, 0));
  const [record, next] = queue.takeAll();
  assert.equal(record.type === "lost" && record.reason === "queue" && record.count, 2);
  assert.equal(next.type === "exit" && next.pid, 4);
  assert.equal(loss.pending, false);
  assert.equal(stats.lostByKernel, 1);
});

Deno.test("pump: a full batch yields at once, a flow lingers on timers, an empty round polls", async () => {
  const rounds = [DRAIN_BATCH, 5, 5, 0, 3];
  const polls: number[] = [];
  const gaps: number[] = [];
  let last = performance.now();
  let closed = false;
  let delivered = 0;
  const pump = new Pump({
    get closed() {
      return closed;
    },
    drain() {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
      const received = rounds.shift() ?? 0;
      if (rounds.length === 0) closed = true;
      return received;
    },
    deliver() {
      delivered++;
    },
  }, {
    wait(timeoutMs) {
      polls.push(timeoutMs);
      return Promise.resolve(1);
    },
  });
  await pump.run();
  assert.deepEqual(polls, [-1], "one poll, after the empty round, without a time limit");
  assert.equal(delivered, 5);
  // After the 5-datagram rounds the pump waited LINGER_MIN_MS (2 ms), then 4 ms.
  assert.ok(gaps[2] >= 1.5, `first linger ${gaps[2]} ms`);
  assert.ok(gaps[3] >= 3.5, `second linger ${gaps[3]} ms`);
});

Deno.test("pump: interrupt() ends a linger at once when closing", async () => {
  let closed = false;
  let drains = 0;
  let raced: Promise<unknown> | undefined;
  const pump = new Pump({
    get closed() {
      return closed;
    },
    drain() {
      // The 4th round of a trickle lingers 8 ms (2, 4, 8): close as close() does
      // once the pump waits on that timer (a 0 ms timer fires well before it).
      if (++drains === 4) {
        setTimeout(() => {
          closed = true;
          pump.interrupt();
          // The pump now ends within this turn's microtasks, before any timer fires.
          raced = Promise.race([
            running.then(() => "pump ended"),
            new Promise((resolve) => setTimeout(resolve, 0, "a timer fired")),
          ]);
        }, 0);
      }
      return 1;
    },
    deliver() {},
  }, { wait: () => Promise.reject(new Error("no poll during a flow")) });
  const running = pump.run();
  await running;
  assert.equal(drains, 4);
  assert.equal(await raced, "pump ended");
});

Deno.test("pump: a consumer woken by a delivery runs before the pump arms its next wait", async () => {
  // Arming a timer costs ~20–100 µs: the consumer's reaction comes first.
  const order: string[] = [];
  let closed = false;
  let consumerWoken: (() => void) | undefined;
  const consumer = (async () => {
    for (;;) {
      await new Promise<void>((resolve) => consumerWoken = resolve);
      // A few awaits deep, as `await waitForExit()` is behind the iterator.
      for (let i = 0; i < 6; i++) await undefined;
      order.push("consumer");
      if (closed) return;
    }
  })();
  let rounds = 0;
  const pump = new Pump({
    get closed() {
      return closed;
    },
    drain() {
      order.push("drain");
      if (++rounds === 3) closed = true;
      return 1;
    },
    deliver() {
      consumerWoken?.();
    },
  }, {
    wait() {
      order.push("poll");
      return Promise.resolve(1);
    },
  }, 0);
  await pump.run();
  await consumer;
  // maxBatchDelayMs 0: no linger; after each round the consumer, then the poll.
  assert.deepEqual(order, [
    "drain",
    "consumer",
    "poll",
    "drain",
    "consumer",
    "poll",
    "drain",
    "consumer",
  ]);
});

Deno.test("shutdown: close runs once, from an abort too, and leaves the lifecycle registry", () => {
  const abort = new AbortController();
  let closes = 0;
  const target = {
    close() {
      if (!shutdown.begin()) return;
      closes++;
      shutdown.end();
    },
  };
  const shutdown = new Shutdown(target, abort.signal, false);
  assert.equal(shutdown.closing, false);
  abort.abort();
  assert.equal(closes, 1);
  assert.equal(shutdown.closing, true);
  target.close();
  closeAll(); // no longer registered: not closed again
  assert.equal(closes, 1);
});
