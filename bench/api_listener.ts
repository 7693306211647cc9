/**
 * procwatch through its API, as the benchmark's listener process.
 *
 * `deno run --allow-all bench/api_listener.ts '<json options>'`: prints
 * `ready` once registered, counts, and on a line (or EOF) on stdin closes and
 * prints one JSON result line. In `oracle` mode it stops by itself once
 * `expectExits` exits of `parent`'s children have arrived.
 *
 * @module
 */

import v8 from "node:v8";
import { monotonicNs } from "../ffi/clock.ts";
import type { EventType } from "../lib/events/events.ts";
import { watch } from "../lib/watch/mod.ts";
import { OursCounter } from "./ours.ts";

/**
 * Options passed as the first argument, JSON.
 *
 * @example
 * ```ts
 * import type { ApiListenerOptions } from "./api_listener.ts";
 * const options: ApiListenerOptions = { mode: "count", parent: Deno.pid, rssAt: [100_000] };
 * ```
 */
export interface ApiListenerOptions {
  mode: "count" | "oracle";
  parent: number;
  events?: EventType[];
  expectExits?: number;
  /** Event totals at which to record RSS (count mode). */
  rssAt?: number[];
  /** Watch with `context: true` (process table, names, command lines). */
  context?: boolean;
}

/**
 * The JSON line printed at the end.
 *
 * @example
 * ```ts ignore
 * import type { ApiListenerResult } from "./api_listener.ts";
 * const result = JSON.parse(line) as ApiListenerResult;
 * console.log(result.lost);
 * ```
 */
export interface ApiListenerResult {
  events: number;
  /** Batches the watcher delivered (one per wake-up of the receive loop, at most). */
  batches: number;
  forks: number;
  execs: number;
  exits: number;
  lost: number;
  lostByKernel: number;
  lostInQueue: number;
  filterMode: string;
  /** [events seen, RSS bytes] samples. */
  rss: [number, number][];
  /** At the same points: the main isolate's heap (used, total) and V8's external memory, bytes. */
  heap?: { events: number; heapUsed: number; heapTotal: number; external: number }[];
  /** The process table's size at the end (context only). */
  tableSize?: number;
  /** Oracle mode: CLOCK_MONOTONIC ns when the last expected exit was read, and its kernel timestamp. */
  lastExitReadNs?: string;
  lastExitKernelNs?: string;
}

if (import.meta.main) await main();

async function main(): Promise<void> {
  const options = JSON.parse(Deno.args[0]) as ApiListenerOptions;
  const watcher = watch({
    events: options.events,
    handleSignals: false,
    context: options.context ?? false,
  });
  const ours = new OursCounter(options.parent);
  const rssAt = [...(options.rssAt ?? [])].sort((a, b) => a - b);
  const rss: [number, number][] = [];
  const heap: NonNullable<ApiListenerResult["heap"]> = [];
  // Diagnosis: PROCWATCH_HEAP_SPACES=1 prints V8's heap spaces to stderr at each sample;
  // PROCWATCH_HEAP_SNAPSHOT=file writes a V8 heap snapshot of this isolate at the first sample
  // past 100K events (mid-storm; writing it costs RSS itself).
  let snapshot = Deno.env.get("PROCWATCH_HEAP_SNAPSHOT");
  const spaces = snapshot !== undefined || Deno.env.get("PROCWATCH_HEAP_SPACES") !== undefined;
  const sample = () => {
    if (spaces) {
      const list = v8.getHeapSpaceStatistics()
        .filter((space) => space.space_size > 0)
        .map((space) =>
          `${space.space_name} ${(space.space_used_size / 2 ** 20).toFixed(1)}/${
            (space.space_size / 2 ** 20).toFixed(1)
          }`
        );
      console.error(`api_listener @${events}: ${list.join(", ")}`);
    }
    if (snapshot !== undefined && events >= 100_000) {
      v8.writeHeapSnapshot(snapshot);
      snapshot = undefined;
    }
    const usage = Deno.memoryUsage();
    rss.push([events, usage.rss]);
    heap.push({
      events,
      heapUsed: usage.heapUsed,
      heapTotal: usage.heapTotal,
      external: usage.external,
    });
  };
  let events = 0;
  let batches = 0;
  let lastExitReadNs: bigint | undefined;
  let lastExitKernelNs: bigint | undefined;
  const encoder = new TextEncoder();
  Deno.stdout.writeSync(encoder.encode("ready\n"));

  // Any input (or EOF) on stdin stops the listener.
  (async () => {
    const buffer = new Uint8Array(64);
    try {
      await Deno.stdin.read(buffer);
    } finally {
      watcher.close();
    }
  })();

  for await (const batch of watcher.batches()) {
    for (const event of batch) {
      switch (event.type) {
        case "fork":
          ours.fork(event.parentPid, event.childPid, event.thread);
          break;
        case "exec":
          ours.exec(event.pid);
          break;
        case "exit":
          if (event.pid !== event.tid) break;
          ours.exit(event.pid, event.parentPid);
          if (options.mode === "oracle" && ours.exits === options.expectExits) {
            lastExitReadNs = monotonicNs();
            lastExitKernelNs = event.timestampNs;
            watcher.close();
          }
          break;
      }
    }
    events += batch.length;
    batches++;
    while (rssAt.length > 0 && events >= rssAt[0]) {
      rssAt.shift();
      sample();
    }
  }
  sample();
  const stats = watcher.stats;
  const result: ApiListenerResult = {
    events,
    batches,
    forks: ours.forks,
    execs: ours.execs,
    exits: ours.exits,
    lost: stats.lostByKernel + stats.lostInQueue,
    lostByKernel: stats.lostByKernel,
    lostInQueue: stats.lostInQueue,
    filterMode: watcher.filterMode,
    rss,
    heap,
    tableSize: watcher.processTable?.size,
    lastExitReadNs: lastExitReadNs?.toString(),
    lastExitKernelNs: lastExitKernelNs?.toString(),
  };
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(result) + "\n"));
  Deno.exit(0);
}
