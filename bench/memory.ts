/**
 * Memory over millions of events (issue 13, target 4): RSS of a listener
 * process running `watch()` — with `context: true` or without — while a
 * fork+exit storm of this process's Workers makes the events. Run it alone:
 *
 * ```sh
 * sudo deno run --allow-all bench/memory.ts [events] [--no-context] [-- deno flags...]
 * # events default 2,100,000; e.g. `bench/memory.ts 400000 -- --v8-flags=--trace-gc`
 * ```
 *
 * Prints one line per sample (RSS, the main isolate's heap, V8's external
 * memory) and the target's two figures. `deno task bench` (bench/main.ts)
 * calls {@linkcode benchMemory}.
 *
 * @module
 */

import type { ApiListenerOptions, ApiListenerResult } from "./api_listener.ts";
import { runStorm } from "./loadgen.ts";
import { cpuSecondsOf, rssOf } from "./peers.ts";

/** Event totals at which the listener samples its memory. */
const MARKS = [100_000, 500_000, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000, 10_000_000];

/** One sample of {@linkcode benchMemory}. */
export interface MemorySample {
  events: number;
  rssMiB: number;
  heapUsedMiB: number | null;
  heapTotalMiB: number | null;
  externalMiB: number | null;
}

/**
 * Runs the listener over a storm of about `total` events and returns its
 * samples; `denoArgs` go to the listener's `deno run` (e.g. V8 flags).
 *
 * @example
 * ```ts ignore
 * import { benchMemory } from "./memory.ts";
 * const result = await benchMemory(true, 400_000);
 * console.log(result.rssAt2MMiB, result.growthFrom1M);
 * ```
 */
export async function benchMemory(
  context: boolean,
  total: number,
  denoArgs: string[] = [],
): Promise<Record<string, unknown>> {
  const options: ApiListenerOptions = {
    mode: "count",
    parent: Deno.pid,
    rssAt: MARKS.filter((events) => events <= total),
    context,
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ...denoArgs,
      new URL("./api_listener.ts", import.meta.url).pathname,
      JSON.stringify(options),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = readLines(child.stdout);
  // V8's traces (`-- --v8-flags=--trace-gc`) come on stdout too: passed on to stderr.
  const next = async (): Promise<string | null> => {
    for (;;) {
      const line = await lines.next();
      if (line.done) return null;
      if (line.value === "ready" || line.value.startsWith("{")) return line.value;
      console.error(line.value);
    }
  };
  const ready = await next();
  if (ready !== "ready") throw new Error(`api listener did not start: ${ready}`);
  const storm = await runStorm({
    mode: "exit",
    workers: 2,
    // A bound only (the storm stops at `total`): ≥ 2K processes/s even on a loaded machine.
    durationMs: Math.max(15_000, total / 4),
    maxProcesses: Math.ceil(total / 2),
  });
  await settle(child.pid);
  const rssAtStop = rssOf(child.pid);
  const stdin = child.stdin.getWriter();
  await stdin.write(new TextEncoder().encode("stop\n")).catch(() => {});
  await stdin.close().catch(() => {});
  const result = JSON.parse((await next()) ?? "null") as ApiListenerResult;
  await child.status;
  const mib = (bytes: number | undefined) =>
    bytes === undefined ? null : +(bytes / 2 ** 20).toFixed(1);
  const samples: MemorySample[] = result.rss.map(([events, bytes], index) => ({
    events,
    rssMiB: mib(bytes) as number,
    heapUsedMiB: mib(result.heap?.[index].heapUsed),
    heapTotalMiB: mib(result.heap?.[index].heapTotal),
    externalMiB: mib(result.heap?.[index].external),
  }));
  // The RSS recorded at (or first after) `events`.
  const at = (events: number) => samples.find((sample) => sample.events >= events)?.rssMiB ?? null;
  const oneMillion = at(1_000_000);
  const last = samples.at(-1)?.rssMiB ?? null;
  return {
    context,
    generatedEvents: storm.events,
    processesPerSecond: Math.round(storm.processesPerSecond),
    receivedEvents: result.forks + result.execs + result.exits,
    lost: result.lost,
    rss: samples,
    rssAtStopMiB: mib(rssAtStop ?? undefined),
    tableSize: result.tableSize ?? null,
    rssAt2MMiB: at(2_000_000),
    /** RSS at the end ÷ RSS at 1M events (target ≤ 1.10 with context). */
    growthFrom1M: oneMillion !== null && last !== null ? last / oneMillion : null,
  };
}

/** Waits until the listener has used no CPU for half a second (it drained the storm). */
async function settle(pid: number, maxMs = 20_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let previous = cpuSecondsOf(pid);
  let calm = 0;
  while (Date.now() < deadline && calm < 2) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = cpuSecondsOf(pid);
    calm = now - previous <= 0.01 ? calm + 1 : 0;
    previous = now;
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending !== "") yield pending;
}

if (import.meta.main) {
  const dashes = Deno.args.indexOf("--");
  const own = dashes < 0 ? Deno.args : Deno.args.slice(0, dashes);
  const denoArgs = dashes < 0 ? [] : Deno.args.slice(dashes + 1);
  const total = Number(own.find((arg) => /^\d+$/.test(arg)) ?? 2_100_000);
  const context = !own.includes("--no-context");
  const result = await benchMemory(context, total, denoArgs);
  for (const sample of result.rss as MemorySample[]) {
    console.log(
      `${
        String(sample.events).padStart(9)
      } events: RSS ${sample.rssMiB} MiB, heap ${sample.heapUsedMiB}/${sample.heapTotalMiB} MiB, external ${sample.externalMiB} MiB`,
    );
  }
  const { rss: _, ...rest } = result;
  console.log(JSON.stringify(rest));
}
