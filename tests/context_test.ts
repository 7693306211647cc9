/**
 * Real-kernel tests of the process table, context enrichment and process
 * filters of watch().
 */

import assert from "node:assert/strict";
import type { ExecEvent, ExitEvent, ProcEvent } from "../lib/events/events.ts";
import { collectUntil, watchAll } from "./support/kernel.ts";
import { serialKernelTest, spawnShell } from "./support/subprocess.ts";

const isExit = (pid: number) => (event: ProcEvent) =>
  event.type === "exit" && event.pid === pid && event.tid === pid;

/** Events of the current attempt whose argv was honestly unknown (see {@linkcode untilNamed}). */
let unnamed = 0;

/** collectUntil, counting the events whose process's argv is honestly unknown. */
async function collect(
  ...args: Parameters<typeof collectUntil>
): Promise<ProcEvent[]> {
  const seen = await collectUntil(...args);
  unnamed += seen.filter((event) =>
    event.type !== "lost" && event.process?.cmdline === null &&
    event.process.cmdlineUnknown != null
  ).length;
  return seen;
}

/**
 * Runs `body` (a test that tells its short-lived processes apart by their
 * argv) up to three times, again only when an attempt failed while some
 * event's argv was honestly unknown: a /bin/true can end before even the
 * capture thread reads it (README, "Context"), and the 200-process test
 * above bounds how often. Any other failure fails at once.
 */
async function untilNamed(body: () => Promise<void>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    unnamed = 0;
    try {
      await body();
      return;
    } catch (error) {
      if (unnamed === 0 || attempt === 3) throw error;
      console.log(`attempt ${attempt}: ${unnamed} event(s) with an honestly unknown argv; again`);
    }
  }
}

/**
 * Reading argv races the process's exit: /bin/true lives ~2 ms, and on a
 * loaded VM even the real-time capture thread can wake late. The property
 * (all 200 named in one run) must hold in one of three runs; every miss is
 * printed so a trend is visible.
 */
serialKernelTest(
  "200 processes that exit at once are all named in their exec and exit",
  async () => {
    let lastError: unknown;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await allTwoHundredNamed();
        return;
      } catch (error) {
        lastError = error;
        console.warn(`attempt ${attempt} missed: ${String(error).split("\n")[0]}`);
      }
    }
    throw lastError;
  },
);

/**
 * Of 200 `/bin/true` in a tight loop, how many must carry their argv. Measured
 * on an idle 2-core VM with every context read on: 196–200 (the exec-capture
 * worker also reads the cgroup and namespaces).
 */
const MIN_NAMED = 190;

async function allTwoHundredNamed(): Promise<void> {
  await using watcher = watchAll({ events: ["exec", "exit"], context: true, threads: false });
  await watcher.ready;
  const { child } = spawnShell("for i in $(seq 200); do /bin/true arg$i; done");
  const seen = await collectUntil(watcher, isExit(child.pid), 60_000);
  await child.status;
  const ofChildren = (type: "exec" | "exit") =>
    seen.filter((event): event is ExecEvent | ExitEvent =>
      event.type === type && event.process?.ppid === child.pid
    );
  for (const type of ["exec", "exit"] as const) {
    const events = ofChildren(type);
    // 200 × /bin/true, and the `$(seq 200)` subshell that became seq.
    assert.equal(events.length, 201, `${type} events of the loop's children`);
    const trues = events.filter((event) => event.process?.cmdline?.[0] !== "seq");
    // A /bin/true lives about a millisecond: the capture worker reads nearly
    // every one, and one it missed must say so (argv unknown, gone) — never
    // carry another process's argv.
    const named = trues.filter((event) => event.process?.cmdline !== null);
    for (const event of trues) {
      if (event.process?.cmdline !== null) continue;
      assert.equal(event.process?.cmdlineUnknown, "gone", `${type} ${event.pid}: reason`);
      assert.equal(event.process?.procGone, true, `${type} ${event.pid}: procGone`);
    }
    const args = named.map((event) => JSON.stringify(event.process?.cmdline));
    const expected = Array.from(
      { length: 200 },
      (_, i) => JSON.stringify(["/bin/true", `arg${i + 1}`]),
    );
    assert.equal(new Set(args).size, args.length, `${type}: an argv given twice`);
    for (const arg of args) assert.ok(expected.includes(arg), `${type}: unexpected argv ${arg}`);
    assert.ok(
      named.length >= MIN_NAMED,
      `only ${named.length} of 200 ${type} events carry their argv (at least ${MIN_NAMED})`,
    );
    if (named.length < 200) {
      console.warn(`${type}: ${200 - named.length} of 200 honestly unknown (exited before read)`);
    }
    for (const event of named) {
      assert.equal(event.process?.comm, "true");
      // exe may be unknown (the link dies with the process) but never the parent's.
      assert.ok(
        [null, "/usr/bin/true"].includes(event.process?.exe ?? null),
        `exe ${event.process?.exe}`,
      );
      assert.equal(event.process?.parentComm, "sh");
      assert.equal(event.process?.user, "root");
    }
  }
  for (const exit of ofChildren("exit")) {
    const duration = exit.process?.durationNs;
    assert.ok(typeof duration === "bigint" && duration > 0n && duration < 5_000_000_000n);
  }
}

serialKernelTest(
  "a process reaped before the watcher looks: procGone, and the capture's argv",
  async () => {
    for (const execCapture of [true, false]) {
      await using watcher = watchAll({ events: ["exec", "exit"], context: true, execCapture });
      await watcher.ready;
      // outputSync blocks this thread until sh is reaped: the watcher reads /proc too late.
      const output = new Deno.Command("sh", { args: ["-c", "exit 77", "gone-test"] }).outputSync();
      assert.equal(output.code, 77);
      const seen = await collectUntil(
        watcher,
        (event) =>
          event.type === "exit" && event.exitCode === 77 && event.process?.ppid === Deno.pid,
      );
      const exit = seen.at(-1) as ExitEvent;
      const exec = seen.find((event) => event.type === "exec" && event.pid === exit.pid);
      assert.ok(exec?.process, "exec event with process info");
      assert.equal(exec.process.procGone, true, "says /proc was gone");
      assert.equal(exec.process.ppid, Deno.pid);
      if (execCapture) {
        // The capture worker read it at the exec, on its own thread.
        // (Deno runs sh by its resolved path: argv[0] is /usr/bin/sh.)
        assert.deepEqual(exec.process.cmdline?.slice(1), ["-c", "exit 77", "gone-test"]);
        assert.match(exec.process.cmdline?.[0] ?? "", /(^|\/)sh$/);
        assert.equal(exec.process.comm, "sh");
        assert.deepEqual(exit.process?.cmdline, exec.process.cmdline);
      } else {
        // Nothing is invented: before-exec name and arguments are not this program's.
        assert.equal(exec.process.cmdline, null);
        assert.equal(exec.process.comm, null);
      }
    }
  },
);

serialKernelTest(
  "tree filter: a three-level tree started before the watch, then growing",
  () =>
    untilNamed(async () => {
      // root sh → child sh (prints its pid and the sleep's) → sleep; after the sleep is killed the
      // child starts a new grandchild, and the root a new child.
      const tree = spawnShell(
        `sh -c 'echo $$; sleep 30 & echo $!; wait; /bin/true grandchild-after'; /bin/true child-after`,
      );
      const [childPid, sleepPid] = [
        Number(await tree.stdout.waitFor(() => tree.stdout.lines.length >= 1)),
        Number(
          await tree.stdout.waitFor(() => tree.stdout.lines.length >= 2).then(() =>
            tree.stdout.lines[1]
          ),
        ),
      ];
      const root = tree.child.pid;
      await using watcher = watchAll({ tree: root, context: true, threads: false });
      await watcher.ready;
      // Noise outside the tree, running the same program.
      const outsider = spawnShell("/bin/true child-after");
      await outsider.child.status;
      Deno.kill(sleepPid, "SIGTERM");
      const seen = await collect(watcher, isExit(root), 20_000);
      await tree.child.status;

      const pids = new Set([root, childPid, sleepPid]);
      for (const event of seen) {
        if (event.type === "fork") {
          assert.ok(
            pids.has(event.parentPid),
            `fork from inside the tree: ${event.parentPid} → ${event.childPid}`,
          );
          pids.add(event.childPid);
        } else if (event.type !== "lost") {
          assert.ok(pids.has(event.pid), `event inside the tree: ${event.type} ${event.pid}`);
        }
      }
      const exits = seen.filter((event): event is ExitEvent => event.type === "exit");
      const exitOf = (pid: number) => exits.find((event) => event.pid === pid);
      assert.equal(exitOf(sleepPid)?.signal, "SIGTERM");
      assert.deepEqual(
        exitOf(sleepPid)?.process?.cmdline,
        ["sleep", "30"],
        "pre-existing, from /proc",
      );
      assert.equal(exitOf(childPid)?.process?.ppid, root);
      const execs = seen.filter((event): event is ExecEvent => event.type === "exec");
      const argv = execs.map((event) => event.process?.cmdline?.join(" "));
      assert.ok(argv.includes("/bin/true grandchild-after"), `new grandchild: ${argv}`);
      assert.ok(argv.includes("/bin/true child-after"), `new child: ${argv}`);
      const grandchild = execs.find((event) => event.process?.cmdline?.[1] === "grandchild-after");
      assert.equal(grandchild?.process?.ppid, childPid);
      assert.equal(grandchild?.process?.parentComm, "sh");
      // The outsider ran the same command line but is not in the tree.
      assert.equal(argv.filter((text) => text === "/bin/true child-after").length, 1);
    }),
);

serialKernelTest(
  "tree filter: a three-level tree created after the watch started",
  () =>
    untilNamed(async () => {
      const root = spawnShell(
        `read go; sh -c 'sh -c "/bin/true level3"; /bin/true level2b'; /bin/true level1b`,
        "piped",
      );
      await using watcher = watchAll({ tree: root.child.pid, context: true, threads: false });
      await watcher.ready;
      const writer = root.child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      // The same tree's shape, outside the watched tree.
      const outsider = spawnShell(`sh -c 'sh -c "/bin/true level3"'`);
      const seen = await collect(watcher, isExit(root.child.pid), 20_000);
      await Promise.all([root.child.status, outsider.child.status]);

      const parentOf = new Map<number, number>();
      for (const event of seen) {
        if (event.type === "fork") parentOf.set(event.childPid, event.parentPid);
      }
      const depth = (pid: number): number => {
        let level = 0;
        for (let at = pid; at !== root.child.pid; level++) {
          const parent = parentOf.get(at);
          assert.ok(parent !== undefined, `pid ${pid} is not a descendant of the root`);
          at = parent;
        }
        return level;
      };
      const execs = seen.filter((event): event is ExecEvent => event.type === "exec");
      const byArgs = (arg: string) =>
        execs.filter((event) => event.process?.cmdline?.includes(arg));
      assert.equal(byArgs("level3").length, 1, "only the tree's own level3, not the outsider's");
      assert.equal(depth(byArgs("level3")[0].pid), 3);
      assert.equal(depth(byArgs("level2b")[0].pid), 2);
      assert.equal(depth(byArgs("level1b")[0].pid), 1);
      for (const event of seen) {
        if (event.type === "lost") continue;
        const pid = event.type === "fork" ? event.childPid : event.pid;
        assert.ok(pid === root.child.pid || parentOf.has(pid), `${event.type} ${pid} in the tree`);
      }
      const exits = seen.filter((event) => event.type === "exit");
      assert.equal(exits.length, 6, "root, two shells and three /bin/true exit");
    }),
);

serialKernelTest("comm, match, uid and ppid filters; failedOnly through the kernel", async (t) => {
  const until = (match: (event: ProcEvent) => boolean) => (event: ProcEvent) => match(event);

  await t.step("comm: only processes with that name", () =>
    untilNamed(async () => {
      await using watcher = watchAll({ comm: "true", context: true, threads: false });
      await watcher.ready;
      const { child } = spawnShell("/bin/echo x >/dev/null; /bin/true comm-test");
      const seen = await collect(
        watcher,
        until((event) => event.type === "exit" && event.process?.cmdline?.[1] === "comm-test"),
      );
      await child.status;
      const mine = seen.filter((event) => event.process?.ppid === child.pid);
      assert.deepEqual(mine.map((event) => event.type), ["exec", "exit"]);
      for (const event of seen) assert.equal(event.process?.comm, "true");
    }));

  await t.step("match: only command lines matching the regex", async () => {
    await using watcher = watchAll({ match: /procwatch-match-\d+$/, context: true });
    await watcher.ready;
    const { child } = spawnShell("/bin/true other-1; /bin/true procwatch-match-42");
    const seen = await collectUntil(
      watcher,
      until((event) => event.type === "exit" && event.process?.ppid === child.pid),
    );
    await child.status;
    for (const event of seen) {
      assert.match(event.process?.cmdline?.join(" ") ?? "", /procwatch-match-\d+$/);
    }
    assert.deepEqual(seen.at(-1)?.process?.cmdline, ["/bin/true", "procwatch-match-42"]);
    assert.ok(seen.some((event) => event.type === "exec" && event.process?.ppid === child.pid));
  });

  await t.step("uid: only processes of that user (name resolved)", () =>
    untilNamed(async () => {
      await using watcher = watchAll({ uid: "nobody", context: true, events: ["exec", "exit"] });
      await watcher.ready;
      const { child } = spawnShell(
        "/bin/true uid-root; setpriv --reuid=65534 --regid=65534 --clear-groups /bin/true uid-nobody",
      );
      const seen = await collect(
        watcher,
        until((event) => event.type === "exit" && event.process?.cmdline?.[1] === "uid-nobody"),
      );
      await child.status;
      for (const event of seen) {
        assert.equal(event.process?.uid, 65534);
        assert.equal(event.process?.user, "nobody");
      }
      assert.ok(
        seen.some((event) => event.type === "exec" && event.process?.cmdline?.[1] === "uid-nobody"),
      );
    }));

  await t.step("ppid: only children, not grandchildren", () =>
    untilNamed(async () => {
      const parent = spawnShell(
        `read go; /bin/true p1; sh -c "/bin/true grandkid"; exit 0`,
        "piped",
      );
      await using watcher = watchAll({ ppid: parent.child.pid, context: true, threads: false });
      await watcher.ready;
      const writer = parent.child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("go\n"));
      await writer.close();
      const seen = await collect(
        watcher,
        until((event) => event.type === "exit" && event.process?.cmdline?.[0] === "sh"),
      );
      await parent.child.status;
      for (const event of seen) assert.equal(event.process?.ppid, parent.child.pid);
      const argv = seen.map((event) => event.process?.cmdline?.join(" "));
      assert.ok(argv.includes("/bin/true p1"));
      assert.ok(!argv.includes("/bin/true grandkid"));
    }));

  await t.step("failedOnly: the kernel drops successful exits", () =>
    untilNamed(async () => {
      await using watcher = watchAll({ failedOnly: true, events: ["exit"], context: true });
      await watcher.ready;
      assert.equal(watcher.filterMode, "kernel");
      const { child } = spawnShell("/bin/true; (exit 3); /bin/false; kill -TERM $$");
      const seen = await collect(watcher, isExit(child.pid));
      await child.status;
      const mine = seen.filter((event): event is ExitEvent =>
        event.type === "exit" && (event.pid === child.pid || event.process?.ppid === child.pid)
      );
      assert.deepEqual(
        mine.map((event) => [event.exitCode, event.signal]),
        [[3, null], [1, null], [null, "SIGTERM"]],
      );
      assert.deepEqual(mine[1].process?.cmdline, ["/bin/false"]);
    }));
});
