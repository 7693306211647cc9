/**
 * Soak: millions of events through one watcher, showing that RSS stays flat
 * and that the queue and the process table stay bounded. Run it alone:
 *
 * ```sh
 * sudo deno run --allow-all bench/soak.ts [events]   # default 5,000,000
 * ```
 *
 * A Worker makes processes with a vfork-style clone storm while the main
 * thread consumes batches with context (the process table follows
 * every process). RSS is sampled every 1/20 of the run; "flat" means the last
 * half of the samples stays within a few MiB of the median of the first half
 * after warm-up. `deno task bench` (bench/main.ts) can import `runSoak()`.
 *
 * @module
 */

import { readFileText } from "../ffi/proc_fs.ts";
import { watch } from "../mod.ts";

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /** Events to consume. Default 5,000,000. */
  events?: number;
  /** RSS samples to take over the run. Default 20. */
  samples?: number;
}

/** One sample of the soak. */
export interface SoakSample {
  /** Events consumed so far. */
  events: number;
  /** Seconds since the start. */
  seconds: number;
  /** Resident set size, bytes. */
  rssBytes: number;
  /** Entries in the process-name table. */
  tableSize: number;
}

/** What {@linkcode runSoak} measured. */
export interface SoakResult {
  /** Events consumed (lost ones not included). */
  events: number;
  /** Events the kernel or the queue dropped. */
  lost: number;
  /** Processes the storm made. */
  processes: number;
  /** Wall time, seconds. */
  seconds: number;
  /** Samples, in order. */
  samples: SoakSample[];
  /** Largest batch handed to the consumer: the queue's high-water mark. */
  maxQueue: number;
  /** The queue's capacity. */
  queueCapacity: number;
  /** Largest process-name table seen. */
  maxTableSize: number;
  /** RSS growth from the first post-warm-up sample to the last, bytes. */
  rssGrowthBytes: number;
  /** Whether RSS stayed within 16 MiB after warm-up. */
  rssFlat: boolean;
}

const QUEUE_CAPACITY = 65536;
const RSS_FLAT_SLACK = 16 * 1024 * 1024;

function rssBytes(): number {
  const statm = readFileText("/proc/self/statm") ?? "0 0";
  return Number(statm.split(" ")[1]) * 4096;
}

/**
 * Runs the soak and returns its measurements. Needs root (or Linux ≥ 6.6),
 * `--allow-all` for the Worker. Takes minutes for the default 5M events.
 *
 * @example
 * ```ts ignore
 * import { runSoak } from "./soak.ts";
 * const result = await runSoak({ events: 200_000 });
 * console.log(result.rssFlat, result.maxQueue);
 * ```
 */
export async function runSoak(options: SoakOptions = {}): Promise<SoakResult> {
  const target = options.events ?? 5_000_000;
  const every = Math.max(1, Math.floor(target / (options.samples ?? 20)));
  const watcher = watch({ handleSignals: false, queueCapacity: QUEUE_CAPACITY, context: true });
  const worker = new Worker(new URL("./soak_worker.ts", import.meta.url), { type: "module" });
  let processes = 0;
  worker.onmessage = (event: MessageEvent<number>) => processes = event.data;
  const start = performance.now();
  const samples: SoakSample[] = [];
  let events = 0;
  let lost = 0;
  let maxQueue = 0;
  let maxTableSize = 0;
  let nextSample = every;
  try {
    for await (const batch of watcher.batches()) {
      if (batch.length > maxQueue) maxQueue = batch.length;
      for (const event of batch) {
        if (event.type === "lost") {
          lost += event.count;
          continue;
        }
        events++;
      }
      const tableSize = watcher.processTable?.size ?? 0;
      if (tableSize > maxTableSize) maxTableSize = tableSize;
      if (events >= nextSample) {
        nextSample += every;
        samples.push({
          events,
          seconds: (performance.now() - start) / 1000,
          rssBytes: rssBytes(),
          tableSize: watcher.processTable?.size ?? 0,
        });
      }
      if (events >= target) break;
    }
  } finally {
    worker.postMessage("stop");
    await new Promise((resolve) => setTimeout(resolve, 50));
    worker.terminate();
    watcher.close();
  }
  const settled = samples.slice(Math.floor(samples.length / 4));
  const base = settled[0]?.rssBytes ?? 0;
  const peak = Math.max(...settled.map((sample) => sample.rssBytes));
  const last = settled.at(-1)?.rssBytes ?? 0;
  return {
    events,
    lost,
    processes,
    seconds: (performance.now() - start) / 1000,
    samples,
    maxQueue,
    queueCapacity: QUEUE_CAPACITY,
    maxTableSize,
    rssGrowthBytes: last - base,
    rssFlat: peak - base < RSS_FLAT_SLACK,
  };
}

if (import.meta.main) {
  const events = Deno.args[0] === undefined ? undefined : Number(Deno.args[0]);
  const result = await runSoak({ events });
  const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
  console.log(
    `soak: ${result.events} events (${result.lost} lost) from ${result.processes} processes in ${
      result.seconds.toFixed(1)
    } s (${Math.round(result.events / result.seconds)} events/s)`,
  );
  for (const sample of result.samples) {
    console.log(
      `  ${String(sample.events).padStart(9)} events  ${
        sample.seconds.toFixed(1).padStart(6)
      } s  rss ${mib(sample.rssBytes)} MiB  table ${sample.tableSize}`,
    );
  }
  console.log(
    `queue high-water ${result.maxQueue}/${result.queueCapacity}, process table max ${result.maxTableSize}, rss growth after warm-up ${
      mib(result.rssGrowthBytes)
    } MiB: ${result.rssFlat ? "flat" : "GROWING"}`,
  );
}
