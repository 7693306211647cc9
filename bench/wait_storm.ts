/**
 * CPU of `procwatch wait` during a process storm, beside `pidwait` (procps),
 * and beside the same subscription without the kernel's help.
 *
 * Three waiters wait for one sleeping target while two Workers make
 * processes as fast as they can (bench/loadgen.ts, ~35K processes/s here):
 * `cli.ts wait` (its BPF socket filter drops every other process's events in
 * the kernel), `pidwait` (a pidfd in epoll: the floor), and a Deno process
 * with `wait`'s own subscription (fork, exec, exit, threads, the pid) but
 * `kernelFilter: false`, which receives the whole storm — what `wait` cost
 * before the socket filter. CPU is each process's time on a CPU during the
 * storm, summed over its threads (`/proc/PID/task/TID/schedstat`, ns), with
 * its voluntary context switches (wake-ups). The target is then killed and
 * each waiter must report it.
 *
 * ```sh
 * sudo deno run --allow-all bench/wait_storm.ts [seconds]
 * ```
 *
 * @module
 */

import { readLink } from "../ffi/proc_fs.ts";
import { watch } from "../lib/watch/mod.ts";
import { runStorm } from "./loadgen.ts";

/** One waiter's cost during the storm. */
export interface WaiterCost {
  /** CPU time, all threads, during the storm (ms). */
  cpuMs: number;
  /** Voluntary context switches, all threads, during the storm. */
  wakeups: number;
}

/**
 * What {@linkcode benchWaitStorm} measured.
 *
 * @example
 * ```ts ignore
 * import { benchWaitStorm } from "./wait_storm.ts";
 * const result = await benchWaitStorm(3000);
 * console.log(result.procwatch.cpuMs, result.pidwait?.cpuMs);
 * ```
 */
export interface WaitStormResult {
  /** Processes the storm made, and per second. */
  processes: number;
  processesPerSecond: number;
  seconds: number;
  /** `cli.ts wait` (socket filter on). */
  procwatch: WaiterCost;
  /** Whether `cli.ts wait` said its pids are filtered in the kernel. */
  kernelPidFilter: boolean;
  /** `pidwait`; `null` when not installed. */
  pidwait: WaiterCost | null;
  /** `wait`'s subscription without any kernel filter. */
  unfiltered: WaiterCost;
}

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const PIDWAIT = "/usr/bin/pidwait";

/** Sums `schedstat` run time and `status` voluntary switches over the threads of `pid`. */
function sample(pid: number): { ns: number; switches: number } {
  let ns = 0;
  let switches = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(
        Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/schedstat`).split(" ")[0],
      );
      const status = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/status`);
      switches += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return { ns, switches };
}

async function readUntil(stream: ReadableStream<Uint8Array>, marker: string): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench: ended before "${marker}": ${text}`);
    text += value;
  }
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) continue;
  })().catch(() => {});
  return text;
}

function hasPidfd(pid: number): boolean {
  for (let fd = 3; fd < 16; fd++) {
    if (readLink(`/proc/${pid}/fd/${fd}`) === "anon_inode:[pidfd]") return true;
  }
  return false;
}

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Runs the storm for `durationMs` with the three waiters on one target.
 * Needs root for the proc connector.
 */
export async function benchWaitStorm(durationMs = 3000): Promise<WaitStormResult> {
  const target = new Deno.Command("sleep", { args: ["600"], stdin: "null", stdout: "null" })
    .spawn();
  const children: Deno.ChildProcess[] = [];
  const pidFile = await Deno.makeTempFile({ prefix: "procwatch-bench-" });
  try {
    const procwatch = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", CLI, "wait", "-v", "-q", String(target.pid)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    children.push(procwatch);
    const armedText = await readUntil(procwatch.stderr, "procwatch: armed:");
    const unfiltered = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", SELF, "--unfiltered-waiter", String(target.pid)],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    children.push(unfiltered);
    await readUntil(unfiltered.stdout, "armed");
    let pidwait: Deno.ChildProcess | null = null;
    if (installed(PIDWAIT)) {
      await Deno.writeTextFile(pidFile, `${target.pid}\n`);
      pidwait = new Deno.Command(PIDWAIT, {
        args: ["-F", pidFile],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      children.push(pidwait);
      const deadline = Date.now() + 10_000;
      while (!hasPidfd(pidwait.pid)) {
        if (Date.now() > deadline) throw new Error("bench: pidwait opened no pidfd");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    // Let start-up work (JIT, module loading) finish before measuring.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = children.map((child) => sample(child.pid));
    const storm = await runStorm({ mode: "exit", workers: 2, durationMs });
    const after = children.map((child) => sample(child.pid));
    const cost = (i: number): WaiterCost => ({
      cpuMs: (after[i].ns - before[i].ns) / 1e6,
      wakeups: after[i].switches - before[i].switches,
    });
    // The -v line after "armed" may have arrived with it or just after.
    target.kill("SIGTERM");
    const [waitStatus, unfilteredStatus, pidwaitStatus] = await Promise.all([
      procwatch.status,
      unfiltered.status,
      pidwait?.status ?? Promise.resolve(null),
    ]);
    if (waitStatus.code !== 143) throw new Error(`bench: wait exited ${waitStatus.code}`);
    if (unfilteredStatus.code !== 0) throw new Error("bench: the unfiltered waiter failed");
    if (pidwaitStatus !== null && pidwaitStatus.code !== 0) {
      throw new Error("bench: pidwait failed");
    }
    return {
      processes: storm.processes,
      processesPerSecond: storm.processesPerSecond,
      seconds: storm.seconds,
      procwatch: cost(0),
      kernelPidFilter: !/not in the kernel/.test(armedText),
      unfiltered: cost(1),
      pidwait: pidwait === null ? null : cost(2),
    };
  } finally {
    try {
      target.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await target.status;
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    }
    await Deno.remove(pidFile).catch(() => {});
  }
}

/**
 * The bench row, as text.
 *
 * @example
 * ```ts
 * import { formatWaitStorm } from "./wait_storm.ts";
 * console.log(formatWaitStorm({
 *   processes: 100_000, processesPerSecond: 33_000, seconds: 3, kernelPidFilter: true,
 *   procwatch: { cpuMs: 1, wakeups: 2 }, pidwait: { cpuMs: 0.1, wakeups: 0 },
 *   unfiltered: { cpuMs: 900, wakeups: 400 },
 * }).split("\n")[0]);
 * ```
 */
export function formatWaitStorm(result: WaitStormResult): string {
  const row = (name: string, cost: WaiterCost) =>
    `  ${name.padEnd(44)} ${cost.cpuMs.toFixed(1).padStart(8)} ms CPU, ${
      String(cost.wakeups).padStart(6)
    } wake-ups`;
  const ratio = result.pidwait !== null && result.pidwait.cpuMs > 0
    ? `${(result.procwatch.cpuMs / result.pidwait.cpuMs).toFixed(1)}× pidwait's CPU`
    : "pidwait's CPU below measurement";
  return [
    `CPU of \`wait\` during a storm (${
      Math.round(result.processesPerSecond).toLocaleString("en-US")
    } processes/s for ${result.seconds.toFixed(1)} s, ${
      result.processes.toLocaleString("en-US")
    } processes): ${ratio}`,
    row(
      `cli.ts wait (${result.kernelPidFilter ? "BPF pid filter" : "no kernel pid filter"})`,
      result.procwatch,
    ),
    result.pidwait === null
      ? "  pidwait: not installed (apt-get install procps)"
      : row("pidwait (pidfd)", result.pidwait),
    row("wait's subscription, no kernel filter", result.unfiltered),
  ].join("\n");
}

/** The unfiltered waiter: `wait`'s subscription with `kernelFilter: false`, until the pid exits. */
async function unfilteredWaiter(pid: number): Promise<void> {
  const watcher = watch({
    events: ["fork", "exec", "exit"],
    threads: true,
    pids: [pid],
    kernelFilter: false,
  });
  await Deno.stdout.write(new TextEncoder().encode("armed\n"));
  for await (const event of watcher) {
    if (event.type === "exit" && event.pid === pid && event.tid === pid) break;
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--unfiltered-waiter") {
    await unfilteredWaiter(Number(Deno.args[1]));
  } else {
    const seconds = Number(Deno.args[0] ?? "3");
    console.log(formatWaitStorm(await benchWaitStorm(seconds * 1000)));
  }
}
