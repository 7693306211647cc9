/**
 * The listeners the benchmark compares: procwatch (API and CLI), forkstat and
 * extrace. Each runs as its own process, so its CPU time can be read from
 * /proc/PID/stat; each output is parsed for the generator's own events.
 *
 * @module
 */

import type { ApiListenerOptions, ApiListenerResult } from "./api_listener.ts";
import { OursCounter, STORM_EXIT_CODE } from "./ours.ts";

/**
 * What a listener made of a storm.
 *
 * @example
 * ```ts ignore
 * import { forkstat, type ListenerCounts } from "./peers.ts";
 * const counts: ListenerCounts = await (await forkstat().start(Deno.pid)).stop();
 * ```
 */
export interface ListenerCounts {
  /** Events of the generator's processes the tool reported. */
  received: number;
  forks: number;
  execs: number;
  exits: number;
  /** Losses the tool itself reported (`null`: it has no such report). */
  reportedLost: number | null;
  /** Resident memory at the end, bytes. */
  rssBytes: number | null;
  /** Anything else worth keeping in the JSON. */
  detail?: unknown;
}

/**
 * A listener process, running.
 *
 * @example
 * ```ts ignore
 * import { procwatchApi, type RunningListener } from "./peers.ts";
 * const listener: RunningListener = await procwatchApi().start(Deno.pid);
 * console.log(listener.cpuSeconds());
 * ```
 */
export interface RunningListener {
  readonly pid: number;
  /** CPU seconds (user + system) the listener process has used so far. */
  cpuSeconds(): number;
  /** Stops it and collects its counts. */
  stop(): Promise<ListenerCounts>;
}

/**
 * A kind of listener the benchmark can start.
 *
 * @example
 * ```ts ignore
 * import { extrace, type ListenerKind } from "./peers.ts";
 * const kind: ListenerKind = extrace("marker");
 * console.log(await kind.available() ?? "available");
 * ```
 */
export interface ListenerKind {
  name: string;
  /** Which event types of a storm it reports at all (extrace: execs and exits only). */
  reports: { fork: boolean; exec: boolean; exit: boolean };
  /** Whether it can run here; a reason when not. */
  available(): Promise<string | null>;
  start(parent: number): Promise<RunningListener>;
}

const root = new URL("../", import.meta.url).pathname;
/** Wait statuses the storms' processes end with: `_exit(STORM_EXIT_CODE)`, and /bin/false. */
const stormStatuses = new Set([STORM_EXIT_CODE << 8, 1 << 8]);
const CLOCK_TICKS = 100;

/**
 * utime + stime of process `pid`, in seconds (fields 14 and 15 of /proc/PID/stat).
 *
 * @example
 * ```ts ignore
 * import { cpuSecondsOf } from "./peers.ts";
 * console.log(cpuSecondsOf(Deno.pid));
 * ```
 */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * VmRSS of process `pid`, in bytes.
 *
 * @example
 * ```ts ignore
 * import { rssOf } from "./peers.ts";
 * console.log(rssOf(Deno.pid));
 * ```
 */
export function rssOf(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function which(program: string): Promise<string | null> {
  const result = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return result.success ? new TextDecoder().decode(result.stdout).trim() : null;
}

/** Reads lines from a stream, one at a time. */
class LineReader {
  #buffer = "";
  readonly #reader: ReadableStreamDefaultReader<string>;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string | null> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) {
        const rest = this.#buffer;
        this.#buffer = "";
        return rest.length > 0 ? rest : null;
      }
      this.#buffer += value;
    }
  }
  async rest(): Promise<string[]> {
    const lines: string[] = [];
    for (let line = await this.next(); line !== null; line = await this.next()) lines.push(line);
    return lines;
  }
}

function tempOutput(name: string): string {
  const dir = (() => {
    try {
      return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : Deno.makeTempDirSync();
    } catch {
      return Deno.makeTempDirSync();
    }
  })();
  return `${dir}/procwatch-bench-${name}-${Deno.pid}.out`;
}

/** Reads a text file line by line without holding it all as one string. */
async function* fileLines(path: string): AsyncGenerator<string> {
  const file = await Deno.open(path);
  const reader = new LineReader(file.readable);
  for (let line = await reader.next(); line !== null; line = await reader.next()) yield line;
}

/**
 * procwatch through its API (bench/api_listener.ts).
 *
 * @example
 * ```ts ignore
 * import { procwatchApi } from "./peers.ts";
 * const listener = await procwatchApi().start(Deno.pid);
 * console.log((await listener.stop()).reportedLost);
 * ```
 */
export function procwatchApi(
  extra: Partial<ApiListenerOptions> = {},
  name = "procwatch (API)",
): ListenerKind {
  return {
    name,
    reports: { fork: true, exec: true, exit: true },
    available: () => Promise.resolve(null),
    async start(parent) {
      const options: ApiListenerOptions = { mode: "count", parent, ...extra };
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", `${root}bench/api_listener.ts`, JSON.stringify(options)],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const lines = new LineReader(child.stdout);
      const ready = await lines.next();
      if (ready !== "ready") throw new Error(`api listener did not start: ${ready}`);
      const stdin = child.stdin.getWriter();
      return {
        pid: child.pid,
        cpuSeconds: () => cpuSecondsOf(child.pid),
        async stop() {
          const rssBytes = rssOf(child.pid);
          await stdin.write(new TextEncoder().encode("stop\n")).catch(() => {});
          await stdin.close().catch(() => {});
          const result = JSON.parse((await lines.next()) ?? "null") as ApiListenerResult;
          await child.status;
          return {
            received: result.forks + result.execs + result.exits,
            forks: result.forks,
            execs: result.execs,
            exits: result.exits,
            reportedLost: result.lost,
            rssBytes,
            detail: result,
          };
        },
      };
    },
  };
}

/** `watch` in its human format (forkstat's columns, with context) `> file`. */
function procwatchCliHuman(): ListenerKind {
  return {
    name: "procwatch (CLI human)",
    reports: { fork: true, exec: true, exit: true },
    available: () => Promise.resolve(null),
    async start(parent) {
      const running = await startRedirected(
        "procwatch-cli-human",
        `${Deno.execPath()} run --allow-ffi ${root}cli.ts watch --verbose`,
        "SIGINT",
        0,
        "listening",
      );
      return {
        pid: running.pid,
        cpuSeconds: () => cpuSecondsOf(running.pid),
        async stop() {
          const rssBytes = rssOf(running.pid);
          const stderr = await running.stop();
          const ours = new OursCounter(parent);
          let lostLines = 0;
          // "TIME EVENT PID USER TTY INFO ...": lib/format.ts humanLine().
          const columns = /^\S+ (\w+)\s+(\d+) .{8} .{6} (?:child of (\d+)|thread \d+)?/;
          for await (const line of fileLines(running.output)) {
            const match = columns.exec(line);
            if (match === null) continue;
            const pid = Number(match[2]);
            switch (match[1]) {
              case "fork":
                if (match[3] !== undefined) ours.fork(Number(match[3]), pid, false);
                break;
              case "exec":
                ours.exec(pid);
                break;
              case "exit":
                ours.exit(pid, null);
                break;
              case "lost":
                lostLines += pid; // the count stands where a pid would
                break;
            }
          }
          await Deno.remove(running.output).catch(() => {});
          return {
            received: ours.total,
            forks: ours.forks,
            execs: ours.execs,
            exits: ours.exits,
            reportedLost: lostLines,
            rssBytes,
            detail: { warnings: stderr.filter((line) => line.includes("lost")) },
          };
        },
      };
    },
  };
}

/**
 * Waits until the listener's output is complete: its CPU use stops growing.
 *
 * @example
 * ```ts ignore
 * import { procwatchApi, settle } from "./peers.ts";
 * const listener = await procwatchApi().start(Deno.pid);
 * await settle(listener);
 * ```
 */
export async function settle(listener: RunningListener, maxMs = 20_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let previous = listener.cpuSeconds();
  let calm = 0;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = listener.cpuSeconds();
    calm = now - previous <= 1 / CLOCK_TICKS ? calm + 1 : 0;
    previous = now;
    if (calm >= 2) return;
  }
}

/** A listener started through `sh -c 'exec TOOL > file'`, stopped with a signal. */
async function startRedirected(
  name: string,
  command: string,
  stopSignal: Deno.Signal,
  readyMs: number,
  readyLine?: string,
): Promise<{ pid: number; output: string; stop(): Promise<string[]> }> {
  const output = tempOutput(name);
  const child = new Deno.Command("sh", {
    args: ["-c", `exec ${command} > ${output}`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errors = new LineReader(child.stderr);
  if (readyLine !== undefined) {
    for (;;) {
      const line = await errors.next();
      if (line === null) throw new Error(`${name} did not start`);
      if (line.includes(readyLine)) break;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, readyMs));
  return {
    pid: child.pid,
    output,
    async stop() {
      try {
        child.kill(stopSignal);
      } catch {
        // Already gone.
      }
      const stderr = await errors.rest();
      await child.status;
      return stderr;
    },
  };
}

/**
 * procwatch's CLI: `watch --json > file`.
 *
 * @example
 * ```ts ignore
 * import { procwatchCli } from "./peers.ts";
 * const listener = await procwatchCli().start(Deno.pid);
 * console.log((await listener.stop()).received);
 * ```
 */
export function procwatchCli(format: "json" | "human" = "json"): ListenerKind {
  if (format === "human") return procwatchCliHuman();
  return {
    name: "procwatch (CLI --json)",
    reports: { fork: true, exec: true, exit: true },
    available: () => Promise.resolve(null),
    async start(parent) {
      const running = await startRedirected(
        "procwatch-cli",
        `${Deno.execPath()} run --allow-ffi ${root}cli.ts watch --json --verbose`,
        "SIGINT",
        0,
        "listening",
      );
      return {
        pid: running.pid,
        cpuSeconds: () => cpuSecondsOf(running.pid),
        async stop() {
          const rssBytes = rssOf(running.pid);
          const stderr = await running.stop();
          const ours = new OursCounter(parent);
          let lostLines = 0;
          for await (const line of fileLines(running.output)) {
            if (line.length === 0) continue;
            const event = JSON.parse(line) as Record<string, number | boolean | string | null>;
            switch (event.type) {
              case "fork":
                ours.fork(event.parentPid as number, event.childPid as number, !!event.thread);
                break;
              case "exec":
                ours.exec(event.pid as number);
                break;
              case "exit":
                if (event.pid === event.tid) {
                  ours.exit(event.pid as number, event.parentPid as number | null);
                }
                break;
              case "lost":
                lostLines += event.count as number;
                break;
            }
          }
          await Deno.remove(running.output).catch(() => {});
          // With --json, -v's counters are one JSON object on stderr.
          const statsLine = stderr.find((line) => line.startsWith('{"type":"counters"'));
          const stats = statsLine ? JSON.parse(statsLine) : null;
          return {
            received: ours.total,
            forks: ours.forks,
            execs: ours.execs,
            exits: ours.exits,
            reportedLost: lostLines,
            rssBytes,
            detail: { stats, warnings: stderr.filter((line) => line.includes("lost")) },
          };
        },
      };
    },
  };
}

/**
 * forkstat: its default fork,exec,exit events, output to a file.
 *
 * @example
 * ```ts ignore
 * import { forkstat } from "./peers.ts";
 * const listener = await forkstat().start(Deno.pid);
 * console.log((await listener.stop()).forks);
 * ```
 */
export function forkstat(): ListenerKind {
  return {
    name: "forkstat",
    reports: { fork: true, exec: true, exit: true },
    async available() {
      return (await which("forkstat")) ? null : "forkstat not installed (apt-get install forkstat)";
    },
    async start(parent) {
      const running = await startRedirected(
        "forkstat",
        "forkstat -e fork,exec,exit",
        "SIGINT",
        1000,
      );
      return {
        pid: running.pid,
        cpuSeconds: () => cpuSecondsOf(running.pid),
        async stop() {
          const rssBytes = rssOf(running.pid);
          const stderr = await running.stop();
          // forkstat names the parent from its own process table; for a clone
          // from a worker thread it often cannot and prints pid 0 "[swapper]".
          // So a fork (parent us or 0) and an exec are held per child pid and
          // counted when that pid exits with the storm's own status: pids are
          // reused only after an exit, and no other process exits that way.
          const pending = new Map<number, { fork: boolean; exec: boolean }>();
          let forks = 0;
          let execs = 0;
          let exits = 0;
          let parentLine = false;
          let unresolvedParents = 0;
          for await (const line of fileLines(running.output)) {
            // "15:48:01 fork   4853 parent          bash", then "... fork 4857 child ...",
            // "... exec 4857   true", "... exit 4857   28928  0.001s true".
            const fields = line.trim().split(/\s+/);
            const [, event, pidText, info] = fields;
            const pid = Number(pidText);
            if (event === "fork") {
              if (info === "parent") {
                parentLine = pid === parent || pid === 0;
                if (pid === 0) unresolvedParents++;
              } else if (info === "child" && parentLine) {
                pending.set(pid, { fork: true, exec: false });
                parentLine = false;
              }
              continue;
            }
            parentLine = false;
            if (event === "exec") {
              const entry = pending.get(pid);
              if (entry) entry.exec = true;
              else pending.set(pid, { fork: false, exec: true });
            } else if (event === "exit") {
              const entry = pending.get(pid);
              pending.delete(pid);
              if (!stormStatuses.has(Number(info))) continue;
              exits++;
              if (entry?.fork) forks++;
              if (entry?.exec) execs++;
            }
          }
          await Deno.remove(running.output).catch(() => {});
          return {
            received: forks + execs + exits,
            forks,
            execs,
            exits,
            reportedLost: null,
            rssBytes,
            detail: { stderr: stderr.slice(0, 5), unresolvedParents },
          };
        },
      };
    },
  };
}

/**
 * extrace: execs (and, with -t, the exits of processes it saw exec).
 *
 * @example
 * ```ts ignore
 * import { extrace } from "./peers.ts";
 * const listener = await extrace("my-marker").start(Deno.pid);
 * console.log((await listener.stop()).execs);
 * ```
 */
export function extrace(marker: string): ListenerKind {
  return {
    name: "extrace",
    reports: { fork: false, exec: true, exit: true },
    async available() {
      return (await which("extrace")) ? null : "extrace not installed (apt-get install extrace)";
    },
    async start() {
      const running = await startRedirected("extrace", "extrace -t -f", "SIGTERM", 1000);
      return {
        pid: running.pid,
        cpuSeconds: () => cpuSecondsOf(running.pid),
        async stop() {
          const rssBytes = rssOf(running.pid);
          const stderr = await running.stop();
          const live = new Set<number>();
          let execs = 0;
          let exits = 0;
          for await (const line of fileLines(running.output)) {
            // "4886+ /bin/true x" and "4886- true exited status=0 time=0.003s".
            const match = /^(\d+)([+-]) /.exec(line);
            if (!match) continue;
            const pid = Number(match[1]);
            if (match[2] === "+") {
              if (line.includes(marker)) {
                execs++;
                live.add(pid);
              }
            } else if (live.delete(pid)) exits++;
          }
          await Deno.remove(running.output).catch(() => {});
          return {
            received: execs + exits,
            forks: 0,
            execs,
            exits,
            reportedLost: null,
            rssBytes,
            detail: {
              vanished: stderr.filter((line) => line.includes("vanished")).length,
              outOfOrder: stderr.filter((line) => line.includes("out of order")).length,
            },
          };
        },
      };
    },
  };
}
