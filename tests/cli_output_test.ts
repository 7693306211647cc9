/**
 * The CLI's output, run as users run it: escaped command
 * lines, `-v` in sentences, `watch -p`/`--tree` ending when their processes
 * are gone, `--ppid --format tree` depths, and signals acted on while the
 * reader of stdout (or stderr) has stopped reading.
 */

import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";
import { CLI, until, untilConnectorSocket } from "./support/processes.ts";
import {
  type BorrowedListener,
  borrowListeners,
  release,
  stillReceives,
} from "./support/registration.ts";
import { type DenoChild, LineReader, serialKernelTest, spawnDeno } from "./support/subprocess.ts";

const STORM = new URL("./support/clone_storm.ts", import.meta.url).pathname;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The exit status of `child`, or `null` if it is still running after `ms`. */
async function statusWithin(
  child: Deno.ChildProcess,
  ms: number,
): Promise<Deno.CommandStatus | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    return await Promise.race([child.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `pid` has ended: no /proc entry, or a zombie (its new parent may reap it late). */
function ended(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
  } catch {
    return true;
  }
}

function stopQuietly(cli: DenoChild): Promise<number> {
  return cli.stop("SIGKILL").catch(() => -1);
}

async function listening(cli: DenoChild): Promise<void> {
  await cli.stderr.waitFor((line) => line.includes("listening"));
}

// --- 16: one line per event ---

kernelTest(
  "watch: a command line with a newline and an escape sequence stays on one line",
  async () => {
    const token = `pwtok${Date.now()}`;
    const argv0 = `${token}\nsecond line\x1b[31m`;
    const cli = spawnDeno("cli.ts", ["watch", "-v", "-e", "exec,exit", "--match", token]);
    try {
      await listening(cli);
      // bash's exec -a sets argv[0]: the process's own /proc/PID/cmdline is the reference.
      const target = new Deno.Command("bash", {
        // bash stays bash for a while first, so that its own exec is read as bash.
        args: ["-c", 'sleep 0.3; exec -a "$NAME" sleep 0.3'],
        env: { NAME: argv0 },
      }).spawn();
      await delay(450);
      const cmdline = Deno.readTextFileSync(`/proc/${target.pid}/cmdline`).split("\0").slice(0, -1);
      assert.deepEqual(cmdline, [argv0, "0.3"]);
      await target.status;
      await cli.stdout.waitFor((line) => / exit +\d+ /.test(line) && line.includes(token));
    } finally {
      assert.equal(await cli.stop("SIGINT"), 130);
    }
    const lines = cli.stdout.lines.filter((line) => line.includes(token));
    assert.equal(lines.filter((line) => / exec +\d+ /.test(line)).length, 1, lines.join("\n"));
    assert.equal(lines.filter((line) => / exit +\d+ /.test(line)).length, 1, lines.join("\n"));
    for (const line of lines) {
      assert.ok(line.endsWith(` $'${token}\\nsecond line\\x1b[31m' 0.3`), line);
    }
    assert.ok(!cli.stdout.lines.some((line) => line.startsWith("second line")), "no broken line");
    assert.ok(!cli.stdout.lines.some((line) => line.includes("\x1b")), "no raw escape");
  },
);

// --- 17: -v in sentences ---

/** The receive buffer `ss` reports for the netlink socket with this port (an independent reading). */
async function ssReceiveBuffer(port: number): Promise<number | null> {
  const output = await new Deno.Command("ss", { args: ["-f", "netlink", "-m"], stderr: "null" })
    .output();
  // ss prints the 32-bit port id as a signed number: an autobound port the
  // kernel chose at random (the pid was taken) is negative there.
  const shown = String(port | 0);
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    if (!new RegExp(`connector:(\\S*/)?${shown}\\s`).test(line)) continue;
    const rb = /\brb(\d+)/.exec(line);
    if (rb) return Number(rb[1]);
  }
  return null;
}

kernelTest(
  "watch -v: listening and counters as sentences, the doubled buffer explained",
  async () => {
    const cli = spawnDeno("cli.ts", ["watch", "-v", "-e", "exec,exit", "--buffer", "1M"]);
    let rb: number | null = null;
    try {
      await cli.stderr.waitFor((line) => line.includes("receive buffer"));
      const port = Number(/netlink port (\d+)/.exec(cli.stderr.lines.join("\n"))?.[1]);
      rb = await ssReceiveBuffer(port);
      await new Deno.Command("true").output();
      await cli.stdout.waitFor((line) => / exit /.test(line));
    } finally {
      assert.equal(await cli.stop("SIGINT"), 130);
    }
    const stderr = cli.stderr.lines.filter((line) => line !== "");
    assert.ok(
      stderr.every((line) => line.startsWith("procwatch: ") && !line.includes("{")),
      stderr.join("\n"),
    );
    assert.ok(
      stderr.includes(
        "procwatch: event types filtered in the kernel: exec, exit; it also sends fork, comm, uid for procwatch's process table (not shown)",
      ),
      stderr.join("\n"),
    );
    // The kernel stores twice what was asked for (SO_RCVBUF); `ss` reads the socket's own size.
    assert.equal(rb, 2 << 20, "ss sees a 2 MiB receive buffer");
    assert.ok(
      stderr.includes(
        "procwatch: receive buffer: 2 MiB (the kernel doubles the 1 MiB asked for, half of it for its bookkeeping)",
      ),
      stderr.join("\n"),
    );
    assert.ok(
      stderr.some((line) =>
        /^procwatch: received \d+ messages? from the kernel; passed on \d+ events?; filtered out \d+ events? in procwatch$/
          .test(line)
      ),
      stderr.join("\n"),
    );
    assert.ok(
      stderr.some((line) =>
        line === "procwatch: nothing lost" || line.startsWith("procwatch: lost: ")
      ),
    );
  },
);

kernelTest("watch -v: all event types need no kernel filter; one event is '1 event'", async () => {
  const target = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const cli = spawnDeno("cli.ts", ["watch", "-v", "-p", String(target.pid)]);
  try {
    await listening(cli);
    target.kill("SIGTERM");
    await target.status;
    const status = await statusWithin(cli.child, 5000);
    assert.equal(status?.code, 0, "ends with its only process");
    await Promise.all([cli.stdout.done, cli.stderr.done]);
  } finally {
    await stopQuietly(cli);
  }
  const events = cli.stdout.lines.filter((line) => line.includes(` ${target.pid} `));
  assert.equal(events.length, 1, cli.stdout.lines.join("\n"));
  assert.match(events[0], / exit +\d+ .*exit SIGTERM /);
  const stderr = cli.stderr.lines.join("\n");
  assert.ok(stderr.includes("procwatch: all event types (no kernel filter needed)"), stderr);
  assert.match(stderr, /; passed on 1 event;/);
});

kernelTest("watch -v --json: what -v says, as JSON objects on stderr", async () => {
  const cli = spawnDeno("cli.ts", ["watch", "-v", "--json", "-e", "exit", "-D", "1"]);
  const status = await statusWithin(cli.child, 10_000);
  await Promise.all([cli.stdout.done, cli.stderr.done]);
  assert.equal(status?.code, 0);
  const objects = cli.stderr.lines.filter((line) => line !== "").map((line) => JSON.parse(line));
  assert.equal(objects[0].type, "listening");
  assert.deepEqual(objects[0].events, ["exit"]);
  assert.equal(objects[0].receiveBufferBytes, 2 * objects[0].requestedReceiveBufferBytes);
  const counters = objects.find((object) => object.type === "counters");
  assert.equal(typeof counters.received, "number");
  assert.equal(counters.lostInOutput, 0);
});

// --- 18: ending when the watched processes are gone ---

kernelTest("watch -p A -p B ends (exit 0) once both are gone, not before", async () => {
  const a = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const b = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const cli = spawnDeno("cli.ts", ["watch", "-v", "-p", String(a.pid), "-p", String(b.pid)]);
  try {
    await listening(cli);
    a.kill("SIGTERM");
    await a.status;
    assert.equal(await statusWithin(cli.child, 1000), null, "B still runs: keep watching");
    b.kill("SIGKILL");
    await b.status;
    const status = await statusWithin(cli.child, 3000);
    assert.equal(status?.code, 0, "ended after the last one");
    await cli.stdout.done;
  } finally {
    await stopQuietly(cli);
  }
  const out = cli.stdout.lines.join("\n");
  assert.match(out, new RegExp(` exit +${a.pid} .*exit SIGTERM `));
  assert.match(out, new RegExp(` exit +${b.pid} .*exit SIGKILL `));
});

kernelTest("watch --tree R ends once R and every descendant are gone", async () => {
  // R waits for "go", starts a child that outlives it, and exits.
  const root = new Deno.Command("sh", {
    args: ["-c", "read go; sleep 1.5 & echo $!; exit 0"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const childPid = new LineReader(root.stdout);
  const cli = spawnDeno("cli.ts", ["watch", "-v", "-e", "fork,exit", "--tree", String(root.pid)]);
  try {
    await listening(cli);
    const writer = root.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    await root.status;
    const child = Number(await childPid.waitFor((line) => /^\d+$/.test(line)));
    assert.equal(await statusWithin(cli.child, 700), null, "the child still runs: keep watching");
    assert.ok(Deno.readTextFileSync(`/proc/${child}/cmdline`).startsWith("sleep"), "child alive");
    const status = await statusWithin(cli.child, 4000);
    assert.equal(status?.code, 0, "ended after the last descendant");
    assert.ok(ended(child), "the child has ended by then");
    await cli.stdout.done;
    const out = cli.stdout.lines.join("\n");
    assert.match(out, new RegExp(` exit +${root.pid} `));
    assert.match(out, new RegExp(` exit +${child} `));
  } finally {
    await stopQuietly(cli);
  }
});

kernelTest("watch -p A --keep-going keeps watching after A is gone", async () => {
  const a = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const cli = spawnDeno("cli.ts", ["watch", "-v", "--keep-going", "-p", String(a.pid)]);
  try {
    await listening(cli);
    a.kill("SIGTERM");
    await a.status;
    await cli.stdout.waitFor((line) => line.includes(` ${a.pid} `));
    assert.equal(await statusWithin(cli.child, 1500), null, "still running");
  } finally {
    assert.equal(await cli.stop("SIGINT"), 130);
  }
});

// --- 19: --ppid tree depths ---

kernelTest("watch --ppid X --format tree: X's children at one depth, old or new", async () => {
  // X has a child before the watch starts (C1), and two more after "go".
  const parent = new Deno.Command("sh", {
    args: ["-c", "sleep 1 & echo $!; read go; sleep 0.2 & sleep 0.3 & wait"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const parentOut = new LineReader(parent.stdout);
  const c1 = Number(await parentOut.waitFor((line) => /^\d+$/.test(line)));
  const cli = spawnDeno("cli.ts", [
    "watch",
    "-v",
    "--ppid",
    String(parent.pid),
    "--format",
    "tree",
  ]);
  try {
    await listening(cli);
    await cli.stdout.waitFor((line) => line.trimStart().startsWith(`${c1}-`));
    const writer = parent.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    await parent.status;
    await delay(300);
  } finally {
    assert.equal(await cli.stop("SIGINT"), 130);
  }
  const children = cli.stdout.lines.filter((line) => /^ *\d+[-+ ]/.test(line));
  const pids = new Set(children.map((line) => Number(/^ *(\d+)/.exec(line)![1])));
  assert.ok(pids.has(c1), cli.stdout.lines.join("\n"));
  assert.ok(pids.size >= 3, `C1 and two new children: ${cli.stdout.lines.join("\n")}`);
  const indents = new Set(children.map((line) => /^ */.exec(line)![0].length));
  assert.deepEqual([...indents], [2], `one depth below X:\n${cli.stdout.lines.join("\n")}`);
});

// --- 20: signals while the reader stalls ---

/**
 * Starts `cli.ts ARGS` behind a pipe already full: bash first writes 64 KiB
 * (a pipe's default capacity, 16 pages) to `fd` nobody reads, then execs.
 */
function behindFullPipe(
  args: string[],
  fd: 1 | 2,
): { child: Deno.ChildProcess; stderr: LineReader | null } {
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `head -c 65536 /dev/zero >&${fd}; exec "$DENO" run --allow-ffi "$CLI" "$@"`,
      "bash",
      ...args,
    ],
    env: { DENO: Deno.execPath(), CLI, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, stderr: fd === 1 ? new LineReader(child.stderr) : null };
}

async function sigtermWhileStalled(
  child: Deno.ChildProcess,
): Promise<{ code: number; ms: number }> {
  const started = performance.now();
  child.kill("SIGTERM");
  const status = await statusWithin(child, 1000);
  const ms = performance.now() - started;
  if (status === null) {
    child.kill("SIGKILL");
    await child.status;
    return { code: -1, ms };
  }
  return { code: status.code, ms };
}

kernelTest(
  "watch: SIGTERM while stdout is a full pipe → exit 143 within 1 s, unregistered",
  async () => {
    const { child, stderr } = behindFullPipe(["watch", "-v"], 1);
    let listeners: BorrowedListener[] = [];
    try {
      await stderr!.waitFor((line) => line.includes("listening"));
      await untilConnectorSocket(child.pid);
      listeners = borrowListeners(child.pid);
      // Events to print while nobody reads: the header alone no longer fits.
      for (let i = 0; i < 20; i++) await new Deno.Command("true").output();
      await delay(200);
      const { code, ms } = await sigtermWhileStalled(child);
      assert.equal(code, 143, `exit ${code} after ${ms.toFixed(0)} ms: signal not acted on`);
      await stderr!.done;
      const text = stderr!.lines.join("\n");
      // It did stall: what could not be written is counted, not silently lost.
      assert.match(
        text,
        /procwatch: warning: \d+ lines? of output not written: stdout was not being read/,
      );
      assert.match(
        text,
        /procwatch: lost: \d+ lines? of output dropped \(stdout was not being read\)/,
      );
      for (const listener of listeners) {
        assert.equal(await stillReceives(listener), false, "the kernel still sends to its socket");
      }
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await child.stdout.cancel();
      for (const listener of listeners) await release(listener);
    }
  },
);

kernelTest(
  "wait -v: SIGTERM while stderr is a full pipe → exit 143 within 1 s, unregistered",
  async () => {
    const target = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const { child } = behindFullPipe(["wait", "-v", String(target.pid)], 2);
    let listeners: BorrowedListener[] = [];
    try {
      await untilConnectorSocket(child.pid);
      listeners = borrowListeners(child.pid);
      await delay(300); // armed: its "-v" line now waits for room in the full pipe
      const { code, ms } = await sigtermWhileStalled(child);
      assert.equal(code, 143, `exit ${code} after ${ms.toFixed(0)} ms: signal not acted on`);
      for (const listener of listeners) {
        assert.equal(await stillReceives(listener), false, "the kernel still sends to its socket");
      }
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
      target.kill("SIGKILL");
      await target.status;
      for (const listener of listeners) await release(listener);
    }
  },
);

serialKernelTest(
  "watch --json -S: lines a stalled reader had no room for come back as one lost event (reason output)",
  async () => {
    const { child, stderr } = behindFullPipe(["watch", "--json", "-S", "-v", "-e", "fork,exit"], 1);
    let stdout: LineReader | undefined;
    try {
      await stderr!.waitFor((line) => line.includes("listening"));
      // 20,000 processes: 40,000 JSON lines, about 8 MB, while nobody reads stdout.
      const storm = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", STORM, "20000", "0"],
        stdout: "piped",
      }).output();
      assert.equal(storm.code, 0);
      await stderr!.waitFor((line) => line.includes("stdout is not being read"));
      // The reader comes back; one more process gives the line that brings the record.
      stdout = new LineReader(child.stdout);
      await until(() => stdout!.lines.length > 1000, "output after the stall");
      const marker = new Deno.Command("true").spawn();
      await marker.status;
      await stdout.waitFor((line) => line.includes(`"pid":${marker.pid},`), 30_000);
      child.kill("SIGINT");
      assert.equal((await child.status).code, 130);
      await Promise.all([stdout.done, stderr!.done]);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      if (stdout === undefined) await child.stdout.cancel();
    }
    // The first 64 KiB are the zeros that filled the pipe.
    const lines = stdout.lines.map((line) => line.replace(/^\0+/, "")).filter((line) => line);
    const records = lines.map((line) => JSON.parse(line));
    const outputLosses = records.filter((record) =>
      record.type === "lost" && record.reason === "output"
    );
    assert.ok(outputLosses.length >= 1, "a lost record with reason output");
    const lostInOutput = outputLosses.reduce((sum, record) => sum + record.count, 0);
    // The same count on stderr and in the -S summary: never silent.
    const warned = stderr!.lines
      .map((line) => /warning: (\d+) events? lost \(stdout was not being read/.exec(line))
      .filter((match) => match !== null)
      .reduce((sum, match) => sum + Number(match![1]), 0);
    assert.equal(warned, lostInOutput);
    const summary = records.at(-1);
    assert.equal(summary.type, "summary");
    assert.equal(summary.lostBy.output, lostInOutput);
    // Every event counted by -S was either written or counted as lost in output.
    const eventLines = records.filter((record) => record.type === "fork" || record.type === "exit");
    assert.equal(eventLines.length + lostInOutput, summary.totals.total);
    const counters = stderr!.lines.filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line)).find((object) => object.type === "counters");
    assert.equal(counters.lostInOutput, lostInOutput, "-v --json counts it too");
  },
);
