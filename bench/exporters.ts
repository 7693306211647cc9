/**
 * Bench rows for the exporters: events per second through `watch --metrics`
 * and `watch --nats` (a real nats-server with JetStream, on this machine)
 * under a fork storm, and the CPU procwatch spends, beside plain `watch -q`.
 *
 * ```sh
 * sudo deno run --allow-all bench/exporters.ts --quick
 * ```
 *
 * @module
 */

import { runStorm } from "./loadgen.ts";
import { cpuSecondsOf, rssOf } from "./peers.ts";
import { freePort, type RunningServer, startNats } from "../tests/support/servers.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** One row: one way of running `watch` under the same storm. */
export interface ExporterRow {
  /** What ran: `watch -q`, `--metrics`, `--nats`, or both. */
  exporter: string;
  /** Processes the storm made. */
  processes: number;
  /** Storm length, in seconds. */
  stormSeconds: number;
  /** Events the watcher passed on (every event of the machine in the window). */
  events: number;
  /** What reached the target: events counted in /metrics, messages in the stream. */
  exported: number | null;
  /** events / the time until the last was exported (the storm, plus the NATS backlog). */
  eventsPerSecond: number;
  /** procwatch's CPU (user + system) from the storm's start until it was all exported. */
  cpuSeconds: number;
  /** CPU per event, in microseconds. */
  cpuMicrosPerEvent: number;
  /** Events lost (any reason), as procwatch reported them. */
  lost: number;
  /** procwatch's RSS at the end. */
  rssBytes: number | null;
}

interface Variant {
  name: string;
  metrics: boolean;
  nats: boolean;
}

const VARIANTS: Variant[] = [
  { name: "watch -q (no exporter)", metrics: false, nats: false },
  { name: "watch -q --metrics", metrics: true, nats: false },
  { name: "watch -q --nats", metrics: false, nats: true },
  { name: "watch -q --metrics --nats", metrics: true, nats: true },
];

async function streamMessages(connectionPort: number): Promise<number> {
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const connection = await connect({ servers: `127.0.0.1:${connectionPort}` });
  try {
    const manager = await jetstreamManager(connection);
    return (await manager.streams.info("PROCWATCH")).state.messages;
  } catch {
    return 0; // not created yet
  } finally {
    await connection.close();
  }
}

async function scrapeEvents(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(/^procwatch_events_total\{[^}]*\} (\d+)$/gm)) {
    sum += Number(match[1]);
  }
  return sum;
}

async function runVariant(variant: Variant, durationMs: number): Promise<ExporterRow> {
  const dir = Deno.makeTempDirSync({ prefix: "procwatch-bench-export-" });
  let nats: RunningServer | undefined;
  try {
    const args = ["watch", "-q", "-v", "--json"];
    const metricsPort = freePort();
    if (variant.metrics) args.push("--metrics", `127.0.0.1:${metricsPort}`);
    if (variant.nats) {
      nats = await startNats(`${dir}/store`);
      args.push("--nats", `nats://127.0.0.1:${nats.port}`, "--spool", `${dir}/spool`);
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", CLI, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    const deadline = Date.now() + 20_000;
    while (!stderr.includes('"listening"')) {
      if (Date.now() > deadline) throw new Error(`procwatch did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // start-up work done
    const cpuBefore = cpuSecondsOf(child.pid);
    const started = performance.now();
    const storm = await runStorm({ mode: "exit", workers: 2, durationMs });
    let exported: number | null = null;
    let finished = performance.now();
    if (variant.nats) {
      // Until the stream has stopped growing for 3 s: the backlog is published (a busy
      // watcher can hold back acknowledgements for a while).
      let previous = -1;
      let stable = 0;
      for (let i = 0; i < 240 && stable < 12; i++) {
        exported = await streamMessages(nats!.port);
        stable = exported === previous && exported > 0 ? stable + 1 : 0;
        if (stable === 0) finished = performance.now();
        previous = exported;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } else {
      await new Promise((resolve) => setTimeout(resolve, 250));
      finished = performance.now();
    }
    const seconds = (finished - started) / 1000;
    const cpuSeconds = cpuSecondsOf(child.pid) - cpuBefore;
    if (variant.metrics && !variant.nats) exported = await scrapeEvents(metricsPort);
    const rssBytes = rssOf(child.pid);
    child.kill("SIGINT");
    await child.status;
    await reading;
    const counters = stderr.split("\n").find((line) => line.startsWith('{"type":"counters"'));
    const parsed = counters === undefined ? null : JSON.parse(counters);
    const events: number = parsed?.delivered ?? 0;
    const lost = (parsed?.lostByKernel ?? 0) + (parsed?.lostInQueue ?? 0) +
      [...stderr.matchAll(/(\d+) events? lost/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    return {
      exporter: variant.name,
      processes: storm.processes,
      stormSeconds: storm.seconds,
      events,
      exported,
      eventsPerSecond: events / seconds,
      cpuSeconds,
      cpuMicrosPerEvent: cpuSeconds * 1e6 / Math.max(events, 1),
      lost,
      rssBytes,
    };
  } finally {
    await nats?.stop();
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * Runs a fork storm of `durationMs` under each way of running `watch`
 * (none, metrics, NATS, both) and returns one row each.
 */
export async function benchExporters(durationMs: number): Promise<ExporterRow[]> {
  const rows: ExporterRow[] = [];
  for (const variant of VARIANTS) rows.push(await runVariant(variant, durationMs));
  return rows;
}

/** The rows as a Markdown table. */
export function formatExporters(rows: ExporterRow[]): string {
  const header = [
    "exporter",
    "procs",
    "events",
    "exported",
    "events/s",
    "CPU s",
    "CPU µs/event",
    "lost",
    "RSS MiB",
  ];
  const body = rows.map((row) => [
    row.exporter,
    String(row.processes),
    String(row.events),
    row.exported === null ? "-" : String(row.exported),
    row.eventsPerSecond.toFixed(0),
    row.cpuSeconds.toFixed(2),
    row.cpuMicrosPerEvent.toFixed(2),
    String(row.lost),
    row.rssBytes === null ? "-" : (row.rssBytes / 2 ** 20).toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " +
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") +
    " |";
  return [
    "Exporters: a fork+exit storm (2 workers) with procwatch exporting every event of the machine",
    "(exported: events_total in /metrics, or messages in the JetStream stream; events/s until the",
    "last was exported; CPU: procwatch's own, nats-server's not counted)",
    line(header),
    "|" + widths.map((w, i) => "-".repeat(w + 1) + (i === 0 ? "-" : ":")).join("|") + "|",
    ...body.map(line),
  ].join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  console.log(formatExporters(await benchExporters(quick ? 1500 : 5000)));
}
