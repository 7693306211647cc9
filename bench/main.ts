/**
 * `deno task bench`: procwatch against forkstat and extrace under the fastest
 * fork storms this machine can make, Oracle's 8,000-exits case, and memory
 * over millions of events. Prints a table and writes bench/results/*.json.
 *
 * A benchmark, not a test: it asserts nothing, it measures. Run as root.
 * `--quick` shortens every phase (for trying it out); the figures in the
 * README come from a full run.
 *
 * @module
 */

import { monotonicNs } from "../ffi/clock.ts";
import { SleepingProcesses } from "../tests/support/ffi/clone.ts";
import { effectiveUid } from "../ffi/process.ts";
import type { ApiListenerResult } from "./api_listener.ts";
import { watch } from "../lib/watch/mod.ts";
import { runStorm, type StormResult } from "./loadgen.ts";
import {
  extrace,
  forkstat,
  type ListenerCounts,
  type ListenerKind,
  procwatchApi,
  procwatchCli,
  settle,
} from "./peers.ts";

import { buildFloor, type FloorBuild, startFloor } from "./floor.ts";
import { runSoak } from "./soak.ts";
import { benchMemory } from "./memory.ts";
import { benchExporters, formatExporters } from "./exporters.ts";
import { benchWaitLatency, formatWaitLatency } from "./wait_latency.ts";
import { benchWaitStorm, formatWaitStorm } from "./wait_storm.ts";
import { benchWaitMany, formatWaitMany } from "./wait_many.ts";
const quick = Deno.args.includes("--quick");
const STORM_MS = quick ? 1500 : 5000;
const EXEC_STORM_MS = quick ? 1500 : 5000;
const ORACLE_PROCESSES = 8000;
const MEMORY_EVENTS = quick ? 400_000 : 5_100_000;
const MARKER = `procwatch-bench-${Deno.pid}`;

/** One row of the storm table. */
interface StormRow {
  storm: "fork+exit" | "fork+exec+exit";
  tool: string;
  generatedProcesses: number;
  processesPerSecond: number;
  /** Events of the generator's processes this tool reports at all. */
  generated: number;
  received: number;
  /** generated − received. */
  missed: number;
  /** What the tool itself said it lost (null: it cannot say). */
  reportedLost: number | null;
  cpuSeconds: number;
  cpuMicrosPerEvent: number;
  /** Events the kernel sent while the tool was measured: the storm's and the machine's others. */
  eventsInWindow: number;
  /** CPU per event of all events in the window: what every listener had to read. */
  cpuMicrosPerWindowEvent: number;
  /** cpuMicrosPerWindowEvent / forkstat's. */
  ratioToForkstat: number | null;
  /** CPU of the C floor listener (bench/floor_listener.c) run beside it, same window. */
  floorCpuSeconds: number | null;
  /** cpuSeconds / floorCpuSeconds: issue 13's target 1 is ≤ 1.5 for the CLI. */
  ratioToFloor: number | null;
  rssBytes: number | null;
  note?: string;
  detail?: unknown;
}

async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  const version = async (command: string[]) => {
    try {
      const out = await new Deno.Command(command[0], {
        args: command.slice(1),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      return text.split("\n").find((line) => /\d/.test(line))?.trim() ?? "unknown";
    } catch {
      return "not installed";
    }
  };
  return {
    nproc: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    cpu: model,
    memGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    deno: Deno.version.deno,
    forkstat: await version(["dpkg-query", "-W", "-f", "${Version}", "forkstat"]),
    extrace: await version(["dpkg-query", "-W", "-f", "${Version}", "extrace"]),
    load: (await Deno.readTextFile("/proc/loadavg")).trim(),
  };
}

async function ensurePeers(): Promise<string[]> {
  const notes: string[] = [];
  const missing: string[] = [];
  for (const tool of ["forkstat", "extrace"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    if (!found.success) missing.push(tool);
  }
  if (missing.length === 0) return notes;
  console.error(`bench: installing ${missing.join(", ")} with apt-get`);
  const install = await new Deno.Command("sh", {
    args: ["-c", `apt-get update -qq && apt-get install -y -qq ${missing.join(" ")}`],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!install.success) {
    notes.push(
      `could not install ${missing.join(", ")}: ${
        new TextDecoder().decode(install.stderr).trim().split("\n").at(-1)
      }`,
    );
  }
  return notes;
}

/**
 * Counts every event the kernel sends while a tool is measured: the storm's
 * own and those of anything else running on the machine, which every
 * listener has to handle too. CPU per event is given per storm event and per
 * event in this count, the fair one when the machine is not quiet.
 */
class EventMeter {
  count = 0;
  lost = 0;
  readonly #watcher = watch({ threads: true, handleSignals: false });
  readonly #done = (async () => {
    for await (const batch of this.#watcher.batches()) {
      for (const event of batch) {
        if (event.type === "lost") this.lost += event.count;
        else this.count++;
      }
    }
  })();
  async close(): Promise<void> {
    this.#watcher.close();
    await this.#done;
  }
}

async function stormWith(
  kind: ListenerKind,
  mode: "exit" | "exec",
): Promise<
  {
    storm: StormResult;
    counts: ListenerCounts;
    cpuSeconds: number;
    eventsInWindow: number;
    floorCpuSeconds: number | null;
  }
> {
  const listener = await kind.start(Deno.pid);
  const meter = new EventMeter();
  // The C floor beside it, on the same events in the same window.
  const floor = "path" in FLOOR
    ? await startFloor(FLOOR.path, `/tmp/procwatch-bench-floor-${Deno.pid}.out`)
    : null;
  try {
    // Let start-up work finish before the CPU clock is read.
    await settle(listener, 3000);
    const cpuBefore = listener.cpuSeconds();
    const floorBefore = floor?.cpuSeconds() ?? 0;
    const eventsBefore = meter.count;
    const storm = await runStorm({
      mode,
      workers: 2,
      durationMs: mode === "exit" ? STORM_MS : EXEC_STORM_MS,
      // /bin/false: its exit status 1 marks the storm's processes like STORM_EXIT_CODE.
      program: mode === "exec" ? { path: "/bin/false", argv: ["false", MARKER] } : undefined,
    });
    await settle(listener);
    const cpuSeconds = listener.cpuSeconds() - cpuBefore;
    const floorCpuSeconds = floor === null ? null : floor.cpuSeconds() - floorBefore;
    const eventsInWindow = meter.count - eventsBefore;
    const counts = await listener.stop();
    return { storm, counts, cpuSeconds, eventsInWindow, floorCpuSeconds };
  } catch (error) {
    await listener.stop().catch(() => {});
    throw error;
  } finally {
    await floor?.stop();
    await meter.close();
  }
}

/** The C floor listener, built once at start (or why not). */
let FLOOR: FloorBuild = { skipped: "C floor not built yet" };

function reportable(kind: ListenerKind, mode: "exit" | "exec", processes: number): number {
  return processes *
    ((kind.reports.fork ? 1 : 0) + (mode === "exec" && kind.reports.exec ? 1 : 0) +
      (kind.reports.exit ? 1 : 0));
}

async function storms(kinds: ListenerKind[], notes: string[]): Promise<StormRow[]> {
  const rows: StormRow[] = [];
  for (const mode of ["exit", "exec"] as const) {
    const stormRows: StormRow[] = [];
    for (const kind of kinds) {
      const unavailable = await kind.available();
      if (unavailable !== null) {
        notes.push(`${kind.name} skipped: ${unavailable}`);
        continue;
      }
      console.error(`bench: ${mode} storm with ${kind.name} listening`);
      const { storm, counts, cpuSeconds, eventsInWindow, floorCpuSeconds } = await stormWith(
        kind,
        mode,
      );
      const generated = reportable(kind, mode, storm.processes);
      // CPU per event of the storm's own events, the ones every tool had to handle.
      const cpuMicrosPerEvent = cpuSeconds * 1e6 / storm.events;
      stormRows.push({
        storm: mode === "exit" ? "fork+exit" : "fork+exec+exit",
        tool: kind.name,
        generatedProcesses: storm.processes,
        processesPerSecond: Math.round(storm.processesPerSecond),
        generated,
        received: counts.received,
        missed: generated - counts.received,
        reportedLost: counts.reportedLost,
        cpuSeconds,
        cpuMicrosPerEvent,
        eventsInWindow,
        cpuMicrosPerWindowEvent: cpuSeconds * 1e6 / Math.max(eventsInWindow, storm.events),
        ratioToForkstat: null,
        floorCpuSeconds,
        ratioToFloor: floorCpuSeconds ? cpuSeconds / floorCpuSeconds : null,
        rssBytes: counts.rssBytes,
        note: generated === 0 ? "reports execs only" : undefined,
        detail: counts.detail,
      });
    }
    const reference = stormRows.find((row) => row.tool === "forkstat");
    for (const row of stormRows) {
      row.ratioToForkstat = reference
        ? row.cpuMicrosPerWindowEvent / reference.cpuMicrosPerWindowEvent
        : null;
    }
    rows.push(...stormRows);
  }
  return rows;
}

/** Oracle's case: time from killing 8,000 sleeping processes to the last exit event read. */
async function oracle(events: "exit" | "all"): Promise<Record<string, unknown>> {
  using sleepers = SleepingProcesses.spawn(ORACLE_PROCESSES);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./api_listener.ts", import.meta.url).pathname,
      JSON.stringify({
        mode: "oracle",
        parent: Deno.pid,
        expectExits: ORACLE_PROCESSES,
        events: events === "exit" ? ["exit"] : undefined,
      }),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("oracle listener did not start");
    text += value;
  }
  text = text.slice(text.indexOf("ready\n") + 6);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const killedAt = monotonicNs();
  sleepers.killAll();
  const killLoopNs = monotonicNs() - killedAt;
  const timeout = setTimeout(() => child.stdin.close().catch(() => {}), 30_000);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  clearTimeout(timeout);
  await child.status;
  sleepers.reapAll();
  const result = JSON.parse(text.trim()) as ApiListenerResult;
  const readNs = result.lastExitReadNs ? BigInt(result.lastExitReadNs) : null;
  const kernelNs = result.lastExitKernelNs ? BigInt(result.lastExitKernelNs) : null;
  return {
    events: events === "exit" ? "exit only (kernel filter)" : "all",
    filterMode: result.filterMode,
    processes: ORACLE_PROCESSES,
    exitsReceived: result.exits,
    lost: result.lost,
    killLoopMs: Number(killLoopNs) / 1e6,
    lastExitSentMs: kernelNs === null ? null : Number(kernelNs - killedAt) / 1e6,
    lastExitReadMs: readNs === null ? null : Number(readNs - killedAt) / 1e6,
  };
}

/** RSS over millions of events, with context (issue 13, target 4) and without: bench/memory.ts. */
const memory = (context: boolean, total: number) => benchMemory(context, total);

const fmt = (value: number | null | undefined, digits = 0) =>
  value === null || value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits);

function printTable(rows: StormRow[]): void {
  const header = [
    "storm",
    "tool",
    "procs/s",
    "generated",
    "received",
    "missed",
    "reported lost",
    "CPU s",
    "CPU µs/storm event",
    "all events",
    "CPU µs/event",
    "× forkstat",
    "× C floor",
  ];
  const body = rows.map((row) => [
    row.storm,
    row.tool,
    fmt(row.processesPerSecond),
    row.note ? "n/a" : fmt(row.generated),
    row.note ? "n/a" : fmt(row.received),
    row.note ? "n/a" : fmt(row.missed),
    row.reportedLost === null ? "(no report)" : fmt(row.reportedLost),
    fmt(row.cpuSeconds, 2),
    fmt(row.cpuMicrosPerEvent, 2),
    fmt(row.eventsInWindow),
    fmt(row.cpuMicrosPerWindowEvent, 2),
    row.ratioToForkstat === null ? "-" : fmt(row.ratioToForkstat, 2),
    row.ratioToFloor === null ? "-" : fmt(row.ratioToFloor, 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") +
    " |";
  console.log(line(header));
  console.log(
    "|" + widths.map((w, i) => (i < 2 ? "-" : "-").repeat(w + 1) + (i < 2 ? "-" : ":")).join("|") +
      "|",
  );
  for (const row of body) console.log(line(row));
}

async function main(): Promise<void> {
  if (effectiveUid() !== 0) {
    console.error("bench: run as root (the proc connector needs it): sudo deno task bench");
    Deno.exit(2);
  }
  const started = Date.now();
  const notes = await ensurePeers();
  const host = await machine();
  console.error(`bench: ${JSON.stringify(host)}`);

  console.error("bench: calibrating the generator (2 workers, no listener)");
  const calibration = await runStorm({ mode: "exit", workers: 2, durationMs: quick ? 1000 : 3000 });
  const calibrationOne = await runStorm({
    mode: "exit",
    workers: 1,
    durationMs: quick ? 1000 : 3000,
  });

  FLOOR = await buildFloor();
  if ("skipped" in FLOOR) notes.push(FLOOR.skipped);
  const rows = await storms(
    [procwatchApi(), procwatchCli(), procwatchCli("human"), forkstat(), extrace(MARKER)],
    notes,
  );

  console.error("bench: Oracle's case (8,000 sleeping processes killed at once)");
  const oracleRuns = [await oracle("exit"), await oracle("all")];

  console.error(`bench: memory over ${MEMORY_EVENTS} events with context, then without`);
  const memoryRuns = [
    await memory(true, MEMORY_EVENTS),
    await memory(false, quick ? MEMORY_EVENTS : 2_100_000),
  ];

  console.error(`bench: soak over ${quick ? 200_000 : 5_000_000} events (RSS, queue, name table)`);
  const soak = await runSoak({ events: quick ? 200_000 : 5_000_000, samples: 10 });

  console.error("bench: wait latency beside pidwait");
  const waits = await benchWaitLatency();

  console.error("bench: CPU of wait during a storm, beside pidwait");
  const waitStorm = await benchWaitStorm(quick ? 1500 : 5000);
  console.error("bench: exporters (--metrics, --nats to a local nats-server) under a fork storm");
  const exporters = await benchExporters(quick ? 1500 : 5000);
  console.error(`bench: wait on ${ORACLE_PROCESSES} pids beside a Python pidfd waiter`);
  const waitMany = await benchWaitMany(ORACLE_PROCESSES, quick ? 1 : 3);

  console.log(`\nprocwatch bench — ${host.nproc} CPUs, ${host.cpu}, Linux ${host.kernel}`);
  console.log(
    `generator: clone(CLONE_VM|CLONE_VFORK) from Workers, no native build: ${
      fmt(calibration.processesPerSecond)
    } processes/s with 2 workers (${fmt(calibrationOne.processesPerSecond)} with 1), no listener\n`,
  );
  printTable(rows);
  for (const row of rows.filter((row) => row.tool.startsWith("procwatch (CLI"))) {
    console.log(
      `target: ${row.storm} ${row.tool}: CPU ${
        fmt(row.ratioToFloor, 2)
      }× the C floor beside it (≤ 1.5), ${row.note ? "n/a" : fmt(row.missed)} missed, ${
        fmt(row.reportedLost)
      } reported lost (0)`,
    );
  }
  console.log(
    "(generated/received/missed: the storm's events each tool reports at all; all events: what the kernel sent during the measurement, the storm's and the rest of the machine's; CPU µs/event and × forkstat are per all events; × C floor: the tool's CPU ÷ the CPU of bench/floor_listener.c run beside it in the same storm, target ≤ 1.5 for the CLI rows)",
  );
  console.log("\nOracle's case: 8,000 sleeping processes SIGKILLed at once (procwatch API)");
  for (const run of oracleRuns) {
    console.log(
      `  ${String(run.events).padEnd(26)} mode ${run.filterMode}: last exit read after ${
        fmt(run.lastExitReadMs as number, 1)
      } ms (kernel sent it at ${fmt(run.lastExitSentMs as number, 1)} ms; kill loop ${
        fmt(run.killLoopMs as number, 1)
      } ms), ${run.exitsReceived}/${run.processes} exits, ${run.lost} lost`,
    );
  }
  for (const memoryRun of memoryRuns) {
    const rss = memoryRun.rss as { events: number; rssMiB: number }[];
    console.log(
      `\nMemory (procwatch API, ${
        memoryRun.context ? "context: true" : "no context"
      }): ${memoryRun.receivedEvents} of ${memoryRun.generatedEvents} storm events received, ${memoryRun.lost} lost; RSS ${
        rss.map((sample) => `${sample.rssMiB} MiB @ ${sample.events} events`).join(", ")
      }`,
    );
    if (memoryRun.context) {
      console.log(
        `target: RSS after 2M events ${
          fmt(memoryRun.rssAt2MMiB as number, 1)
        } MiB (≤ 100); end ÷ 1M events ${fmt(memoryRun.growthFrom1M as number, 2)} (≤ 1.10)`,
      );
    }
  }
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  console.log(
    `\nSoak: ${soak.events} events (${soak.lost} lost) in ${soak.seconds.toFixed(0)} s; RSS ${
      soak.samples.map((sample) => `${mib(sample.rssBytes)}`).join(" → ")
    } MiB (${soak.rssFlat ? "flat" : "GROWING"}: +${
      mib(soak.rssGrowthBytes)
    } MiB after warm-up); queue high-water ${soak.maxQueue}/${soak.queueCapacity}; process table max ${soak.maxTableSize}`,
  );
  console.log(`\n${formatWaitLatency(waits)}`);
  console.log(`\n${formatWaitStorm(waitStorm)}`);
  console.log(`\n${formatExporters(exporters)}`);
  console.log(`\n${formatWaitMany(waitMany, ORACLE_PROCESSES)}`);
  for (const note of notes) console.log(`note: ${note}`);

  const result = {
    date: new Date().toISOString(),
    quick,
    seconds: (Date.now() - started) / 1000,
    machine: host,
    generator: { twoWorkers: calibration, oneWorker: calibrationOne },
    storms: rows,
    oracle: oracleRuns,
    memory: memoryRuns,
    soak,
    waitLatency: waits,
    waitStorm,
    exporters,
    waitMany,
    notes,
  };
  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const file = new URL(`bench-${result.date.replaceAll(":", "-")}.json`, dir);
  await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(new URL("latest.json", dir), JSON.stringify(result, null, 2) + "\n");
  console.log(`\nresults: ${file.pathname}`);
}

if (import.meta.main) await main();
