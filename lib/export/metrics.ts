/**
 * Prometheus metrics of process events (`watch --metrics`), in the text
 * exposition format through `npm:prom-client` (pure JS, no native code).
 *
 * Loaded on demand (`import()` from lib/export/lazy.ts): plain `watch` and
 * `wait` never load prom-client.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { listPids } from "../../ffi/proc_dir.ts";
import { EVENT_TYPES, type ExitEvent, type LostEvent, type ProcEvent } from "../events/events.ts";
import type { ProcWatcher } from "../watch/watcher.ts";
import type { HostPort } from "./address.ts";

/** The label of every process name beyond the first `topComms` ones. */
export const OTHER_COMM = "other";

/** Reasons of `lost` events, each exposed from the start (at 0). */
const LOSS_REASONS: readonly LostEvent["reason"][] = ["kernel", "queue", "output", "export"];

/**
 * Buckets of the lifetime histogram, in seconds: a millisecond (a failed
 * exec) to a day (a daemon restarted daily).
 */
const LIFETIME_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600, 86400];

/** Options of {@linkcode ProcessMetrics}. */
export interface ProcessMetricsOptions {
  /**
   * How many distinct process names get their own `comm` label; the rest
   * count under `other`. Default 50.
   */
  topComms?: number;
  /** The watcher whose own figures (queue high-water, table size) to expose. */
  watcher?: ProcWatcher;
}

/**
 * The `outcome` label of an exit: `exit_0`, `exit_nonzero`, or the name of
 * the signal that ended the process (`SIGKILL`).
 *
 * @example
 * ```ts
 * import { exitOutcome } from "./metrics.ts";
 * console.log(exitOutcome({ exitCode: 3, signal: null })); // exit_nonzero
 * ```
 */
export function exitOutcome(exit: Pick<ExitEvent, "exitCode" | "signal">): string {
  if (exit.signal !== null) return exit.signal;
  return exit.exitCode === 0 ? "exit_0" : "exit_nonzero";
}

/**
 * Counters and gauges of process events, in their own prom-client registry.
 *
 * Process names are labels, so their number is bounded: the first
 * `topComms` distinct names seen get their own label for the life of the
 * watcher, every later one counts under `other`. A label is never moved
 * or removed: Prometheus counters must only grow, and moving counts from
 * `other` to a name that became busy later would look like a reset.
 *
 * @example
 * ```ts
 * import { ProcessMetrics } from "./metrics.ts";
 * import { watch } from "@procwatch/procwatch";
 * const watcher = watch({ context: true });
 * const metrics = new ProcessMetrics({ watcher });
 * for await (const event of watcher) metrics.observe(event);
 * console.log(await metrics.text());
 * ```
 */
export class ProcessMetrics {
  /** The registry holding only procwatch's metrics. */
  readonly registry: Registry = new Registry();
  readonly #topComms: number;
  readonly #comms = new Set<string>();
  readonly #events: Counter<"type">;
  readonly #starts: Counter<"comm">;
  readonly #exits: Counter<"comm" | "outcome">;
  readonly #lost: Counter<"reason">;
  readonly #lifetime: Histogram<string>;

  /** Creates the metrics; `watcher` adds its own figures. */
  constructor(options: ProcessMetricsOptions = {}) {
    this.#topComms = options.topComms ?? 50;
    const registers = [this.registry];
    this.#events = new Counter({
      name: "procwatch_events_total",
      help: "Process events received from the kernel, by type.",
      labelNames: ["type"] as const,
      registers,
    });
    for (const type of EVENT_TYPES) this.#events.inc({ type }, 0);
    this.#starts = new Counter({
      name: "procwatch_process_starts_total",
      help: "New processes (forks, not threads), by the name they started with " +
        "(their parent's, until they exec).",
      labelNames: ["comm"] as const,
      registers,
    });
    this.#exits = new Counter({
      name: "procwatch_process_exits_total",
      help: "Process exits by name and outcome: exit_0, exit_nonzero, or the killing signal.",
      labelNames: ["comm", "outcome"] as const,
      registers,
    });
    this.#lost = new Counter({
      name: "procwatch_lost_events_total",
      help: "Events lost, by reason: kernel (socket buffer full), queue (procwatch's queue), " +
        "output (stdout not read), export (exporter spool full).",
      labelNames: ["reason"] as const,
      registers,
    });
    for (const reason of LOSS_REASONS) this.#lost.inc({ reason }, 0);
    this.#lifetime = new Histogram({
      name: "procwatch_process_lifetime_seconds",
      help: "How long processes lived, from start to exit (known for processes " +
        "started while procwatch watched, or read from /proc).",
      buckets: LIFETIME_BUCKETS,
      registers,
    });
    new Gauge({
      name: "procwatch_processes",
      help: "Live processes: the pids in /proc at scrape time.",
      registers,
      collect() {
        this.set(listPids().length);
      },
    });
    const watcher = options.watcher;
    new Gauge({
      name: "procwatch_queue_high_water",
      help: "The most events that ever waited at once in procwatch's queue.",
      registers,
      collect() {
        this.set(watcher?.queueHighWater ?? 0);
      },
    });
    new Gauge({
      name: "procwatch_process_table_entries",
      help: "Processes in procwatch's process table (live ones and recently exited).",
      registers,
      collect() {
        this.set(watcher?.processTable?.size ?? 0);
      },
    });
    new Gauge({
      name: "procwatch_resident_memory_bytes",
      help: "procwatch's resident set size.",
      registers,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
  }

  /** Counts one event. */
  observe(event: ProcEvent): void {
    if (event.type === "lost") {
      this.#lost.inc({ reason: event.reason }, event.count);
      return;
    }
    this.#events.inc({ type: event.type });
    if (event.type === "fork") {
      if (!event.thread) this.#starts.inc({ comm: this.#label(event.process?.comm) });
    } else if (event.type === "exit" && event.pid === event.tid) {
      this.#exits.inc({ comm: this.#label(event.process?.comm), outcome: exitOutcome(event) });
      const lived = event.process?.durationNs;
      if (lived !== null && lived !== undefined) this.#lifetime.observe(Number(lived) / 1e9);
    }
  }

  /** The metrics in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The `Content-Type` of {@linkcode text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  #label(comm: string | null | undefined): string {
    if (comm === null || comm === undefined) return OTHER_COMM;
    if (this.#comms.has(comm)) return comm;
    if (this.#comms.size >= this.#topComms) return OTHER_COMM;
    this.#comms.add(comm);
    return comm;
  }
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The metrics it serves; feed it events with `observe`. */
  readonly metrics: ProcessMetrics;
  /** Where it listens (the port the system chose, when asked for 0). */
  readonly address: HostPort;
  /** Stops listening. */
  close(): Promise<void>;
}

/**
 * Serves `metrics` at `http://ADDR:PORT/metrics` (every other path: 404).
 *
 * @example
 * ```ts
 * import { ProcessMetrics, serveMetrics } from "./metrics.ts";
 * const server = await serveMetrics(new ProcessMetrics(), { hostname: "127.0.0.1", port: 9464 });
 * await server.close();
 * ```
 */
export function serveMetrics(metrics: ProcessMetrics, listen: HostPort): Promise<MetricsServer> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: listen.hostname,
        port: listen.port,
        onListen: (address) =>
          resolve({
            metrics,
            address: { hostname: address.hostname, port: address.port },
            close: () => server.shutdown(),
          }),
      }, async (request) => {
        const path = new URL(request.url).pathname;
        if (path !== "/metrics") {
          return new Response("procwatch: metrics are at /metrics\n", { status: 404 });
        }
        return new Response(await metrics.text(), {
          headers: { "content-type": metrics.contentType },
        });
      });
    } catch (error) {
      reject(error);
    }
  });
}
