/**
 * The wait API (`waitForExit`, `waitForAll`, `waitForAny`) and the
 * `/proc/PID/stat` parser.
 */

import assert from "node:assert/strict";
import { readFileText, readLink } from "../ffi/proc_fs.ts";
import {
  type ExitInfo,
  NoSuchProcessError,
  UsageError,
  waitForAll,
  waitForAny,
  waitForExit,
  WaitTimeoutError,
} from "../mod.ts";
import type { ExitEvent } from "../lib/events/events.ts";
import { parseProcStat, parseProcStatus, readProcStat } from "../lib/process/proc_stat.ts";
import { collectUntil, kernelTest, watchAll } from "./support/kernel.ts";
import { alive, Gate, killQuietly, startOrphan, until } from "./support/processes.ts";

Deno.test("parseProcStat: fields after a name with spaces and parentheses", () => {
  const rest = ["Z", "1", "2", "3", "0", "-1", "4227148", ...Array(12).fill("0"), "162928"];
  const tail = [...Array(29).fill("0"), "1792"];
  const stat = parseProcStat(`7369 (a) b (c)) ${[...rest, ...tail].join(" ")}\n`);
  assert.deepEqual(stat, {
    pid: 7369,
    comm: "a) b (c)",
    state: "Z",
    ppid: 1,
    ttyNr: 0,
    numThreads: 0,
    startTicks: 162928n,
    exitStatus: 1792,
    exitSignal: 0,
  });
  // Kernels before 3.5 end at field 44: no exit_code.
  const old = parseProcStat(`5 (x) S ${[...rest.slice(1), ...Array(22).fill("0")].join(" ")}`);
  assert.equal(old?.exitStatus, null);
  assert.equal(parseProcStat("garbage"), null);
});

Deno.test("parseProcStatus: Tgid and Uid", () => {
  assert.deepEqual(parseProcStatus("Name:\tsh\nTgid:\t12\nPid:\t13\nUid:\t1000\t1000\t0\t1000\n"), {
    tgid: 12,
    uids: [1000, 1000, 0, 1000],
    gids: [],
  });
  assert.equal(parseProcStatus("Name:\tsh\n"), null);
});

Deno.test("readProcStat: this process", () => {
  const stat = readProcStat(Deno.pid);
  assert.equal(stat?.pid, Deno.pid);
  assert.match(stat?.state ?? "", /^[RS]$/);
  assert.ok((stat?.startTicks ?? 0n) > 0n);
});

/** The proc connector sockets (NETLINK_CONNECTOR = 11) this process holds, by socket inode. */
function connectorSockets(): number {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const target = readLink(`/proc/self/fd/${entry.name}`);
    const match = target && /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]);
  }
  const table = readFileText("/proc/net/netlink") ?? "";
  return table.split("\n").filter((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === "11" && inodes.has(fields.at(-1) ?? "");
  }).length;
}

kernelTest("waitForExit: the exit event's status and time, and how long it ran", async () => {
  using watcher = watchAll({ events: ["exit"] });
  const child = new Deno.Command("sh", { args: ["-c", "sleep 0.3; exit 3"] }).spawn();
  const info = await waitForExit(child.pid, { handleSignals: false });
  const [event] = (await collectUntil(
    watcher,
    (e) => e.type === "exit" && e.pid === child.pid && e.tid === child.pid,
  )).filter((e): e is ExitEvent => e.type === "exit" && e.pid === child.pid);
  await child.status;
  assert.deepEqual(
    { ...info, runtimeMs: 0, time: null },
    {
      pid: child.pid,
      statusKnown: true,
      status: 3 << 8,
      exitCode: 3,
      signal: null,
      signalNumber: null,
      coreDumped: false,
      shellStatus: 3,
      timestampNs: event.timestampNs,
      time: null,
      runtimeMs: 0,
      source: "event",
      method: "connector",
    } satisfies ExitInfo,
  );
  assert.ok(info.time instanceof Date && Math.abs(info.time.getTime() - Date.now()) < 60_000);
  // Start time has clock-tick (10 ms) resolution; sleep 0.3 s plus shell start.
  assert.ok(
    info.runtimeMs !== null && info.runtimeMs >= 280 && info.runtimeMs < 5000,
    `${info.runtimeMs}`,
  );
});

kernelTest("waitForAll / waitForAny: order of ending, onExit for each", async () => {
  const a = new Deno.Command("sh", { args: ["-c", "sleep 0.4; exit 1"] }).spawn();
  const b = new Deno.Command("sh", { args: ["-c", "sleep 0.1; kill -TERM $$"] }).spawn();
  const seen: number[] = [];
  const all = await waitForAll([a.pid, b.pid, a.pid], {
    handleSignals: false,
    onExit: (info) => seen.push(info.pid),
  });
  assert.deepEqual(all.map((info) => [info.pid, info.shellStatus]), [[b.pid, 143], [a.pid, 1]]);
  assert.deepEqual(seen, [b.pid, a.pid]);
  assert.equal(all[0].signal, "SIGTERM");
  await Promise.all([a.status, b.status]);

  const slow = new Deno.Command("sleep", { args: ["60"] }).spawn();
  const fast = new Deno.Command("sh", { args: ["-c", "sleep 0.1; exit 6"] }).spawn();
  const first = await waitForAny([slow.pid, fast.pid], { handleSignals: false });
  assert.equal(first.pid, fast.pid);
  assert.equal(first.exitCode, 6);
  slow.kill("SIGKILL");
  await Promise.all([slow.status, fast.status]);
});

kernelTest("waitForExit: timeout and abort release the listener", async () => {
  const pid = await startOrphan("exec sleep 60");
  try {
    const before = connectorSockets();
    const timedOut = await waitForExit(pid, { timeout: 200, handleSignals: false }).then(
      () => null,
      (error) => error,
    );
    assert.ok(timedOut instanceof WaitTimeoutError);
    assert.deepEqual(timedOut.pids, [pid]);
    assert.equal(timedOut.code, "TIMEOUT");
    // The socket is closed once the receiving thread's poll has returned.
    await until(() => connectorSockets() === before, "the socket to be closed after the timeout");

    const controller = new AbortController();
    let armed = false;
    const waiting = waitForExit(pid, {
      signal: controller.signal,
      handleSignals: false,
      onArmed: () => armed = true,
    });
    assert.ok(armed);
    assert.equal(connectorSockets(), before + 1);
    controller.abort(new Error("stop"));
    await assert.rejects(waiting, /stop/);
    await until(() => connectorSockets() === before, "the socket to be closed");
    assert.ok(alive(pid));

    const aborted = AbortSignal.abort(new Error("already"));
    await assert.rejects(waitForExit(pid, { signal: aborted }), /already/);
  } finally {
    killQuietly(pid);
  }
});

kernelTest("waitForExit: errors for a missing pid, itself, a bad pid", async () => {
  const child = new Deno.Command("true").spawn();
  await child.status;
  await assert.rejects(waitForExit(child.pid), NoSuchProcessError);
  await assert.rejects(waitForExit(Deno.pid), UsageError);
  await assert.rejects(waitForExit(0), UsageError);
  await assert.rejects(waitForAll([]), UsageError);
});

kernelTest(
  "waitForExit: events lost while waiting → the pid is re-checked, not waited for forever",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const gate = new Gate(dir, "go");
      // The target stays a zombie (its parent execs sleep and never reaps it) and
      // ends right after a burst of 300 exits that overflows a minimal socket buffer.
      const parent = new Deno.Command("sh", {
        args: [
          "-c",
          `(${gate.shell}; for i in $(seq 300); do /bin/true; done; exit 42) & echo $!; exec sleep 60`,
        ],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const pid = Number((await reader.read()).value?.trim());
      reader.releaseLock();
      let armed = false;
      const waiting = waitForExit(pid, {
        handleSignals: false,
        receiveBufferBytes: 1, // the kernel's minimum: a few datagrams
        onArmed: () => armed = true,
      });
      await until(() => armed, "armed");
      gate.open();
      // Keep the JS thread (and so the receiver) busy until the target is a zombie.
      const deadline = Date.now() + 10_000;
      while (readProcStat(pid)?.state !== "Z" && Date.now() < deadline) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
      const info = await waiting;
      assert.equal(info.pid, pid);
      assert.equal(info.source, "zombie", "learnt from /proc after the loss, not from an event");
      assert.equal(info.exitCode, 42);
      assert.equal(info.timestampNs, null);
      killQuietly(parent.pid);
      await parent.status;
      await parent.stdout.cancel().catch(() => {});
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kernelTest("waitForExit with method pidfd: ends at the exit, with the status as root", async () => {
  const pid = await startOrphan("sleep 0.2; exit 5");
  const info = await waitForExit(pid, { method: "pidfd" });
  assert.equal(info.pid, pid);
  assert.equal(info.method, "pidfd");
  assert.ok(!alive(pid) || readProcStat(pid)?.state === "Z");
  // Root reads a zombie's status at once; if init reaped it first, the pidfd tells it.
  assert.ok(info.source === "zombie" || info.source === "pidfd", info.source);
  assert.equal(info.statusKnown, true);
  assert.equal(info.exitCode, 5);
  assert.equal(typeof info.timestampNs, "bigint");
});
