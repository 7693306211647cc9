/**
 * Every event type against the real kernel: run a workload whose pids the test
 * knows and assert the exact events.
 */
import assert from "node:assert/strict";
import type { ExitEvent, ForkEvent, ProcEvent } from "../lib/events/events.ts";
import { ptraceDetach, ptraceSeize } from "./support/ffi/ptrace.ts";
import { currentThreadId } from "../ffi/process.ts";
import { readFileText } from "../ffi/proc_fs.ts";
import { collectUntil, eventsOf, kernelTest, ProcessTree, watchAll } from "./support/kernel.ts";
import { watch } from "../lib/watch/mod.ts";

function only<T extends ProcEvent["type"]>(
  events: ProcEvent[],
  type: T,
): Extract<ProcEvent, { type: T }>[] {
  return events.filter((event) => event.type === type) as Extract<ProcEvent, { type: T }>[];
}

function assertHead(event: ProcEvent): void {
  assert.equal(typeof event.cpu, "number");
  assert.equal(typeof event.timestampNs, "bigint");
  assert.ok(event.timestampNs > 0n);
  assert.ok(Math.abs(event.time.getTime() - Date.now()) < 60_000, "wall time is now-ish");
}

kernelTest("fork, exec and exit of /bin/true", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/bin/true", []);
  assert.deepEqual(events.map((event) => event.type), ["fork", "exec", "exit"]);
  const [fork, exec, exit] = events as [ForkEvent, ProcEvent, ExitEvent];
  events.forEach(assertHead);
  assert.equal(fork.parentPid, Deno.pid);
  assert.equal(fork.childPid, pid);
  assert.equal(fork.childTid, pid);
  assert.equal(fork.thread, false);
  assert.deepEqual({ ...exec, cpu: 0, timestampNs: 0n, time: null }, {
    type: "exec",
    pid,
    tid: pid,
    cpu: 0,
    timestampNs: 0n,
    time: null,
  });
  assert.equal(exit.pid, pid);
  assert.equal(exit.tid, pid);
  assert.equal(exit.exitCode, 0);
  assert.equal(exit.signal, null);
  assert.equal(exit.coreDumped, false);
  assert.equal(exit.status, 0);
  assert.equal(exit.exitSignal, 17, "SIGCHLD to the parent");
  assert.equal(exit.parentPid, Deno.pid);
  assert.ok(fork.timestampNs < exec.timestampNs && exec.timestampNs < exit.timestampNs);
});

kernelTest("exit 3 gives exitCode 3 and raw status 768", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/bin/sh", ["-c", "exit 3"]);
  const [exit] = only(events, "exit");
  assert.equal(exit.pid, pid);
  assert.equal(exit.exitCode, 3);
  assert.equal(exit.signal, null);
  assert.equal(exit.status, 3 << 8);
});

kernelTest("kill -9 gives signal SIGKILL and no exit code", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/bin/sleep", ["30"], {
    afterSpawn: async (pid) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      Deno.kill(pid, "SIGKILL");
    },
  });
  const [exit] = only(events, "exit");
  assert.equal(exit.pid, pid);
  assert.equal(exit.exitCode, null);
  assert.equal(exit.signal, "SIGKILL");
  assert.equal(exit.coreDumped, false);
  assert.equal(exit.status, 9);
});

kernelTest("a thread's creation and exit are marked, and hidden by default", async () => {
  await using watcher = watchAll();
  await using processesOnly = watch({ handleSignals: false });
  const { pid, events } = await eventsOf(watcher, "/usr/bin/python3", [
    "-c",
    "import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()",
  ]);
  const threadForks = only(events, "fork").filter((fork) => fork.childPid === pid && fork.thread);
  assert.ok(threadForks.length >= 1, "python created a thread");
  const thread = threadForks[threadForks.length - 1];
  assert.notEqual(thread.childTid, pid);
  // For a thread the kernel reports the process's parent (task->real_parent), not the creator.
  assert.equal(thread.parentPid, Deno.pid);
  const isThreadExit = (event: ProcEvent) => event.type === "exit" && event.tid === thread.childTid;
  // Python's join() returns when the thread's Python work is done, and the
  // process's exit_group() may end the OS thread after the main thread's own
  // exit event went out: then its exit is one of the next events.
  const threadExit = events.find(isThreadExit) ??
    (await collectUntil(watcher, isThreadExit, 5_000)).find(isThreadExit);
  assert.ok(threadExit?.type === "exit", "the thread's exit was reported");
  assert.equal(threadExit.pid, pid);
  assert.equal(threadExit.exitSignal, -1, "threads do not signal the parent");
  assert.ok(only(events, "exit").some((exit) => exit.tid === pid), "the main thread's exit");

  // The watcher with default options saw the process but none of its threads.
  const tree = new ProcessTree(pid);
  const seen = (await collectUntil(
    processesOnly,
    (event) => event.type === "exit" && event.pid === pid,
  )).filter((event) => tree.includes(event));
  assert.deepEqual(seen.map((event) => event.type), ["fork", "exec", "exit"]);
});

kernelTest("writing /proc/self/comm reports a comm event", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/bin/sh", [
    "-c",
    "printf renamed-proc > /proc/self/comm",
  ]);
  const comms = only(events, "comm");
  assert.equal(comms.length, 1);
  assert.equal(comms[0].pid, pid);
  assert.equal(comms[0].tid, pid);
  assert.equal(comms[0].comm, "renamed-proc");
});

kernelTest("setsid reports a sid event", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/usr/bin/setsid", ["/bin/true"]);
  const sids = only(events, "sid");
  assert.equal(sids.length, 1);
  // setsid(1) forks first only when it is a process group leader, which our child is not.
  assert.equal(sids[0].pid, pid);
  assert.equal(sids[0].tid, pid);
});

kernelTest("setpriv --reuid/--regid reports uid and gid events", async () => {
  await using watcher = watchAll();
  const { pid, events } = await eventsOf(watcher, "/usr/bin/setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "/bin/true",
  ]);
  const uids = only(events, "uid");
  const gids = only(events, "gid");
  assert.ok(uids.length >= 1 && gids.length >= 1);
  assert.deepEqual(
    { pid: uids[0].pid, tid: uids[0].tid, ruid: uids[0].ruid, euid: uids[0].euid },
    { pid, tid: pid, ruid: 65534, euid: 65534 },
  );
  assert.deepEqual(
    { pid: gids[0].pid, rgid: gids[0].rgid, egid: gids[0].egid },
    { pid, rgid: 65534, egid: 65534 },
  );
});

kernelTest("a core dump reports coredump, then exit with the core flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-core-" });
  try {
    await using watcher = watchAll();
    const { pid, events } = await eventsOf(
      watcher,
      "/bin/sh",
      ["-c", "ulimit -c unlimited; kill -SEGV $$"],
      { cwd: dir },
    );
    const [coredump] = only(events, "coredump");
    assert.ok(coredump, "coredump event");
    assert.equal(coredump.pid, pid);
    assert.equal(coredump.tid, pid);
    assert.equal(coredump.parentPid, Deno.pid);
    const [exit] = only(events, "exit");
    assert.equal(exit.signal, "SIGSEGV");
    assert.equal(exit.exitCode, null);
    assert.ok(coredump.timestampNs < exit.timestampNs);
    // With core_pattern "core" the dump lands in the cwd (our temp dir) and the flag is set.
    const pattern = readFileText("/proc/sys/kernel/core_pattern")?.trim() ?? "";
    if (!pattern.startsWith("|")) {
      assert.equal(exit.coreDumped, true);
      assert.equal(exit.status, 0x80 | 11);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

kernelTest("ptrace attach and detach report the tracer", async () => {
  // The tracee is a grandchild, so Deno's child reaper never sees its stops.
  const shell = new Deno.Command("/bin/sh", {
    args: ["-c", "sleep 30 & echo $!; wait"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = shell.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  const tracee = Number(new TextDecoder().decode(value).trim());
  try {
    await using watcher = watchAll({ events: ["ptrace"] });
    ptraceSeize(tracee);
    await ptraceDetach(tracee);
    const events = await collectUntil(
      watcher,
      (_, seen) => seen.filter((e) => e.type === "ptrace" && e.pid === tracee).length === 2,
    );
    const [attach, detach] = only(events, "ptrace").filter((event) => event.pid === tracee);
    assert.deepEqual(
      {
        pid: attach.pid,
        tid: attach.tid,
        tracerPid: attach.tracerPid,
        tracerTid: attach.tracerTid,
      },
      { pid: tracee, tid: tracee, tracerPid: Deno.pid, tracerTid: currentThreadId() },
    );
    assert.deepEqual(
      { pid: detach.pid, tracerPid: detach.tracerPid, tracerTid: detach.tracerTid },
      { pid: tracee, tracerPid: 0, tracerTid: 0 },
    );
  } finally {
    Deno.kill(tracee, "SIGKILL");
    await shell.stdout.cancel();
    await shell.status;
  }
});

kernelTest("event type and pid filters", async () => {
  await using watcher = watchAll({ events: ["exit"] });
  const shell = new Deno.Command("/bin/sh", { args: ["-c", "/bin/true; exit 5"] }).spawn();
  const all = await collectUntil(watcher, (e) => e.type === "exit" && e.pid === shell.pid);
  await shell.status;
  assert.ok(all.every((event) => event.type === "exit"));
  const ours = only(all, "exit").filter((e) => e.pid === shell.pid || e.parentPid === shell.pid);
  assert.deepEqual(ours.map((e) => [e.parentPid === shell.pid, e.exitCode]), [[true, 0], [
    false,
    5,
  ]]);

  await using byPid = watchAll({ pids: [Deno.pid] });
  await new Deno.Command("/bin/true").output();
  const seen = await collectUntil(byPid, (event) => event.type === "fork");
  assert.ok(
    seen.every((event) =>
      event.type === "fork"
        ? event.parentPid === Deno.pid || event.childPid === Deno.pid
        : "pid" in event && event.pid === Deno.pid
    ),
  );
});

kernelTest("counters: nothing malformed, foreign or lost in normal operation", async () => {
  await using watcher = watchAll();
  await eventsOf(watcher, "/bin/true", []);
  const stats = watcher.stats;
  assert.ok(stats.received >= 3);
  assert.ok(stats.delivered >= 3);
  assert.equal(stats.malformed, 0);
  assert.equal(stats.foreign, 0);
  assert.equal(stats.lostByKernel, 0);
  assert.equal(stats.lostInQueue, 0);
  assert.equal(watcher.filterMode, "kernel", "Linux 6.18 filters in the kernel");
});
