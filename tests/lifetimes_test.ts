/**
 * Lifetimes against the real kernel: reparenting,
 * a thread's own lifetime, a process that outlives its main thread
 * (`pthread_exit()`, a non-main thread's execve), and `-p PID --threads`.
 * The references are what the workloads record of themselves: their own
 * `getppid()`, their own `CLOCK_MONOTONIC` reads, their parent's `waitpid()`.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ExitEvent, ForkEvent, ProcEvent } from "../lib/events/events.ts";
import { ProcessTable } from "../lib/process/table.ts";
import { waitForExit } from "../lib/wait/wait.ts";
import { collectUntil, kernelTest, watchAll } from "./support/kernel.ts";
import { Gate, killQuietly, startWait } from "./support/processes.ts";
import { LineReader, spawnDeno } from "./support/subprocess.ts";

const SOURCE = new URL("./support/lifetimes.c", import.meta.url).pathname;
let binary: string | undefined;

/** Compiles tests/support/lifetimes.c once, into a temporary directory. */
async function workloadBinary(): Promise<string> {
  if (binary !== undefined) return binary;
  const dir = await Deno.makeTempDir({ prefix: "procwatch-lifetimes-" });
  const out = `${dir}/lifetimes`;
  const result = await new Deno.Command("gcc", {
    args: ["-O1", "-pthread", "-o", out, SOURCE],
    stderr: "piped",
  }).output();
  if (result.code !== 0) throw new Error(new TextDecoder().decode(result.stderr));
  binary = out;
  return out;
}

/** A running workload: its child's pid, and its lines as they come. */
interface Workload {
  child: Deno.ChildProcess;
  lines: LineReader;
  gate: Gate;
  pid: number;
  dir: string;
  /** The value of the line `key ...` (its words after the key). */
  field(key: string): Promise<string[]>;
}

async function startWorkload(mode: string): Promise<Workload> {
  const exe = await workloadBinary();
  const dir = await Deno.makeTempDir({ prefix: "procwatch-gate-" });
  const gate = new Gate(dir, "go");
  const child = new Deno.Command(exe, {
    args: [mode, gate.path],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = new LineReader(child.stdout);
  const field = async (key: string) =>
    (await lines.waitFor((line) => line.startsWith(`${key} `))).split(" ").slice(1);
  const pid = Number((await field("child"))[0]);
  return { child, lines, gate, pid, dir, field };
}

async function finish(workload: Workload): Promise<void> {
  killQuietly(workload.pid);
  await workload.child.status;
  await workload.lines.done;
  await Deno.remove(workload.dir, { recursive: true });
}

/** The reparenting workload: the child outlives its parent; it reports its own new parent. */
const ORPHAN_PY = `import os, sys, time
if os.fork() == 0:
    time.sleep(0.5)
    with open("/proc/self/comm", "w") as f:
        f.write("orphan-renamed")
    sys.stdout.write(f"{os.getpid()} {os.getppid()}\\n")
    sys.stdout.flush()
    os._exit(4)
os._exit(0)
`;

async function runOrphan(): Promise<{ pid: number; newParent: number }> {
  const output = await new Deno.Command("python3", {
    args: ["-c", ORPHAN_PY],
    stdin: "null",
    stdout: "piped",
  }).output();
  const [pid, newParent] = new TextDecoder().decode(output.stdout).trim().split(" ").map(Number);
  return { pid, newParent };
}

function commOf(pid: number): string {
  return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
}

kernelTest(
  "reparenting: a child whose parent ended has its new parent in context and filters",
  async () => {
    // Where orphans of this test go (init, or a subreaper above us): the same for every run.
    const { newParent: reaper } = await runOrphan();
    assert(reaper > 0);
    using watcher = watchAll({ events: ["comm", "exit"], context: true, ppid: reaper });
    await watcher.ready;
    // runOrphan() returns once the orphan has exited (its stdout closes then);
    // meanwhile the watcher queues the events, read below.
    const { pid: childPid, newParent } = await runOrphan();
    const seen = await collectUntil(
      watcher,
      (event) => event.type === "exit" && event.pid === childPid,
    );
    assert.equal(newParent, reaper);
    const mine = seen.filter((event) => "pid" in event && event.pid === childPid);
    const comm = mine.find((event) => event.type === "comm");
    const exit = mine.find((event): event is ExitEvent => event.type === "exit");
    assert(comm !== undefined, `no comm event of ${childPid} under --ppid ${reaper}`);
    assert(exit !== undefined, `no exit event of ${childPid} under --ppid ${reaper}`);
    assert.equal(exit.exitCode, 4);
    assert.equal(exit.parentPid, newParent);
    for (const event of [comm, exit]) {
      assert.equal(event.process?.ppid, newParent, `${event.type}: ppid`);
      assert.equal(event.process?.parentComm, commOf(newParent), `${event.type}: parentComm`);
    }
  },
);

kernelTest("reparenting: watch --json --ppid REAPER -e exit prints the orphan's exit", async () => {
  const { newParent: reaper } = await runOrphan();
  const cli = spawnDeno("cli.ts", [
    "watch",
    "--json",
    "--ppid",
    String(reaper),
    "-e",
    "exit",
    "-v",
  ]);
  try {
    await cli.stderr.waitFor((line) => line.includes("listening"));
    const { pid, newParent } = await runOrphan();
    assert.equal(newParent, reaper);
    const line = await cli.stdout.waitFor((text) => text.includes(`"pid":${pid},`));
    const event = JSON.parse(line);
    assert.equal(event.exitCode, 4);
    assert.equal(event.parentPid, newParent);
  } finally {
    await cli.stop();
  }
});

kernelTest(
  "thread lifetime: a thread's exit durationNs is its own life, not the process's",
  async () => {
    using watcher = watchAll({ events: ["fork", "exit"], context: true });
    await watcher.ready;
    const workload = await startWorkload("thread-life");
    try {
      // The process lives 150 ms before it creates the thread.
      await new Promise((resolve) => setTimeout(resolve, 150));
      workload.gate.open();
      const [tid, start, end] = (await workload.field("thread")).map(BigInt);
      const seen = await collectUntil(
        watcher,
        (_event, events) =>
          events.some((event) => event.type === "exit" && event.tid === Number(tid)),
      );
      const exit = seen.find((event): event is ExitEvent =>
        event.type === "exit" && event.tid === Number(tid)
      );
      const fork = seen.find((event): event is ForkEvent =>
        event.type === "fork" && event.childTid === Number(tid)
      );
      assert(exit !== undefined && fork !== undefined);
      assert.equal(exit.pid, workload.pid);
      const own = end - start; // the thread's own measure, inside clone → exit
      const duration = exit.process?.durationNs;
      assert(duration !== null && duration !== undefined, "no durationNs");
      assert.equal(duration, exit.timestampNs - fork.timestampNs);
      assert(duration >= own, `durationNs ${duration} < the thread's own ${own}`);
      assert(duration - own < 5_000_000n, `durationNs ${duration} vs the thread's own ${own}`);
    } finally {
      await finish(workload);
    }
  },
);

/** Runs a workload whose process outlives its main thread; checks waitForExit and `wait --json`. */
async function outlivesMainThread(mode: string, code: number): Promise<void> {
  const workload = await startWorkload(mode);
  try {
    let armed = false;
    const waiting = waitForExit(workload.pid, {
      handleSignals: false,
      timeout: 20_000,
      onArmed: () => armed = true,
    });
    const cli = await startWait(["--json", String(workload.pid)]);
    await cli.armed;
    while (!armed) await new Promise((resolve) => setTimeout(resolve, 10));
    workload.gate.open();
    const info = await waiting;
    const result = await cli.done;
    // The references: when the last thread ran, and what the parent's waitpid() got.
    const [last] = (await workload.field("last")).map(BigInt);
    const [status] = (await workload.field("status")).map(BigInt);
    assert.equal(Number(status), code << 8);
    assert.equal(info.status, Number(status));
    assert.equal(info.exitCode, code);
    assert.equal(info.source, "event");
    assert(info.timestampNs !== null && info.timestampNs >= last, "ended before its last thread");
    // (No bound from the reap: do_exit() sends the exit event after exit_notify()
    // woke the parent, so the parent may reap before the event's timestamp.)
    assert.equal(result.code, code, result.stderr);
    const line = JSON.parse(result.stdout);
    assert.equal(line.pid, workload.pid);
    assert.equal(line.status, Number(status));
    assert.equal(line.exitCode, code);
    assert(BigInt(line.timestampNs) >= last, "wait --json: ended before its last thread");
  } finally {
    await finish(workload);
  }
}

kernelTest(
  "wait: a non-main thread's execve does not end the process; its real exit does",
  async () => {
    await outlivesMainThread("nonmain-exec", 5);
  },
);

kernelTest(
  "wait: pthread_exit() of the main thread does not end the process; its last thread does",
  async () => {
    await outlivesMainThread("pthread-exit", 7);
  },
);

/** Python: after the gate, a thread, then a child with a thread; each thread reports its id. */
const THREADS_PY = `import os, sys, threading, time
gate = sys.argv[1]
while not os.path.exists(gate):
    time.sleep(0.005)
def work(who):
    sys.stdout.write(f"{who} {threading.get_native_id()}\\n")
    sys.stdout.flush()
    time.sleep(0.05)
def threaded(who):
    t = threading.Thread(target=work, args=(who,))
    t.start()
    t.join()
threaded("own")
pid = os.fork()
if pid == 0:
    threaded("child")
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write(f"childpid {pid}\\n")
`;

kernelTest(
  "-p PID --threads: PID's own thread creations and exits, not its children's",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "procwatch-gate-" });
    const gate = new Gate(dir, "go");
    const python = new Deno.Command("python3", {
      args: ["-c", THREADS_PY, gate.path],
      stdin: "null",
      stdout: "piped",
    }).spawn();
    try {
      using watcher = watchAll({ events: ["fork", "exit"], pids: [python.pid] });
      await watcher.ready;
      gate.open();
      const output = python.output();
      const seen: ProcEvent[] = await collectUntil(
        watcher,
        (event) => event.type === "exit" && event.pid === python.pid && event.tid === python.pid,
      );
      const text = new TextDecoder().decode((await output).stdout);
      const value = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, "m").exec(text)?.[1]);
      const own = value("own");
      const childThread = value("child");
      const childPid = value("childpid");
      assert(own > 0 && childThread > 0 && childPid > 0, text);
      const created = seen.filter((event): event is ForkEvent =>
        event.type === "fork" && event.thread
      )
        .map((event) => event.childTid);
      const ended = seen.filter((event): event is ExitEvent =>
        event.type === "exit" && event.tid !== event.pid
      ).map((event) => event.tid);
      assert.deepEqual(created, [own], "thread creations");
      assert.deepEqual(ended, created, "thread exits agree with creations");
      // The fork of its child is its own event; the child's thread is not.
      assert(seen.some((event) => event.type === "fork" && event.childPid === childPid));
      assert(!seen.some((event) => event.type === "fork" && event.childTid === childThread));
    } finally {
      killQuietly(python.pid);
      await python.status.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest("watch --json -p PID --threads: the CLI shows PID's own threads only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-gate-" });
  const gate = new Gate(dir, "go");
  const python = new Deno.Command("python3", {
    args: ["-c", THREADS_PY, gate.path],
    stdin: "null",
    stdout: "piped",
  }).spawn();
  const cli = spawnDeno("cli.ts", [
    "watch",
    "--json",
    "-v",
    "--threads",
    "-e",
    "fork,exit",
    "-p",
    String(python.pid),
  ]);
  try {
    await cli.stderr.waitFor((line) => line.includes("listening"));
    gate.open();
    const text = new TextDecoder().decode((await python.output()).stdout);
    await cli.stdout.waitFor((line) => line.includes(`"tid":${python.pid},`));
    const value = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, "m").exec(text)?.[1]);
    const own = value("own");
    const childThread = value("child");
    assert(own > 0 && childThread > 0, text);
    const events = cli.stdout.lines.filter((line) => line.startsWith("{")).map((line) =>
      JSON.parse(line)
    );
    const created = events.filter((event) => event.type === "fork" && event.thread)
      .map((event) => event.childTid);
    const ended = events.filter((event) => event.type === "exit" && event.tid !== event.pid)
      .map((event) => event.tid);
    assert.deepEqual(created, [own], "thread creations");
    assert.deepEqual(ended, created, "thread exits agree with creations");
  } finally {
    await cli.stop();
    killQuietly(python.pid);
    await python.status.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

// The table's rules on a scripted event sequence (pids no process has: nothing is read from /proc).
const base = (ns: number) => ({ cpu: 0, timestampNs: BigInt(ns), time: new Date(0) });
const fork = (ns: number, parent: number, pid: number, tid = pid): ForkEvent => ({
  type: "fork",
  ...base(ns),
  parentPid: parent,
  parentTid: parent,
  childPid: pid,
  childTid: tid,
  thread: pid !== tid,
});
const exit = (ns: number, pid: number, tid: number, status: number, parent: number): ExitEvent => ({
  type: "exit",
  ...base(ns),
  pid,
  tid,
  exitCode: status >> 8,
  signal: null,
  coreDumped: false,
  status,
  exitSignal: pid === tid ? 17 : -1,
  parentPid: pid === tid ? parent : 0,
  parentTid: pid === tid ? parent : 0,
});

Deno.test("process table: a process ends with its last thread; the exit of a main thread replaced by an exec is not the end", () => {
  const table = new ProcessTable({ exitGraceMs: 1e9 });
  const [parent, pid, thread] = [4194001, 4194002, 4194003];
  table.observe(fork(1, parent, pid));
  table.observe(fork(2, parent, pid, thread));
  // pthread_exit() of the main thread: the process lives on.
  table.observe(exit(3, pid, pid, 0, parent));
  assert.equal(table.get(pid)?.exitNs, null);
  assert.equal(table.threadStartNs(table.get(pid)!, thread), 2n);
  table.observe(exit(4, pid, thread, 7 << 8, 0));
  assert.equal(table.get(pid)?.exitNs, 4n);

  // A non-main thread's execve: the old main thread's exit, then the exec of the pid.
  const other = 4194004;
  table.observe(fork(10, parent, other));
  table.observe(fork(11, parent, other, other + 1));
  table.observe(exit(12, other, other, 0, parent));
  table.observe({ type: "exec", ...base(13), pid: other, tid: other });
  assert.equal(table.get(other)?.exitNs, null);
  table.observe(exit(14, other, other, 5 << 8, parent));
  assert.equal(table.get(other)?.exitNs, 14n);
});

Deno.test("process table: children of an ended process are reparented by their own exit", () => {
  const table = new ProcessTable({ exitGraceMs: 1e9 });
  const [grand, parent, child] = [4194011, 4194012, 4194013];
  table.observe(fork(1, grand, parent));
  table.observe(fork(2, parent, child));
  assert.equal(table.get(child)?.ppid, parent);
  table.observe(exit(3, parent, parent, 0, grand));
  assert.equal(table.get(child)?.orphaned, true);
  // The kernel names the new parent in the child's exit (a thread fork would too).
  table.observe(exit(4, child, child, 4 << 8, 1));
  assert.equal(table.get(child)?.ppid, 1);
  assert.equal(table.get(child)?.orphaned, false);
});
