/**
 * Issue 13, target 3: `cli.ts wait` on 8,000 sleeping processes killed at
 * once (one kill(-pgid)), beside a Python pidfd waiter on the same case:
 * start → armed, and the kernel's last exit of the 8,000 → the waiter's own
 * exit (both times are the kernel's exit-event timestamps, read by a watcher
 * in this process). `cli.ts wait` runs with `-v` (8,000 more lines) and
 * without. Targets: armed ≤ 200 ms; last exit → return ≤ 20 ms; `-v` no slower.
 *
 * `deno run --allow-all bench/wait_many.ts [PROCESSES]`
 *
 * @module
 */

import { monotonicNs } from "../ffi/clock.ts";
import { SleepingProcesses } from "../tests/support/ffi/clone.ts";
import { watch } from "../lib/watch/mod.ts";

/** One waiter's figures. */
export interface WaitManyRow {
  /** Which waiter. */
  tool: string;
  /** Spawn → it said it is armed (ms); `null` when it cannot say (no `-v`). */
  armedMs: number | null;
  /** The kernel's last exit event of the sleepers → the waiter's exit event (ms). */
  lastExitToReturnMs: number;
  /** Kill → the kernel's last exit event of the sleepers (ms): the kernel's own part. */
  killToLastExitMs: number;
  /** The waiter's exit status. */
  code: number;
}

const CLI = new URL("../cli.ts", import.meta.url).pathname;

/** Python: pidfd_open() every pid read from stdin, poll() until all are readable. */
const PYTHON_WAITER = `
import os, resource, select, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
pids = [int(word) for word in sys.stdin.read().split()]
poller = select.poll()
fds = {}
for pid in pids:
    fd = os.pidfd_open(pid)
    fds[fd] = pid
    poller.register(fd, select.POLLIN)
print("armed", flush=True)
left = len(fds)
while left:
    for fd, _ in poller.poll():
        poller.unregister(fd)
        left -= 1
os._exit(0)
`;

async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  marker: string,
): Promise<void> {
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench: waiter ended before "${marker}": ${text}`);
    text += value;
  }
}

async function trial(
  tool: "cli -v" | "cli" | "python pidfd",
  processes: number,
): Promise<WaitManyRow> {
  using sleepers = SleepingProcesses.spawn(processes);
  const targets = new Set(sleepers.pids);
  const exits = new Map<number, bigint>();
  let lastExitNs = 0n;
  let seen = 0;
  const watcher = watch({ events: ["exit"], handleSignals: false });
  const recording = (async () => {
    for await (const event of watcher) {
      if (event.type !== "exit" || event.pid !== event.tid) continue;
      if (targets.has(event.pid)) {
        seen++;
        if (event.timestampNs > lastExitNs) lastExitNs = event.timestampNs;
      } else {
        exits.set(event.pid, event.timestampNs);
      }
    }
  })();
  try {
    const spawned = monotonicNs();
    let child: Deno.ChildProcess;
    let armedMs: number | null = null;
    let cleanup = () => Promise.resolve();
    if (tool === "python pidfd") {
      child = new Deno.Command("python3", {
        args: ["-c", PYTHON_WAITER],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(sleepers.pids.join(" ")));
      await writer.close();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      await readUntil(reader, "armed");
      armedMs = Number(monotonicNs() - spawned) / 1e6;
      reader.releaseLock();
    } else {
      const verbose = tool === "cli -v";
      // -v's lines go to a file, as a redirected stderr: a pipe read by this
      // busy process would time its reader, not the waiter.
      const log = await Deno.makeTempFile({ prefix: "procwatch-bench-wait-" });
      child = new Deno.Command("sh", {
        args: [
          "-c",
          'log="$1"; shift; exec "$@" 2>"$log"',
          "sh",
          log,
          Deno.execPath(),
          "run",
          "--allow-ffi",
          CLI,
          "wait",
          "-q",
          ...(verbose ? ["-v"] : []),
          ...sleepers.pids.map(String),
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      if (verbose) {
        const deadline = Date.now() + 30_000;
        while (!(await Deno.readTextFile(log)).includes("procwatch: armed:")) {
          if (Date.now() > deadline) throw new Error("bench: cli -v did not arm");
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        armedMs = Number(monotonicNs() - spawned) / 1e6;
      } else {
        // No armed line without -v: give it time enough (the -v run says how long it needs).
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
      cleanup = () => Deno.remove(log).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const killedNs = monotonicNs();
    sleepers.killAll();
    const status = await child.status;
    sleepers.reapAll();
    // The waiter's own exit event, then the watcher is done.
    const deadline = Date.now() + 5000;
    while (!exits.has(child.pid) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await cleanup();
    const returned = exits.get(child.pid);
    if (returned === undefined || seen < processes) {
      throw new Error(
        `bench: ${tool}: ${seen}/${processes} exits seen, waiter exit seen: ${!!returned}`,
      );
    }
    return {
      tool,
      armedMs,
      lastExitToReturnMs: Number(returned - lastExitNs) / 1e6,
      killToLastExitMs: Number(lastExitNs - killedNs) / 1e6,
      code: status.code,
    };
  } finally {
    watcher.close();
    await recording;
  }
}

/**
 * Runs each waiter `rounds` times, interleaved, on `processes` sleepers.
 *
 * @example
 * ```ts ignore
 * import { benchWaitMany } from "./wait_many.ts";
 * for (const row of await benchWaitMany(8000, 3)) console.log(row);
 * ```
 */
export async function benchWaitMany(processes = 8000, rounds = 3): Promise<WaitManyRow[]> {
  const rows: WaitManyRow[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const tool of ["cli -v", "cli", "python pidfd"] as const) {
      rows.push(await trial(tool, processes));
    }
  }
  return rows;
}

/**
 * The rows as text, medians per waiter, with the targets.
 *
 * @example
 * ```ts ignore
 * import { benchWaitMany, formatWaitMany } from "./wait_many.ts";
 * console.log(formatWaitMany(await benchWaitMany()));
 * ```
 */
export function formatWaitMany(rows: WaitManyRow[], processes = 8000): string {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)];
  };
  const tools = [...new Set(rows.map((row) => row.tool))];
  const lines = [
    `wait on ${processes} processes killed at once (medians of ${
      rows.filter((row) => row.tool === tools[0]).length
    } runs, ms): armed | last exit → return | kill → last exit (kernel) | runs`,
  ];
  const stats: Record<string, { armed: number; ret: number }> = {};
  for (const tool of tools) {
    const mine = rows.filter((row) => row.tool === tool);
    const armed = median(mine.flatMap((row) => row.armedMs === null ? [] : [row.armedMs]));
    const ret = median(mine.map((row) => row.lastExitToReturnMs));
    stats[tool] = { armed, ret };
    lines.push(
      `  ${tool.padEnd(14)} ${Number.isNaN(armed) ? "      -" : armed.toFixed(0).padStart(7)} ${
        ret.toFixed(1).padStart(8)
      } ${median(mine.map((row) => row.killToLastExitMs)).toFixed(0).padStart(8)}   ${
        mine.map((row) => row.lastExitToReturnMs.toFixed(1)).join(", ")
      }`,
    );
  }
  const cli = stats["cli -v"];
  const py = stats["python pidfd"];
  if (cli && py) {
    lines.push(
      `target: armed ${cli.armed.toFixed(0)} ms (≤ 200; python pidfd ${
        py.armed.toFixed(0)
      } ms); last exit → return ${cli.ret.toFixed(1)} ms (≤ 20; ${
        (cli.ret / py.ret).toFixed(2)
      }× python pidfd); without -v ${stats["cli"]?.ret.toFixed(1)} ms`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const processes = Number(Deno.args[0] ?? 8000);
  console.log(formatWaitMany(await benchWaitMany(processes, Number(Deno.args[1] ?? 3)), processes));
}
