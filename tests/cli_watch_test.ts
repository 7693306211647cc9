/**
 * `cli.ts watch` as a user runs it: a subprocess with only --allow-ffi.
 */
import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";
import { runCli, startCli } from "./support/cli.ts";

const ISO_NS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

async function readUntil(
  cli: ReturnType<typeof startCli>,
  done: (line: string) => boolean,
): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const line = await cli.nextLine();
    if (line === null) throw new Error(`stdout ended; got ${lines.join("\n")}`);
    lines.push(line);
    if (done(line)) return lines;
  }
}

kernelTest("watch --json prints each event of a workload as one JSON line", async () => {
  const cli = startCli(["watch", "--json", "-e", "fork,exec,exit", "--verbose"]);
  try {
    await cli.waitForStderr("listening");
    const workload = new Deno.Command("/bin/sh", { args: ["-c", "exit 3"] }).spawn();
    const pid = workload.pid;
    await workload.status;
    const lines = await readUntil(cli, (line) => {
      const event = JSON.parse(line);
      return event.type === "exit" && event.pid === pid;
    });
    const events = lines.map((line) => JSON.parse(line)).filter((event) =>
      event.pid === pid || event.childPid === pid
    );
    assert.deepEqual(events.map((event) => event.type), ["fork", "exec", "exit"]);
    const [fork, exec, exit] = events;
    assert.equal(fork.parentPid, Deno.pid);
    assert.equal(fork.childTid, pid);
    assert.equal(fork.thread, false);
    assert.deepEqual(Object.keys(exec).sort(), [
      "cpu",
      "pid",
      "tid",
      "time",
      "timestampNs",
      "type",
    ]);
    for (const event of events) {
      assert.match(event.time, ISO_NS);
      assert.match(event.timestampNs, /^\d+$/);
      assert.equal(typeof event.cpu, "number");
    }
    assert.ok(BigInt(fork.timestampNs) < BigInt(exit.timestampNs));
    assert.deepEqual(
      {
        exitCode: exit.exitCode,
        signal: exit.signal,
        coreDumped: exit.coreDumped,
        status: exit.status,
        exitSignal: exit.exitSignal,
        parentPid: exit.parentPid,
        tid: exit.tid,
      },
      {
        exitCode: 3,
        signal: null,
        coreDumped: false,
        status: 768,
        exitSignal: 17,
        parentPid: Deno.pid,
        tid: pid,
      },
    );
  } finally {
    cli.process.kill("SIGINT");
  }
  const status = await cli.process.status;
  assert.equal(status.code, 130, "SIGINT ends watch with 128 + 2");
  assert.ok(!cli.stderr().includes("error"), cli.stderr());
});

kernelTest("watch --json -n 3 prints three valid JSON events and exits 0", async () => {
  const cli = startCli(["watch", "--json", "-n", "3", "--verbose"]);
  await cli.waitForStderr("listening");
  const load = new Deno.Command("/bin/sh", { args: ["-c", "/bin/true; /bin/true"] }).output();
  const lines: string[] = [];
  for (let line = await cli.nextLine(); line !== null; line = await cli.nextLine()) {
    lines.push(line);
  }
  await load;
  assert.equal(lines.length, 3);
  for (const line of lines) {
    const event = JSON.parse(line);
    assert.ok(
      ["fork", "exec", "exit", "comm", "uid", "gid", "sid", "ptrace", "coredump"].includes(
        event.type,
      ),
    );
    assert.match(event.time, ISO_NS);
  }
  assert.equal((await cli.process.status).code, 0);
});

kernelTest("human output: one line per event with decoded exit status and name", async () => {
  const cli = startCli(["watch", "-e", "exec,exit", "--verbose"]);
  try {
    await cli.waitForStderr("listening");
    const workload = new Deno.Command("/bin/sh", { args: ["-c", "sleep 0.2; exit 7"] }).spawn();
    await workload.status;
    const lines = await readUntil(
      cli,
      (line) => line.includes(` ${workload.pid} `) && line.includes(" exit 7 "),
    );
    const line = lines[lines.length - 1];
    // forkstat's columns: time, event, pid, user, tty, info (decoded status), duration, command.
    assert.match(
      line,
      new RegExp(
        `^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} exit +${workload.pid} root +exit 7 +\\d+\\.\\d{3}s +(?:\\S+ +)?/bin/sh -c 'sleep 0\\.2; exit 7'$`,
      ),
    );
  } finally {
    cli.process.kill("SIGTERM");
  }
  assert.equal((await cli.process.status).code, 143);
});

kernelTest("watch -D stops after the duration; -p follows one process", async () => {
  // The process ends only when told to, once the watcher listens: no race with Deno's start-up.
  const sleeper = new Deno.Command("/bin/sh", {
    args: ["-c", "read go; exit 0"],
    stdin: "piped",
  }).spawn();
  const started = Date.now();
  const cli = startCli([
    "watch",
    "--json",
    "--keep-going",
    "-v",
    "-p",
    String(sleeper.pid),
    "-D",
    "1",
  ]);
  await cli.waitForStderr("listening");
  const writer = sleeper.stdin.getWriter();
  await writer.write(new TextEncoder().encode("\n"));
  await writer.close();
  await sleeper.status;
  const lines: string[] = [];
  for (let line = await cli.nextLine(); line !== null; line = await cli.nextLine()) {
    lines.push(line);
  }
  const status = await cli.process.status;
  assert.equal(status.code, 0, cli.stderr());
  assert.ok(Date.now() - started >= 900);
  const events = lines.filter((line) => line).map((line) => JSON.parse(line));
  assert.deepEqual(events.map((event) => [event.type, event.pid, event.exitCode]), [
    ["exit", sleeper.pid, 0],
  ]);
});

Deno.test("bad input: one line on stderr and a documented exit code", async () => {
  const cases: [string[], number, RegExp][] = [
    [["watch", "-e", "frok"], 2, /unknown event 'frok'/],
    [["watch", "-p", "abc"], 2, /invalid pid 'abc'/],
    [["watch", "-n", "0"], 2, /invalid count/],
    [["watch", "--bogus"], 2, /^procwatch: unknown option '--bogus'; see 'procwatch watch --help'/],
    [["watch", "--format", "xml"], 2, /unknown format 'xml'/],
  ];
  for (const [args, code, message] of cases) {
    const result = await runCli(args);
    assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
});

Deno.test("missing --allow-ffi: one line with the command to run, exit 3", async () => {
  const result = await runCli(["watch"], ["--no-prompt"]);
  assert.equal(result.code, 3);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, /deno run --allow-ffi cli\.ts/);
});

kernelTest("a pid that does not exist: exit 7", async () => {
  const result = await runCli(["watch", "-p", "4194303"]);
  assert.equal(result.code, 7);
  assert.match(result.stderr.trim(), /^procwatch: no such process: 4194303( \(.*pid_max\))?$/);
});

kernelTest("inside another network namespace: ECONNREFUSED explained, exit 6", async () => {
  const result = await runCli(["watch"], ["--allow-ffi"], ["unshare", "-n"]);
  assert.equal(result.code, 6, result.stderr);
  assert.equal(result.stderr.trim().split("\n").length, 1);
  assert.match(result.stderr, /network namespace/);
});

Deno.test("--help works with only --allow-ffi and exits 0", async () => {
  for (const args of [["--help"], ["watch", "--help"]]) {
    const result = await runCli(args);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Usage: procwatch/);
    assert.equal(result.stderr, "");
  }
});
