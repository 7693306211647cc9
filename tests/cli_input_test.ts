/**
 * The CLI's input: bad input gets one `procwatch:` line and a
 * documented exit code, never a stack trace; repeated options accumulate or
 * are refused; pids are checked the same way everywhere; scripts check their
 * arguments at start and name themselves; `run` points at the user's line
 * and can type-check; README's wait snippet runs.
 */

import assert from "node:assert/strict";
import { ExitCode, WaitExitCode } from "../cli/exit_codes.ts";
import { HUMAN_HEADER } from "../lib/format/text.ts";
import { kernelTest } from "./support/kernel.ts";
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
  until,
} from "./support/processes.ts";

/** No line of a stack trace, no commander `error:` line. */
function assertNoTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at |^error: |Uncaught/m, stderr);
}

/** Exactly one line on stderr, with the procwatch: prefix; returns it. */
function oneLine(stderr: string): string {
  assertNoTrace(stderr);
  const lines = stderr.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0], /^procwatch: /);
  return lines[0];
}

/** pid_max of this system, read independently of procwatch. */
async function pidMax(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/sys/kernel/pid_max")).trim());
}

/** A pid that names no process, at most 4194304 (the kernel's limit). */
function freePid(from: number): number {
  for (let pid = from; pid <= 4194304; pid++) if (!alive(pid)) return pid;
  throw new Error("no free pid");
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-input-" });
  await Deno.chmod(dir, 0o755);
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The JSON events a running `watch --json` prints, until `enough(events)` or the deadline. */
async function collectJson(
  child: Deno.ChildProcess,
  enough: (events: Record<string, unknown>[]) => boolean,
  timeoutMs = 20_000,
): Promise<{ events: Record<string, unknown>[]; stderr: string }> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  const events: Record<string, unknown>[] = [];
  let pending = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (!enough(events)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`not enough events in time: ${JSON.stringify(events)}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no output from watch")), left);
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error(`watch ended: ${await stderr}`);
      pending += chunk.value;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") events.push(JSON.parse(line));
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reader.cancel().catch(() => {});
  }
  return { events, stderr: await stderr };
}

// The option parser's errors.

Deno.test("option parser errors: one procwatch: line naming the help, exit 2", async () => {
  const cases: [string[], string][] = [
    [["watch", "--bogus"], "procwatch: unknown option '--bogus'; see 'procwatch watch --help'"],
    [["wait"], "procwatch: missing required argument 'pid'; see 'procwatch wait --help'"],
    [
      ["watch", "--jsn"],
      "procwatch: unknown option '--jsn' (did you mean --json?); see 'procwatch watch --help'",
    ],
    [["bogus"], "procwatch: unknown command 'bogus'; see 'procwatch --help'"],
    [
      ["watch", "-p"],
      "procwatch: option '-p, --pid <pid>' argument missing; see 'procwatch watch --help'",
    ],
  ];
  for (const [args, line] of cases) {
    const result = await runDeno(CLI, args);
    assert.equal(result.code, ExitCode.USAGE, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(oneLine(result.stderr), line);
    assert.equal(result.stdout, "");
  }
});

// A pid above the kernel's limit, or above this system's pid_max.

kernelTest("a pid above the pid limit is said to be so (watch and wait alike)", async () => {
  for (const args of [["watch", "-p", "99999999"], ["wait", "99999999"]]) {
    const result = await runDeno(CLI, args);
    assert.equal(result.code, ExitCode.USAGE, result.stderr);
    assert.equal(
      oneLine(result.stderr),
      "procwatch: invalid pid '99999999': above the kernel's pid limit (4194304, PID_MAX_LIMIT)",
    );
  }
  const max = await pidMax();
  if (max < 4194304) {
    // Free, and at or above pid_max: no new process can get it, and the line says why.
    const pid = freePid(max);
    const watch = await runDeno(CLI, ["watch", "-p", String(pid)]);
    const note =
      `procwatch: no such process: ${pid} (pids here are below ${max}, /proc/sys/kernel/pid_max)`;
    assert.equal(watch.code, ExitCode.NO_SUCH_PROCESS);
    assert.equal(oneLine(watch.stderr), note);
    const wait = await runDeno(CLI, ["wait", String(pid)]);
    assert.equal(wait.code, WaitExitCode.NO_SUCH_PROCESS);
    assert.equal(oneLine(wait.stderr), note);
  }
});

// Thread ids and missing pids, for -p, --tree and --ppid as for wait.

kernelTest(
  "watch -p/--tree/--ppid refuse a thread id as wait does; a free --ppid exits 7",
  async () => {
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
            tid = [...Deno.readDirSync(`/proc/${pid}/task`)].map((entry) => Number(entry.name))
              .find((task) => task !== pid) ?? 0;
          } catch {
            tid = 0;
          }
          return tid > 0;
        }, "the python thread");
        // The kernel's own word: /proc/TID/status names the thread's process.
        const tgid = /^Tgid:\s*(\d+)$/m.exec(await Deno.readTextFile(`/proc/${tid}/status`))?.[1];
        assert.equal(Number(tgid), pid);

        const wait = await runDeno(CLI, ["wait", String(tid)]);
        assert.equal(wait.code, ExitCode.USAGE);
        const because = `procwatch: ${tid} is a thread of process ${pid}, not a process:`;
        assert.equal(oneLine(wait.stderr), `${because} wait for ${pid}`);
        for (const option of ["-p", "--tree", "--ppid"]) {
          const watch = await runDeno(CLI, ["watch", option, String(tid), "-D", "5"]);
          assert.equal(watch.code, ExitCode.USAGE, `${option}: ${watch.stderr}`);
          assert.equal(oneLine(watch.stderr), `${because} use ${option} ${pid}`);
          assert.equal(watch.stdout, "", "refused before listening");
        }
      } finally {
        killQuietly(pid);
      }
    });
    const free = freePid(Math.max(2, (await pidMax()) - 50));
    for (const option of ["-p", "--ppid", "--tree"]) {
      const result = await runDeno(CLI, ["watch", option, String(free), "-D", "5"]);
      assert.equal(result.code, ExitCode.NO_SUCH_PROCESS, `${option}: ${result.stderr}`);
      assert.match(oneLine(result.stderr), new RegExp(`^procwatch: no such process: ${free}\\b`));
    }
  },
);

// Repeats accumulate on the real kernel, or are refused in one line.

kernelTest("-e exec -e exit shows both event types (children of a shell loop)", async () => {
  const loop = await startOrphan("while :; do /bin/true; sleep 0.05; done");
  try {
    const child = await spawnDeno(CLI, [
      "watch",
      "--json",
      "-e",
      "exec",
      "-e",
      "exit",
      "--ppid",
      String(loop),
    ]);
    const seen = (events: Record<string, unknown>[], type: string) =>
      events.filter((event) => event.type === type).length;
    const { events, stderr } = await collectJson(
      child,
      (events) => seen(events, "exec") >= 3 && seen(events, "exit") >= 3,
    );
    assert.equal(stderr, "");
    // Only what was asked for: no fork events (those are the loop's, not its children's).
    assert.deepEqual(new Set(events.map((event) => event.type)), new Set(["exec", "exit"]));
  } finally {
    killQuietly(loop);
  }
});

kernelTest("--uid root --uid nobody shows processes of both users, no one else's", async () => {
  await withDir(async (dir) => {
    await Deno.chmod(dir, 0o777);
    // One shell loop per user, each started under its user, so every /bin/true is exec'd once,
    // by a process whose user never changes; daemon's loop counts its rounds in a file.
    const loop = (tag: string, after = "") =>
      `while :; do /bin/true ${tag}; ${after} sleep 0.05; done`;
    const as = (uid: number, script: string) =>
      `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups sh -c '${script}'`;
    const count = `${dir}/daemon-rounds`;
    const loops = [
      await startOrphan(as(1, loop("as-daemon", `echo x >> ${count};`))),
      await startOrphan(loop("as-root")),
      await startOrphan(as(65534, loop("as-nobody"))),
    ];
    try {
      const child = await spawnDeno(CLI, [
        "watch",
        "--json",
        "-x",
        "-e",
        "exec",
        "--uid",
        "root",
        "--uid",
        "nobody",
      ]);
      // The loops' /bin/true execs, by the tag each was given, with the uid procwatch gave.
      const trues = (events: Record<string, unknown>[]) =>
        events.flatMap((event) => {
          const info = event.process as { cmdline: string[] | null; uid: number | null };
          const cmdline = info?.cmdline;
          return cmdline?.[0] === "/bin/true" && cmdline[1]?.startsWith("as-")
            ? [{ tag: cmdline[1], uid: info.uid }]
            : [];
        });
      const rounds = () => (Deno.readTextFileSync(count).match(/x/g) ?? []).length;
      // Listening once an event came; then two more daemon rounds must end (its /bin/true was
      // exec'd while we listened), then root must exec twice more: the kernel queued those
      // later, so any daemon exec event would already have been read.
      let listening: number | undefined;
      let rootsAfter: number | undefined;
      const { events } = await collectJson(child, (events) => {
        const roots = trues(events).filter((entry) => entry.tag === "as-root").length;
        if (events.length === 0) return false;
        listening ??= rounds();
        if (rootsAfter === undefined && rounds() >= listening + 2) rootsAfter = roots;
        return rootsAfter !== undefined && roots >= rootsAfter + 2 &&
          trues(events).some((entry) => entry.tag === "as-nobody");
      });
      const found = trues(events);
      assert.ok(found.some((entry) => entry.tag === "as-nobody" && entry.uid === 65534));
      assert.ok(found.some((entry) => entry.tag === "as-root" && entry.uid === 0));
      assert.ok(!found.some((entry) => entry.tag === "as-daemon"), JSON.stringify(found));
      for (const event of events) {
        const uid = (event.process as { uid: number | null } | undefined)?.uid;
        assert.ok(uid === 0 || uid === 65534, `only root and nobody: ${JSON.stringify(event)}`);
      }
    } finally {
      loops.forEach(killQuietly);
    }
  });
});

kernelTest("-p A -p B,C follows every named process", async () => {
  const loops = await Promise.all(
    [0, 1, 2].map(() => startOrphan("while :; do /bin/true; sleep 0.05; done")),
  );
  try {
    const child = await spawnDeno(CLI, [
      "watch",
      "--json",
      "-e",
      "fork",
      "-p",
      String(loops[0]),
      "-p",
      `${loops[1]},${loops[2]}`,
    ]);
    const parents = (events: Record<string, unknown>[]) =>
      new Set(events.map((event) => event.parentPid));
    const { events } = await collectJson(child, (events) => parents(events).size >= 3);
    assert.deepEqual(parents(events), new Set(loops), "forks of the three loops, nothing else");
  } finally {
    loops.forEach(killQuietly);
  }
});

Deno.test("conflicting or repeated single-value options: one line, exit 2", async () => {
  const cases: [string[], string][] = [
    [
      ["watch", "--format", "tree", "--json"],
      "procwatch: --json conflicts with --format tree: --json means --format json; give one of them",
    ],
    [
      ["watch", "-x"],
      "procwatch: -x/--context adds the process context to JSON output: use it with --json (human output always shows the context)",
    ],
    [
      ["watch", "--tree", "1", "--tree", "2"],
      "procwatch: --tree given twice ('1', then '2'): it takes one value",
    ],
    [
      ["watch", "--format", "json", "--format", "tree"],
      "procwatch: --format given twice ('json', then 'tree'): it takes one value",
    ],
    [
      ["wait", "--timeout", "1", "--timeout", "2", "1"],
      "procwatch: --timeout given twice ('1', then '2'): it takes one value",
    ],
    [["watch", "--comm", "a,,b"], "procwatch: invalid --comm 'a,,b': empty name in the list"],
  ];
  for (const [args, line] of cases) {
    const result = await runDeno(CLI, args);
    assert.equal(result.code, ExitCode.USAGE, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(oneLine(result.stderr), line);
    assert.equal(result.stdout, "");
  }
});

// -r without the privilege.

kernelTest("-r as uid 65534: a warning, then it carries on and exits 0", async () => {
  const result = await runDeno(CLI, ["watch", "-r", "-D", "1"], { nobody: true });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    oneLine(result.stderr),
    "procwatch: warning: -r ignored: real-time priority needs root (CAP_SYS_NICE) or an RLIMIT_RTPRIO allowance (sched_setscheduler: EPERM); carrying on at normal priority",
  );
  assert.equal(result.stdout.split("\n")[0], HUMAN_HEADER, "it listened and printed its header");
});

// `wait --timeout 0`, and the code for a missing --allow-ffi.

kernelTest("wait --timeout 0 means no limit: it waits for the end and its status", async () => {
  await withDir(async (dir) => {
    const gate = new Gate(dir, "go");
    const pid = await startOrphan(`${gate.shell}; exit 42`);
    try {
      const started = Date.now();
      const wait = runDeno(CLI, ["wait", "--timeout", "0", String(pid)]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(alive(pid), "the process still runs");
      gate.open();
      const result = await wait;
      assert.equal(result.code, 42, result.stderr);
      assert.equal(result.stdout, `${pid} exited with code 42\n`);
      assert.ok(Date.now() - started >= 1500, "it waited");
    } finally {
      killQuietly(pid);
    }
  });
});

Deno.test("without --allow-ffi watch and wait exit 3 with the same line", async () => {
  const run = async (args: string[]) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "cli.ts", ...args],
      cwd: ROOT,
      stdin: "null",
    }).output();
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
  };
  for (const args of [["watch"], ["wait", "1"]]) {
    const result = await run(args);
    assert.equal(result.code, ExitCode.NO_FFI, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(
      oneLine(result.stderr),
      `procwatch: needs FFI access to talk to the kernel; run it as: deno run --allow-ffi cli.ts ${
        args.join(" ")
      }`,
    );
  }
});

// Scripts check their arguments at start, and name themselves.

kernelTest("new_processes.ts --signal BOGUS: refused at start, before listening", async () => {
  const result = await runDeno(`${ROOT}scripts/new_processes.ts`, ["^nc$", "--signal", "BOGUS"]);
  assert.equal(result.code, 2);
  assertNoTrace(result.stderr);
  assert.equal(
    result.stderr,
    "new_processes: unknown signal 'BOGUS' (usage: new_processes.ts REGEX [--signal SIG] [--count N])\n",
  );
  assert.equal(result.stdout, "");
  for (const args of [["^nc$", "--count", "0"], ["("], ["x", "--signal"], ["x", "--frob", "1"]]) {
    const bad = await runDeno(`${ROOT}scripts/new_processes.ts`, args);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.equal(bad.stderr.split("\n").filter((line) => line).length, 1, bad.stderr);
    assertNoTrace(bad.stderr);
  }
});

Deno.test("a script run without --allow-ffi names itself in the command to run, exit 3", async () => {
  for (
    const [script, args] of [
      ["new_processes", ["^nc$"]],
      ["failures", []],
      ["monitor_pid", ["1"]],
      ["ptrace_guard", ["--allow", "gdb"]],
    ] as const
  ) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `scripts/${script}.ts`, ...args],
      cwd: ROOT,
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, ExitCode.NO_FFI, `${script}: ${stderr}`);
    assertNoTrace(stderr);
    // The script's path as run (relative to the working directory), not cli.ts.
    const quoted = args.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg}'`);
    assert.equal(
      stderr,
      `${script}: needs FFI access to talk to the kernel; run it as: ${
        ["deno", "run", "--allow-ffi", `scripts/${script}.ts`, ...quoted].join(" ")
      }\n`,
    );
  }
});

// `run`: the user's line, directories, --check.

/** Runs `cli.ts run` with these Deno flags and `run` arguments. */
async function runScript(flags: string[], args: string[], wrapper: string[] = []) {
  const [command, ...prefix] = wrapper.length > 0 ? wrapper : [Deno.execPath()];
  const output = await new Deno.Command(command, {
    args: [
      ...prefix,
      ...(wrapper.length > 0 ? [Deno.execPath()] : []),
      "run",
      ...flags,
      CLI,
      "run",
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("run DIR: one line saying it is a directory, exit 8", async () => {
  await withDir(async (dir) => {
    const result = await runScript(["--allow-ffi", "--allow-read"], [dir]);
    assert.equal(result.code, ExitCode.SCRIPT);
    assert.equal(
      oneLine(result.stderr),
      `procwatch: cannot load script ${dir}: it is a directory, give the script file (.ts or .js) in it`,
    );
  });
});

kernelTest(
  "a script inside the checkout, in unshare -n: its own line, not procwatch's",
  async () => {
    // Scripts in procwatch's directory (like scripts/) are the user's too.
    const dir = await Deno.makeTempDir({ dir: ROOT, prefix: ".input-test-" });
    try {
      await Deno.writeTextFile(
        `${dir}/s.ts`,
        `import { watch } from "../mod.ts";\n\nconst watcher = watch({ events: ["exit"] });\nawait watcher.ready;\n`,
      );
      const result = await runScript(["--allow-ffi", "--allow-read"], [`${dir}/s.ts`], [
        "unshare",
        "-n",
      ]);
      assert.equal(result.code, ExitCode.NETWORK_NAMESPACE);
      const line = oneLine(result.stderr);
      assert.match(line, /network namespace/);
      // Line 3, column 17: the watch( call.
      assert.ok(line.endsWith(`(${dir}/s.ts:3:17)`), line);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("run --check: type errors by file:line:col, not run, exit 8; clean scripts run", async () => {
  await withDir(async (dir) => {
    const mod = new URL("../mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/bad.ts`,
      `import { EVENT_TYPES } from "${mod}";\nconst n: number = "text";\nconsole.log("ran", n, EVENT_TYPES.length);\n`,
    );
    await Deno.writeTextFile(
      `${dir}/good.ts`,
      `import { EVENT_TYPES } from "${mod}";\nconsole.log("ran", EVENT_TYPES.length, Deno.args.join(" "));\n`,
    );
    const bad = await runScript(["--allow-ffi", "--allow-read", "--allow-run"], [
      "--check",
      `${dir}/bad.ts`,
    ]);
    assert.equal(bad.code, ExitCode.SCRIPT, bad.stderr);
    assert.equal(bad.stdout, "", "not run");
    assertNoTrace(bad.stderr);
    assert.deepEqual(bad.stderr.split("\n").filter((line) => line), [
      `${dir}/bad.ts:2:7: TS2322 Type 'string' is not assignable to type 'number'.`,
      `procwatch: script ${dir}/bad.ts does not type-check (1 error); not run`,
    ]);

    // Without --check it is not type-checked, as with deno run.
    const unchecked = await runScript(["--allow-ffi", "--allow-read"], [`${dir}/bad.ts`]);
    assert.equal(unchecked.code, 0, unchecked.stderr);
    assert.equal(unchecked.stdout, "ran text 9\n");

    const good = await runScript(["--allow-ffi", "--allow-read", "--allow-run"], [
      "--check",
      `${dir}/good.ts`,
      "a",
      "--check",
    ]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stdout, "ran 9 a --check\n");

    const noRun = await runScript(["--no-prompt", "--allow-ffi", "--allow-read"], [
      "--check",
      `${dir}/good.ts`,
    ]);
    assert.equal(noRun.code, ExitCode.NO_FFI);
    assert.equal(
      oneLine(noRun.stderr),
      `procwatch: run --check starts \`deno check\`, which needs --allow-run; run it as: deno run --allow-ffi --allow-read --allow-run cli.ts run --check ${dir}/good.ts`,
    );
  });
});

// README's waitForExit / waitForAny snippet runs as printed.

kernelTest("README's wait API snippet runs: no second wait for an ended pid", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## wait"), readme.indexOf("## Scripting"));
  const snippet = /```ts ignore\n([\s\S]*?waitForAny[\s\S]*?)```/.exec(section)?.[1];
  assert.ok(snippet, "README has the snippet");
  // Processes that end after the script has started waiting, not its children; their
  // parent shells reap them at once, so a second wait finds no process.
  const parented = await Promise.all(
    ["sleep 4; exit 3", "sleep 4.5; exit 5", "sleep 5", "sleep 5.5; exit 7", "exec sleep 60"]
      .map((script) => startUnderParent(script, true)),
  );
  const pids = parented.map((process) => process.pid);
  const [a, b, c, d] = pids;
  try {
    await withDir(async (dir) => {
      // Outside the checkout the package's name does not resolve: import it by its path.
      let source = snippet.replace(
        '"@procwatch/procwatch/wait"',
        JSON.stringify(new URL("../lib/wait/mod.ts", import.meta.url).href),
      );
      ["1234", "5678", "9012", "3456", "7890"].forEach((placeholder, i) => {
        source = source.replaceAll(placeholder, String(pids[i]));
      });
      await Deno.writeTextFile(`${dir}/snippet.ts`, source);
      const result = await runDeno(`${dir}/snippet.ts`, []);
      assert.equal(result.code, 0, result.stderr);
      assertNoTrace(result.stderr);
      const lines = result.stdout.split("\n");
      // A's exit code as the kernel gave it, then B and C as they ended, D first of D and E;
      // and the second wait for A says it has ended instead of crashing.
      assert.match(lines[0], /^3 null false \d+(\.\d+)?$/);
      assert.deepEqual(lines.slice(1), [
        `${b} 5`,
        `${c} 0`,
        "0",
        `${d} ended first`,
        `${a} has already ended`,
        "",
      ]);
    });
  } finally {
    pids.forEach(killQuietly);
    await Promise.all(parented.map((process) => process.close()));
  }
});
