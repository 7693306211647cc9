/**
 * `cli.ts wait` against the real kernel: each process is not the waiter's
 * child, and is let go only once the waiter says it is armed.
 */

import assert from "node:assert/strict";
import { readFileText } from "../ffi/proc_fs.ts";
import { readProcStat } from "../lib/process/proc_stat.ts";
import { kernelTest, watchAll } from "./support/kernel.ts";
import {
  alive,
  CLI,
  Gate,
  killQuietly,
  ROOT,
  runDeno,
  spawnDeno,
  startOrphan,
  startUnderParent,
  startWait,
  startZombie,
  until,
  untilConnectorSocket,
} from "./support/processes.ts";

/** A pid that no process has: beyond pid_max, yet within what `wait` accepts. */
function unusedPid(): number {
  for (let pid = 4_000_000; pid < 4_100_000; pid++) if (!alive(pid)) return pid;
  throw new Error("no unused pid");
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-wait-" });
  await Deno.chmod(dir, 0o755);
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

kernelTest("wait: a process that is not our child exits with 42", async () => {
  await withDir(async (dir) => {
    const gate = new Gate(dir, "go");
    const pid = await startOrphan(`${gate.shell}; exit 42`);
    const wait = await startWait([String(pid)]);
    const armed = await wait.armed;
    assert.match(armed, new RegExp(`armed: waiting for ${pid} with the proc connector`));
    gate.open();
    const result = await wait.done;
    assert.equal(result.code, 42);
    assert.equal(result.stdout, `${pid} exited with code 42\n`);
    assert.match(
      result.stderr,
      new RegExp(`${pid} ended after running \\d+\\.\\d\\d s \\(learnt from: event\\)`),
    );
  });
});

kernelTest("wait: killed by SIGTERM → 143, SIGKILL → 137", async () => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGKILL", 137]] as const) {
    const pid = await startOrphan("exec sleep 60");
    const wait = await startWait([String(pid)]);
    await wait.armed;
    Deno.kill(pid, signal);
    const result = await wait.done;
    assert.equal(result.code, code, signal);
    assert.equal(result.stdout, `${pid} killed by ${signal}\n`);
  }
});

kernelTest("wait: a core dump is reported as such", async () => {
  await withDir(async (dir) => {
    const pid = await startOrphan("ulimit -c unlimited; exec sleep 60", dir);
    try {
      const wait = await startWait([String(pid)]);
      await wait.armed;
      Deno.kill(pid, "SIGSEGV");
      const result = await wait.done;
      assert.equal(result.code, 139);
      assert.equal(result.stdout, `${pid} killed by SIGSEGV (core dumped)\n`);
      // With a plain core_pattern ("core" here) the dump lands in the target's cwd,
      // removed with it; a "|helper" pattern hands it to a program instead.
      if (!(readFileText("/proc/sys/kernel/core_pattern") ?? "").startsWith("|")) {
        await until(
          () => [...Deno.readDirSync(dir)].some((entry) => entry.name.startsWith("core")),
          "the core file",
        );
      }
    } finally {
      killQuietly(pid);
    }
  });
});

kernelTest("wait: an already-zombie pid is reported at once with its status", async () => {
  const zombie = await startZombie(7);
  try {
    const wait = await startWait([String(zombie.pid), "--json"]);
    const result = await wait.done;
    assert.equal(result.code, 7);
    const line = JSON.parse(result.stdout);
    assert.equal(line.pid, zombie.pid);
    assert.equal(line.statusKnown, true);
    assert.equal(line.status, 7 << 8);
    assert.equal(line.exitCode, 7);
    assert.equal(line.signal, null);
    assert.equal(line.coreDumped, false);
    assert.equal(line.shellStatus, 7);
    assert.equal(line.source, "zombie");
    assert.equal(line.method, "connector");
    assert.equal(line.timestampNs, null);
    assert.equal(readProcStat(zombie.pid)?.state, "Z", "wait must not reap it");
  } finally {
    await zombie.close();
  }
});

kernelTest("wait: a pid with no process → one line on stderr, exit 127", async () => {
  const pid = unusedPid();
  const result = await runDeno(CLI, ["wait", String(pid)]);
  assert.equal(result.code, 127);
  assert.equal(result.stdout, "");
  // The pid is at or above this system's pid_max when that is below 4000000: said so.
  assert.match(
    result.stderr,
    new RegExp(`^procwatch: no such process: ${pid}( \\(.*pid_max\\))?\n$`),
  );

  // A process that has just ended and been reaped is gone too.
  const child = new Deno.Command("true").spawn();
  await child.status;
  const reaped = await runDeno(CLI, ["wait", String(child.pid), "--any"]);
  assert.equal(reaped.code, 127);
});

kernelTest(
  "wait: two pids — all by default (status of the last), --any returns at the first",
  async () => {
    await withDir(async (dir) => {
      const gates = [new Gate(dir, "a"), new Gate(dir, "b")];
      const a = await startOrphan(`${gates[0].shell}; exit 3`);
      const b = await startOrphan(`${gates[1].shell}; exit 5`);
      const wait = await startWait([String(a), String(b)]);
      await wait.armed;
      gates[1].open();
      await until(() => !alive(b), `${b} to end`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(wait.finished(), false, "one of two ended: still waiting");
      gates[0].open();
      const result = await wait.done;
      assert.equal(result.stdout, `${b} exited with code 5\n${a} exited with code 3\n`);
      assert.equal(result.code, 3, "the status of the last to end");
    });
    await withDir(async (dir) => {
      const gate = new Gate(dir, "b");
      const a = await startOrphan("exec sleep 60");
      const b = await startOrphan(`${gate.shell}; exit 5`);
      try {
        const wait = await startWait(["--any", String(a), String(b)]);
        await wait.armed;
        gate.open();
        const result = await wait.done;
        assert.equal(result.code, 5);
        assert.equal(result.stdout, `${b} exited with code 5\n`);
        assert.ok(alive(a));
      } finally {
        killQuietly(a);
      }
    });
  },
);

kernelTest("wait: --timeout → 124; -q prints nothing on stdout", async () => {
  const pid = await startOrphan("exec sleep 60");
  try {
    const started = Date.now();
    const result = await runDeno(CLI, ["wait", "--timeout", "0.5", String(pid)]);
    assert.equal(result.code, 124);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, `procwatch: timed out after 0.5 s waiting for ${pid}\n`);
    assert.ok(Date.now() - started >= 500);
    assert.ok(alive(pid));

    const wait = await startWait(["-q", String(pid)]);
    await wait.armed;
    Deno.kill(pid, "SIGKILL");
    const quiet = await wait.done;
    assert.equal(quiet.code, 137);
    assert.equal(quiet.stdout, "");
  } finally {
    killQuietly(pid);
  }
});

kernelTest("wait: threads that end before the leader do not end the wait", async () => {
  await withDir(async (dir) => {
    const threadsGate = new Gate(dir, "threads");
    const exitGate = new Gate(dir, "exit");
    const python = `
import os, sys, threading, time
def until(path):
    while not os.path.exists(path): time.sleep(0.01)
def worker(): until(${JSON.stringify(threadsGate.path)})
threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
until(${JSON.stringify(exitGate.path)})
sys.exit(9)
`;
    await Deno.writeTextFile(`${dir}/threads.py`, python);
    using watcher = watchAll({ events: ["exit"] });
    const pid = await startOrphan(`exec /usr/bin/python3 ${dir}/threads.py`);
    await until(() => (readProcStat(pid)?.comm ?? "").startsWith("python"), "python");
    const wait = await startWait([String(pid), "--json"]);
    await wait.armed;
    threadsGate.open();
    // Prove the three threads really ended while the waiter was armed.
    const threadExits: bigint[] = [];
    for await (const event of watcher) {
      if (event.type === "exit" && event.pid === pid && event.tid !== pid) {
        threadExits.push(event.timestampNs);
        if (threadExits.length === 3) break;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(wait.finished(), false, "thread exits must not end the wait");
    exitGate.open();
    const result = await wait.done;
    assert.equal(result.code, 9);
    const line = JSON.parse(result.stdout);
    assert.equal(line.pid, pid);
    assert.equal(line.exitCode, 9);
    assert.equal(line.source, "event");
    assert.ok(BigInt(line.timestampNs) > threadExits[2]);
  });
});

kernelTest("wait: SIGINT / SIGTERM while waiting → 130 / 143, clean", async () => {
  const pid = await startOrphan("exec sleep 60");
  try {
    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      const wait = await startWait([String(pid)]);
      await wait.armed;
      wait.child.kill(signal);
      const result = await wait.done;
      assert.equal(result.code, code, signal);
      assert.equal(result.stdout, "");
      assert.doesNotMatch(result.stderr, /error|at /i);
      assert.ok(alive(pid), "the target is untouched");
    }
  } finally {
    killQuietly(pid);
  }
});

kernelTest("wait: bad usage → exit 2 with one line", async () => {
  const bad = await runDeno(CLI, ["wait", "12x"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.match(bad.stderr, /invalid pid '12x'/);

  const help = await runDeno(CLI, ["wait", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: procwatch wait \[options\] <pid\.\.\.>/);
  assert.match(help.stdout, /^ {2}124 +--timeout expired first$/m);
  assert.match(help.stdout, /^ {2}125 +status unknown/m);

  const timeout = await runDeno(CLI, ["wait", "--timeout", "-1", "1"]);
  assert.equal(timeout.code, 2);
  assert.equal(timeout.stderr, "procwatch: invalid duration '-1': expected seconds, e.g. 1.5\n");

  // Without --allow-ffi: 3 and one line, as for every subcommand.
  const noFfi = await new Deno.Command(Deno.execPath(), {
    args: ["run", CLI, "wait", "1"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(noFfi.code, 3);
  assert.match(
    new TextDecoder().decode(noFfi.stderr),
    /^procwatch: needs FFI access.*\n$/,
  );

  const method = await runDeno(CLI, ["wait", "--method", "magic", "1"]);
  assert.equal(method.code, 2);
  assert.match(method.stderr, /invalid --method 'magic'/);

  // A thread id is not a process.
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/t.py`,
      "import threading, time\nthreading.Thread(target=lambda: time.sleep(60), daemon=True).start()\ntime.sleep(60)\n",
    );
    const pid = await startOrphan(`exec /usr/bin/python3 ${dir}/t.py`);
    try {
      let tid = 0;
      await until(() => {
        try {
          tid = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) =>
            Number(e.name)
          ).find((t) => t !== pid) ?? 0;
        } catch {
          tid = 0;
        }
        return tid > 0;
      }, "the python thread");
      const thread = await runDeno(CLI, ["wait", String(tid)]);
      assert.equal(thread.code, 2);
      assert.equal(
        thread.stderr,
        `procwatch: ${tid} is a thread of process ${pid}, not a process: wait for ${pid}\n`,
      );
    } finally {
      killQuietly(pid);
    }
  });
});

kernelTest("wait as nobody: the proc connector where the kernel allows it", async () => {
  await withDir(async (dir) => {
    const gate = new Gate(dir, "go");
    const pid = await startOrphan(`${gate.shell}; exit 42`);
    const wait = await startWait([String(pid)], { nobody: true });
    const armed = await wait.armed.catch((error) => {
      killQuietly(pid);
      throw error;
    });
    gate.open();
    const result = await wait.done;
    if (/with the proc connector/.test(armed)) {
      // Linux ≥ 6.6 lets unprivileged processes listen.
      assert.equal(result.code, 42);
      assert.equal(result.stdout, `${pid} exited with code 42\n`);
    } else {
      assert.match(armed, /with pidfd/);
      assert.equal(result.code, 125);
    }
  });
});

kernelTest(
  "wait as nobody on root's zombie: no event will come, status unreadable → 125",
  async () => {
    const zombie = await startZombie(7);
    try {
      const wait = await startWait(["--method", "connector", String(zombie.pid)], { nobody: true });
      const started = Date.now();
      const result = await wait.done;
      assert.equal(result.code, 125);
      assert.equal(result.stdout, `${zombie.pid} ended (exit status unknown)\n`);
      assert.match(result.stderr, /its exit event did not reach procwatch/);
      assert.ok(Date.now() - started < 5000, "reported after the re-check grace, not a hang");
    } finally {
      await zombie.close();
    }
  },
);

kernelTest(
  "wait as nobody, pidfd forced by $PROCWATCH_WAIT_METHOD: status once reaped",
  async () => {
    await withDir(async (dir) => {
      const gate = new Gate(dir, "go");
      // Its parent reaps it at once: the kernel then keeps its status for pidfd holders (≥ 6.15).
      const target = await startUnderParent(`${gate.shell}; exit 42`, true);
      try {
        const wait = await startWait([String(target.pid)], {
          nobody: true,
          env: { PROCWATCH_WAIT_METHOD: "pidfd" },
          denoFlags: ["--allow-env=PROCWATCH_WAIT_METHOD"],
        });
        const armed = await wait.armed;
        assert.match(armed, new RegExp(`armed: waiting for ${target.pid} with pidfd`));
        gate.open();
        const result = await wait.done;
        assert.equal(result.code, 42);
        assert.equal(result.stdout, `${target.pid} exited with code 42\n`);
        assert.match(result.stderr, /\(learnt from: pidfd\)/);
      } finally {
        await target.close();
      }
    });
  },
);

kernelTest("wait as nobody with pidfd, never reaped: status unknown → 125 and a note", async () => {
  await withDir(async (dir) => {
    const gate = new Gate(dir, "go");
    // Root's process, never reaped: nobody may not read its zombie status, the kernel keeps none.
    const target = await startUnderParent(`${gate.shell}; exit 42`, false);
    try {
      const wait = await startWait(["--method", "pidfd", String(target.pid)], { nobody: true });
      await wait.armed;
      gate.open();
      const result = await wait.done;
      assert.equal(result.code, 125);
      assert.equal(result.stdout, `${target.pid} ended (exit status unknown)\n`);
      assert.match(
        result.stderr,
        new RegExp(
          `procwatch: note: exit status of ${target.pid} unknown: waited with pidfd .*exit code 125\n`,
        ),
      );
      assert.equal(readProcStat(target.pid)?.state, "Z");
    } finally {
      await target.close();
    }
  });
});

kernelTest("wait in a network namespace as nobody: falls back to pidfd by itself", async () => {
  const target = await startUnderParent("exec sleep 60", true);
  try {
    const wait = await startWait(["--json", String(target.pid)], {
      nobody: true,
      newNetNamespace: true,
    });
    const armed = await wait.armed;
    assert.match(armed, /with pidfd .*ECONNREFUSED/);
    Deno.kill(target.pid, "SIGTERM");
    const result = await wait.done;
    assert.equal(result.code, 143);
    const line = JSON.parse(result.stdout);
    assert.equal(line.pid, target.pid);
    assert.equal(line.statusKnown, true);
    assert.equal(line.signal, "SIGTERM");
    assert.equal(line.method, "pidfd");
    assert.equal(line.source, "pidfd");
    assert.equal(typeof line.timestampNs, "string");
  } finally {
    await target.close();
  }
});

kernelTest("wait --method pidfd: a zombie's status is still read from /proc as root", async () => {
  const zombie = await startZombie(4);
  try {
    const result = await runDeno(CLI, ["wait", "--method", "pidfd", String(zombie.pid)]);
    assert.equal(result.code, 4);
    assert.equal(result.stdout, `${zombie.pid} exited with code 4\n`);
  } finally {
    await zombie.close();
  }
});

kernelTest("scripts/wait_on_pid.ts: waits, says how it ended, exits the same way", async () => {
  await withDir(async (dir) => {
    const gate = new Gate(dir, "go");
    const pid = await startOrphan(`${gate.shell}; kill -USR1 $$`);
    const child = await spawnDeno(
      `${ROOT}scripts/wait_on_pid.ts`,
      [String(pid)],
    );
    await untilConnectorSocket(child.pid);
    await new Promise((resolve) => setTimeout(resolve, 200));
    gate.open();
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 138);
    assert.match(
      stdout,
      // The run time needs the exit event's timestamp; a status found by a
      // re-check (events lost on a loaded machine) has none.
      new RegExp(`^process ${pid} was killed by SIGUSR1( after \\d+\\.\\d\\d s)?\\n$`),
    );
  });
  const missing = await runDeno(`${ROOT}scripts/wait_on_pid.ts`, [String(unusedPid())]);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /^wait_on_pid: no such process: \d+( \(.*pid_max\))?\n$/);
  const usage = await runDeno(`${ROOT}scripts/wait_on_pid.ts`, []);
  assert.equal(usage.code, 2);
});

Deno.test("wait: every argument list run without commander is one commander parses alike", async () => {
  const { Command } = await import("@commander-js/extra-typings");
  const { quickWaitArguments, waitCommand } = await import("../cli/wait.ts");
  const accepted = [
    ["1234"],
    ["1", "2", "3"],
    ["-a", "1", "2"],
    ["--any", "1", "-q", "--json", "-v"],
    ["-t", "5", "1234"],
    ["1234", "--timeout", "0.5"],
    ["--method", "pidfd", "1234"],
    ["--method", "bogus", "1234"], // refused later by runWait, with commander's parse
    ["-v", "--quiet", "4194304"],
  ];
  const refused = [
    [],
    ["--help"],
    ["-qv", "1"],
    ["--timeout=5", "1"],
    ["-t5", "1"],
    ["--", "1"],
    ["1", "-t", "-1"],
    ["-t", "1", "-t", "2", "1"],
    ["-q", "-q", "1"],
    ["12x"],
    ["0"],
    ["01"],
    ["4194305"],
    ["1", "--bogus"],
    ["1", "-t"],
    ["--method", "-v", "1"],
  ];
  for (const args of refused) assert.equal(quickWaitArguments(args), undefined, args.join(" "));
  // The wait commander would run: its parse, caught by a replaced action.
  const commanderParse = async (args: string[]) => {
    const seen: { pids: number[]; options: Record<string, unknown> }[] = [];
    const command = waitCommand(Command).exitOverride().configureOutput({
      writeOut: () => {},
      writeErr: () => {},
    });
    // waitCommand() hands commander's Command back without its argument types.
    type Action = (pids: number[], options: Record<string, unknown>) => void;
    (command as unknown as { action(fn: Action): unknown }).action((pids, options) => {
      seen.push({ pids: [...pids], options: { ...options } });
    });
    await command.parseAsync(args, { from: "user" });
    Deno.exitCode = 0;
    return seen[0];
  };
  for (const args of accepted) {
    const quick = quickWaitArguments(args);
    assert.ok(quick !== undefined, args.join(" "));
    assert.deepEqual(await commanderParse(args), quick, args.join(" "));
  }
  // Generated lists (a fixed seed): whatever the quick parser accepts —
  // `wait` then runs without commander — commander parses the same way.
  const words = [
    "1",
    "77",
    "1234",
    "4194304",
    "4194305",
    "0",
    "01",
    "-5",
    "1e2",
    "abc",
    "",
    "-a",
    "--any",
    "-q",
    "--quiet",
    "--json",
    "-v",
    "--verbose",
    "-t",
    "--timeout",
    "5",
    "0.5",
    "-1",
    "--method",
    "pidfd",
    "auto",
    "bogus",
    "-x",
    "--",
    "-qv",
    "--timeout=5",
    "--help",
    "-h",
  ];
  let seed = 2026;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  let agreed = 0;
  for (let i = 0; i < 12_000; i++) {
    const args = Array.from({ length: 1 + random(6) }, () => words[random(words.length)]);
    const quick = quickWaitArguments(args);
    if (quick === undefined) continue;
    assert.deepEqual(await commanderParse(args), quick, JSON.stringify(args));
    agreed++;
  }
  assert.ok(agreed > 600, `only ${agreed} generated lists were plain`);
});

kernelTest(
  "wait: a plain spelling (run without commander) prints and exits as commander's spelling does",
  async () => {
    // [arguments after `wait -v` with pids as P1, P2 — quick spelling, commander-only spelling, what ends]
    const cases: [string[], string[], "term" | "kill1term2" | "term2" | "none"][] = [
      [["P1"], ["--", "P1"], "term"],
      [["--json", "-t", "5", "P1", "P2"], ["--json", "--timeout=5", "P1", "P2"], "kill1term2"],
      [["-a", "-q", "P1", "P2"], ["-aq", "P1", "P2"], "term2"],
      [["-t", "0.3", "P1"], ["--timeout=0.3", "P1"], "none"],
      [["--method", "bogus", "P1"], ["--method=bogus", "P1"], "none"],
    ];
    const run = async (spelling: string[], ending: string) => {
      const pids = [await startOrphan("exec sleep 60"), await startOrphan("exec sleep 60")];
      try {
        const args = spelling.map((arg) =>
          arg === "P1" ? String(pids[0]) : arg === "P2" ? String(pids[1]) : arg
        );
        const wait = await startWait(args);
        await Promise.race([wait.armed.catch(() => {}), wait.done]); // a usage error never arms
        if (ending === "term") Deno.kill(pids[0], "SIGTERM");
        if (ending === "kill1term2") {
          Deno.kill(pids[0], "SIGKILL");
          await until(() => !alive(pids[0]), "P1 to end");
          Deno.kill(pids[1], "SIGTERM");
        }
        if (ending === "term2") Deno.kill(pids[1], "SIGTERM");
        const { code, stdout, stderr } = await wait.done;
        const same = (text: string) =>
          text.replaceAll(String(pids[0]), "P1").replaceAll(String(pids[1]), "P2")
            .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z?/g, "TIME").replace(/"timestampNs":"\d+"/g, "NS")
            .replace(/\d+\.\d+/g, "N");
        return { code, stdout: same(stdout), stderr: same(stderr) };
      } finally {
        for (const pid of pids) killQuietly(pid);
      }
    };
    for (const [quick, commander, ending] of cases) {
      const a = await run(quick, ending);
      const b = await run(commander, ending);
      assert.deepEqual(a, b, `${quick.join(" ")} vs ${commander.join(" ")}`);
      assert.notEqual(a.code, 0, "each case ends with a telling status");
    }
  },
);
