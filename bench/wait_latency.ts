/**
 * How fast `procwatch wait` notices a death, beside `pidwait` (procps).
 *
 * Latency is measured on the kernel's own clock: a watcher in this process
 * records the exit events of the target and of the waiter, and the latency
 * is `waiter exit − target exit` — from the death to the waiter having
 * returned (its process ended, as a shell sees it). Both tools wait on the
 * same kind of target (`sleep`, killed with SIGTERM once the waiter is
 * armed), interleaved trial by trial in the same run.
 *
 * "Armed" is observable for both: `cli.ts wait -v` prints `procwatch: armed:`
 * on stderr once it is subscribed and has checked the pid; `pidwait` is armed
 * once a pidfd shows up among its descriptors (it then sleeps in epoll_wait).
 * Start-up time is from spawning `deno run --allow-ffi cli.ts wait -v PID` to
 * reading that line. A `wait` in plain spellings runs without commander
 * (cli.ts): the series "death at armed" is a death the moment the line is
 * read, "death 0.3 s after armed" one in a process idle by then.
 *
 * ```sh
 * sudo deno run --allow-all bench/wait_latency.ts [trials]
 * ```
 *
 * @module
 */

import { monotonicNs } from "../ffi/clock.ts";
import { readLink } from "../ffi/proc_fs.ts";
import type { ExitEvent } from "../lib/events/events.ts";
import { waitForExit } from "../lib/wait/wait.ts";
import { type ProcWatcher, watch } from "../lib/watch/mod.ts";

/**
 * Summary of a series of measurements, in milliseconds.
 *
 * @example
 * ```ts
 * import { summarize } from "./wait_latency.ts";
 * console.log(summarize([3, 1, 2]).median); // 2
 * ```
 */
export interface Stats {
  /** The median. */
  median: number;
  /** The 90th percentile. */
  p90: number;
  /** The smallest value. */
  min: number;
  /** The largest value. */
  max: number;
}

/**
 * What {@linkcode benchWaitLatency} measured.
 *
 * @example
 * ```ts ignore
 * import { benchWaitLatency } from "./wait_latency.ts";
 * const { procwatch, pidwait, ratio } = await benchWaitLatency();
 * console.log(procwatch.median, pidwait?.median, ratio);
 * ```
 */
export interface WaitLatencyResult {
  /** Trials per series. */
  trials: number;
  /** Death (at once after the armed line) → `cli.ts wait` process ended. */
  procwatch: Stats;
  /** Death 0.3 s after the armed line (the waiter idle) → `cli.ts wait` process ended. */
  procwatchSettled: Stats;
  /** Death → `pidwait` process ended; `null` when pidwait is not installed. */
  pidwait: Stats | null;
  /** procwatch median / pidwait median (below 1: procwatch is faster); `null` without pidwait. */
  ratio: number | null;
  /** Death → `waitForExit()` resolved, inside a running Deno process (no start-up, no exit). */
  api: Stats;
  /** Spawn of `deno run --allow-ffi cli.ts wait -v PID` → its "armed" line read. */
  startupToArmed: Stats;
  /**
   * The Deno exit floor (bench/exit_floor.ts), by how the script ends: its
   * line's time → its exit event. `_exit` is the floor `wait` is held to.
   */
  exitFloor: Record<FloorWay, Stats>;
  /** procwatch's own share: median death → return − median `_exit` floor (target ≤ 0.5 ms). */
  procwatchShare: number;
  /** The same for deaths 0.3 s after armed ({@linkcode WaitLatencyResult.procwatchSettled}). */
  procwatchSettledShare: number;
  /** waitForExit() median / pidwait median (target ≤ 1); `null` without pidwait. */
  apiRatio: number | null;
}

/** How bench/exit_floor.ts ends. */
export type FloorWay = "_exit" | "Deno.exit" | "exit_group" | "touch";
const FLOOR_WAYS: FloorWay[] = ["_exit", "Deno.exit", "exit_group", "touch"];
const EXIT_FLOOR = new URL("./exit_floor.ts", import.meta.url).pathname;

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const PIDWAIT = "/usr/bin/pidwait";

/**
 * Median, p90, min, max of `values` (milliseconds).
 *
 * @example
 * ```ts
 * import { summarize } from "./wait_latency.ts";
 * console.log(summarize([4, 1, 3, 2])); // { median: 2.5, p90: 4, min: 1, max: 4 }
 * ```
 */
export function summarize(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const median = sorted.length % 2 === 1
    ? sorted[(sorted.length - 1) / 2]
    : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return { median, p90: at(0.9), min: sorted[0], max: sorted[sorted.length - 1] };
}

/**
 * Collects exit events of whole processes by pid, as they come. Pids are
 * reused on a busy machine, so a lookup names the earliest time it accepts.
 */
class ExitClock {
  readonly #watcher: ProcWatcher;
  readonly #exits = new Map<number, bigint[]>();
  readonly #waiters = new Map<number, () => void>();
  readonly #running: Promise<void>;

  constructor() {
    const watcher = watch({ events: ["exit"], handleSignals: true });
    this.#watcher = watcher;
    this.#running = (async () => {
      for await (const event of watcher) {
        if (event.type !== "exit" || event.pid !== event.tid) continue;
        this.#record(event);
      }
    })();
  }

  #record(event: ExitEvent): void {
    const times = this.#exits.get(event.pid) ?? [];
    times.push(event.timestampNs);
    this.#exits.set(event.pid, times);
    this.#waiters.get(event.pid)?.();
  }

  /** The kernel timestamp of `pid`'s exit at or after `sinceNs` (monotonic), once seen. */
  async exitOf(pid: number, sinceNs: bigint): Promise<bigint> {
    for (;;) {
      const found = this.#exits.get(pid)?.find((time) => time >= sinceNs);
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => this.#waiters.set(pid, resolve));
      this.#waiters.delete(pid);
    }
  }

  async close(): Promise<void> {
    this.#watcher.close();
    await this.#running;
  }
}

function startTarget(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["600"], stdin: "null", stdout: "null" }).spawn();
}

async function untilTrue(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** One `cli.ts wait` trial, the death `delayMs` after armed: [latency ms, start-up-to-armed ms]. */
async function trialProcwatch(clock: ExitClock, delayMs = 0): Promise<[number, number]> {
  const since = monotonicNs();
  const target = startTarget();
  const spawned = monotonicNs();
  const waiter = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", CLI, "wait", "-v", "-q", String(target.pid)],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = waiter.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("procwatch: armed:")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench: wait exited before it was armed: ${text}`);
    text += value;
  }
  const armed = monotonicNs();
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  target.kill("SIGTERM");
  const [died, returned, status] = await Promise.all([
    clock.exitOf(target.pid, since),
    clock.exitOf(waiter.pid, since),
    waiter.status,
    target.status,
  ]);
  reader.releaseLock();
  await waiter.stderr.cancel().catch(() => {});
  if (status.code !== 143) throw new Error(`bench: wait exited ${status.code}, expected 143`);
  return [Number(returned - died) / 1e6, Number(armed - spawned) / 1e6];
}

/** One `pidwait` trial: latency ms. */
async function trialPidwait(clock: ExitClock, pidFile: string): Promise<number> {
  const since = monotonicNs();
  const target = startTarget();
  await Deno.writeTextFile(pidFile, `${target.pid}\n`);
  const waiter = new Deno.Command(PIDWAIT, {
    args: ["-F", pidFile],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await untilTrue(() => hasPidfd(waiter.pid), "pidwait to open a pidfd");
  target.kill("SIGTERM");
  const [died, returned] = await Promise.all([
    clock.exitOf(target.pid, since),
    clock.exitOf(waiter.pid, since),
    waiter.status,
    target.status,
  ]);
  return Number(returned - died) / 1e6;
}

/** One in-process `waitForExit()` trial: latency ms from the death to the promise resolving. */
async function trialApi(clock: ExitClock): Promise<number> {
  const since = monotonicNs();
  const target = startTarget();
  let armed!: () => void;
  const isArmed = new Promise<void>((resolve) => armed = resolve);
  const waiting = waitForExit(target.pid, { handleSignals: false, onArmed: () => armed() });
  await isArmed;
  target.kill("SIGTERM");
  await waiting;
  const resolved = monotonicNs();
  const died = await clock.exitOf(target.pid, since);
  await target.status;
  return Number(resolved - died) / 1e6;
}

/** One exit-floor trial: the script's line → its exit event, ms. */
async function trialFloor(clock: ExitClock, how: FloorWay): Promise<number> {
  const since = monotonicNs();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", EXIT_FLOOR, how],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const [output] = await Promise.all([child.output()]);
  const lineNs = BigInt(new TextDecoder().decode(output.stdout).trim());
  const ended = await clock.exitOf(child.pid, since);
  return Number(ended - lineNs) / 1e6;
}

function hasPidfd(pid: number): boolean {
  for (let fd = 3; fd < 16; fd++) {
    if (readLink(`/proc/${pid}/fd/${fd}`) === "anon_inode:[pidfd]") return true;
  }
  return false;
}

function pidwaitInstalled(): boolean {
  try {
    return Deno.statSync(PIDWAIT).isFile;
  } catch {
    return false;
  }
}

/**
 * Measures wait latency (median of `trials` ≥ 20) for `cli.ts wait` and
 * `pidwait`, in-process `waitForExit()` latency, and `cli.ts wait` start-up
 * time until armed. Needs root (or Linux ≥ 6.6) for the proc connector.
 *
 * @example
 * ```ts ignore
 * import { benchWaitLatency } from "./wait_latency.ts";
 * const result = await benchWaitLatency();
 * console.log(result.procwatch.median, result.pidwait?.median);
 * ```
 */
export async function benchWaitLatency(trials = 20): Promise<WaitLatencyResult> {
  if (trials < 20) throw new Error("benchWaitLatency: at least 20 trials");
  const clock = new ExitClock();
  const pidFile = await Deno.makeTempFile({ prefix: "procwatch-bench-" });
  try {
    const ours: number[] = [];
    const settled: number[] = [];
    const startup: number[] = [];
    const theirs: number[] = [];
    const api: number[] = [];
    const floors = Object.fromEntries(FLOOR_WAYS.map((way) => [way, [] as number[]]));
    const withPidwait = pidwaitInstalled();
    // A warm-up run of each, not counted (disk cache, Deno's code cache).
    await trialProcwatch(clock);
    if (withPidwait) await trialPidwait(clock, pidFile);
    for (let i = 0; i < trials; i++) {
      const [latency, armed] = await trialProcwatch(clock);
      ours.push(latency);
      startup.push(armed);
      settled.push((await trialProcwatch(clock, 300))[0]);
      if (withPidwait) theirs.push(await trialPidwait(clock, pidFile));
      api.push(await trialApi(clock));
      for (const way of FLOOR_WAYS) floors[way].push(await trialFloor(clock, way));
    }
    const procwatch = summarize(ours);
    const procwatchSettled = summarize(settled);
    const pidwait = withPidwait ? summarize(theirs) : null;
    const exitFloor = Object.fromEntries(
      FLOOR_WAYS.map((way) => [way, summarize(floors[way])]),
    ) as Record<FloorWay, Stats>;
    const apiStats = summarize(api);
    return {
      trials,
      procwatch,
      procwatchSettled,
      pidwait,
      ratio: pidwait ? procwatch.median / pidwait.median : null,
      api: apiStats,
      startupToArmed: summarize(startup),
      exitFloor,
      procwatchShare: procwatch.median - exitFloor._exit.median,
      procwatchSettledShare: procwatchSettled.median - exitFloor._exit.median,
      apiRatio: pidwait ? apiStats.median / pidwait.median : null,
    };
  } finally {
    await Deno.remove(pidFile).catch(() => {});
    await clock.close();
  }
}

/**
 * The result as a small table.
 *
 * @example
 * ```ts ignore
 * import { benchWaitLatency, formatWaitLatency } from "./wait_latency.ts";
 * console.log(formatWaitLatency(await benchWaitLatency()));
 * ```
 */
export function formatWaitLatency(result: WaitLatencyResult): string {
  const ms = (value: number) => value.toFixed(2).padStart(8);
  const row = (name: string, stats: Stats | null) =>
    stats === null
      ? `${name.padEnd(38)} (not installed)`
      : `${name.padEnd(38)}${ms(stats.median)}${ms(stats.p90)}${ms(stats.min)}${ms(stats.max)}`;
  return [
    `wait latency, ${result.trials} trials each (ms)       median     p90     min     max`,
    row("death at armed → cli.ts wait returned", result.procwatch),
    row("death +0.3 s → cli.ts wait returned", result.procwatchSettled),
    row("death → pidwait returned", result.pidwait),
    row("death → waitForExit() resolved", result.api),
    row("cli.ts wait start-up until armed", result.startupToArmed),
    ...FLOOR_WAYS.map((way) => row(`Deno exit floor: line → exit (${way})`, result.exitFloor[way])),
    result.ratio === null
      ? "ratio: n/a (no pidwait)"
      : `ratio procwatch/pidwait (median latency): ${result.ratio.toFixed(2)}`,
    `target: procwatch's share (cli.ts wait − Deno _exit floor, medians): ${
      result.procwatchSettledShare.toFixed(2)
    } ms (≤ 0.5), death at armed: ${result.procwatchShare.toFixed(2)} ms`,
    `target: waitForExit() ÷ pidwait (medians): ${
      result.apiRatio === null ? "n/a (no pidwait)" : result.apiRatio.toFixed(2)
    } (≤ 1)`,
    `target: start-up until armed (median): ${result.startupToArmed.median.toFixed(1)} ms (≤ 80)`,
  ].join("\n");
}

if (import.meta.main) {
  const trials = Deno.args[0] === undefined ? 20 : Number(Deno.args[0]);
  console.log(formatWaitLatency(await benchWaitLatency(trials)));
}
