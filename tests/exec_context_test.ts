/**
 * Real-kernel tests: an event's context is the program image current at that
 * event — through exec chains, credential changes before an exec, and from
 * the very first events after a watcher starts.
 */

import assert from "node:assert/strict";
import type { ProcessInfo, ProcEvent } from "../lib/events/events.ts";
import { collectUntil, watchAll } from "./support/kernel.ts";
import { serialKernelTest, spawnShell } from "./support/subprocess.ts";

const isExitOf = (pid: number) => (event: ProcEvent) =>
  event.type === "exit" && event.pid === pid && event.tid === pid;

/** `cmdline` is the expected argv, or honestly unknown — never another image's. */
function assertImage(info: ProcessInfo | undefined, argv: string[], what: string): boolean {
  assert.ok(info, `${what}: has context`);
  if (info.cmdline === null) {
    assert.ok(
      info.cmdlineUnknown === "replaced" || info.cmdlineUnknown === "gone",
      `${what}: null argv with a reason, got ${info.cmdlineUnknown}`,
    );
    assert.ok(info.comm === null || info.comm === argv[0].split("/").at(-1), `${what}: comm`);
    return false;
  }
  assert.deepEqual(info.cmdline, argv, what);
  assert.equal(info.cmdlineUnknown, null, `${what}: no reason when known`);
  assert.equal(info.comm, argv[0].split("/").at(-1), `${what}: comm`);
  return true;
}

serialKernelTest("an exec chain: each exec carries its own argv, never a later one", async () => {
  let namedIntermediates = 0;
  for (
    const chain of [
      ["env", "env", "env", "sleep", "0.3"],
      ["env", "env", "env", "env", "env", "env", "true", "chain-end"],
      ["env", "env", "env", "sleep", "0.1"],
    ]
  ) {
    await using watcher = watchAll({ events: ["exec", "exit"], context: true });
    await watcher.ready;
    // The shell execs the chain itself: every program of it runs as this one pid.
    const { child } = spawnShell(`exec ${chain.join(" ")}`);
    const seen = await collectUntil(watcher, isExitOf(child.pid), 20_000);
    await child.status;
    const execs = seen.filter((event) => event.type === "exec" && event.pid === child.pid);
    // The shell's own exec first, then one per program: exec i runs argv chain[i..].
    const programs = chain.findIndex((word) => word !== "env") + 1;
    assert.equal(execs.length, 1 + programs, "execs of the chain's pid");
    for (let i = 0; i < programs; i++) {
      const named = assertImage(execs[i + 1].process, chain.slice(i), `exec ${i + 1} of ${chain}`);
      if (named && i < programs - 1) namedIntermediates++;
    }
    // A sleeping last program is there to be read: it must be named, and so its exit.
    const last = chain.slice(programs - 1);
    if (last[0] === "sleep") {
      assert.deepEqual(execs.at(-1)?.process?.cmdline, last, "the last program");
      assert.deepEqual(seen.at(-1)?.process?.cmdline, last, "exit: the last program");
    }
  }
  // The capture worker reads each exec within microseconds: most intermediates are named.
  assert.ok(namedIntermediates > 0, "no intermediate program of any chain was named");
});

serialKernelTest(
  "setpriv: the uid and gid events before its exec carry setpriv's context, not the next program's",
  async () => {
    for (let round = 0; round < 3; round++) {
      await using watcher = watchAll({ events: ["exec", "uid", "gid", "exit"], context: true });
      await watcher.ready;
      const argv = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/true",
        `setpriv-test-${round}`,
      ];
      const { child } = spawnShell(`exec ${argv.join(" ")}`);
      const seen = await collectUntil(watcher, isExitOf(child.pid), 20_000);
      await child.status;
      const mine = seen.filter((event) =>
        event.type !== "lost" && event.type !== "fork" && event.pid === child.pid
      );
      const types = mine.map((event) => event.type);
      assert.deepEqual(
        [...types.slice(0, 2), ...types.slice(2, 4).sort(), ...types.slice(4)],
        ["exec", "exec", "gid", "uid", "exec", "exit"],
        "sh, setpriv, its gid and uid changes (either order), /bin/true, exit",
      );
      assertImage(mine[1].process, argv, "setpriv's exec");
      for (const change of [mine[2], mine[3]]) {
        assertImage(change.process, argv, `${change.type} event`);
        assert.notEqual(change.process?.comm, "true", `${change.type}: never the next program`);
      }
      const uid = mine.find((event) => event.type === "uid");
      assert.equal(uid?.process?.uid, 65534, "the uid event shows the new uid");
      assertImage(mine[4].process, argv.slice(4), "/bin/true's exec");
    }
  },
);

serialKernelTest(
  "the first events after a watcher starts are named (beside a /bin/true loop)",
  async () => {
    // The loop prints each child's pid: which program a pid ran is the loop's word, not ours.
    const loop = spawnShell(
      "while :; do /bin/true first-events & echo $!; wait; sleep 0.02 & echo $!; wait; done",
    );
    // Looked up in the loop's lines as they were when the round's events were
    // collected: a pid the loop prints again later (reused) is another child.
    const argvOf = (pid: number, lines: string[]) =>
      lines.lastIndexOf(String(pid)) % 2 === 0 ? ["/bin/true", "first-events"] : ["sleep", "0.02"];
    // Pids recycle fast on a busy machine (pid_max 32768): a loop child is a process whose
    // exit names the loop as its parent (the kernel's word), and its exec the one before.
    const isLoopExit = (event: ProcEvent) =>
      event.type === "exit" && event.parentPid === loop.child.pid;
    try {
      await loop.stdout.waitFor(() => loop.stdout.lines.length >= 4);
      for (let round = 0; round < 4; round++) {
        await using watcher = watchAll({ events: ["exec", "exit"], context: true, threads: false });
        // No `await watcher.ready`: what watch() returns must already name the first events.
        const seen = await collectUntil(
          watcher,
          (_, events) => events.filter(isLoopExit).length >= 6,
          20_000,
        );
        const first = seen.filter((event, i) => {
          if (isLoopExit(event)) return true;
          if (event.type !== "exec") return false;
          const exit = seen.slice(i + 1).find((later) =>
            later.type !== "lost" && later.type !== "fork" && later.pid === event.pid
          );
          return exit !== undefined && isLoopExit(exit);
        });
        assert.ok(first.some((event) => event.type === "exec"), "execs seen");
        // The loop prints a child's pid after forking it: the last one may not be read yet.
        const printed = () =>
          first.every((event) => "pid" in event && loop.stdout.lines.includes(String(event.pid)));
        for (let wait = 0; !printed() && wait < 200; wait++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const lines = [...loop.stdout.lines];
        const unknown = new Set<number>();
        for (const event of first) {
          if (event.type !== "exec" && event.type !== "exit") continue;
          const expected = argvOf(event.pid, lines);
          if (event.process?.cmdline === null && expected[0] === "/bin/true") {
            // A /bin/true lives about a millisecond: the capture worker misses
            // one now and then, as in steady state (context_test: 196–200 of
            // 200). Such a miss says so; an early event left unnamed because the
            // capture was not armed yet (the old failure: every one) does not pass.
            assert.equal(event.process.cmdlineUnknown, "gone", `${event.pid}: reason`);
            unknown.add(event.pid);
            continue;
          }
          assert.deepEqual(
            event.process?.cmdline,
            expected,
            `round ${round}: ${event.type} ${event.pid} named; first events: ${
              first.map((e) => `${e.type} ${JSON.stringify(e.process?.cmdline)}`).join(", ")
            }`,
          );
        }
        assert.ok(unknown.size <= 1, `round ${round}: ${unknown.size} /bin/true unnamed`);
      }
    } finally {
      loop.child.kill("SIGKILL");
      await loop.child.status;
    }
  },
);
