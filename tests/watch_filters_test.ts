/**
 * `cli.ts watch` with filters, formats and -S, run as users run it:
 * `deno run --allow-ffi cli.ts watch ...`; and the validation of filter
 * options (lib/watch/filters.ts compileFilters).
 */

import assert from "node:assert/strict";
import { runDeno, serialKernelTest, spawnDeno, spawnShell } from "./support/subprocess.ts";
import { NoSuchProcessError, UsageError } from "../ground/errors.ts";
import { compileFilters } from "../lib/process/filters.ts";
import { UserNames } from "../lib/process/users.ts";

async function go(child: Deno.ChildProcess): Promise<void> {
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("go\n"));
  await writer.close();
}

serialKernelTest(
  "cli: watch --tree PID --format tree indents the sub-tree, nothing else",
  async () => {
    const root = spawnShell(
      `read go; sh -c '/bin/true deep; exit 0'; /bin/true top; exit 0`,
      "piped",
    );
    const cli = spawnDeno("cli.ts", [
      "watch",
      "-v",
      "--tree",
      String(root.child.pid),
      "--format",
      "tree",
    ]);
    try {
      await cli.stderr.waitFor((line) => line.includes("listening"));
      const outsider = spawnShell("/bin/true deep; exit 0");
      await go(root.child);
      await Promise.all([root.child.status, outsider.child.status]);
      await cli.stdout.waitFor((line) => line.includes(`${root.child.pid}- `));
    } finally {
      assert.equal(await cli.stop("SIGINT"), 130);
    }
    const lines = cli.stdout.lines;
    const indentOf = (text: string) => {
      const line = lines.find((candidate) => candidate.includes(text));
      assert.ok(line !== undefined, `no line with ${text}:\n${lines.join("\n")}`);
      return line.length - line.trimStart().length;
    };
    assert.equal(indentOf("+ /bin/true top"), 2, "child of the root: one level");
    assert.equal(indentOf("+ sh -c '/bin/true deep; exit 0'"), 2);
    assert.equal(indentOf("+ /bin/true deep"), 4, "grandchild: two levels");
    assert.match(
      lines.find((line) => line.includes("- /bin/true deep")) ?? "",
      /^ {4}\d+- \/bin\/true deep exited status=0 time=\d+\.\d{3}s$/,
    );
    assert.match(lines.find((line) => line.includes(`${root.child.pid}- `)) ?? "", /^\d+- /);
    assert.equal(
      lines.filter((line) => line.includes("+ /bin/true deep")).length,
      1,
      "no outsider",
    );
    assert.ok(!lines.join("\n").includes("\x1b["), "no colour on a pipe");
  },
);

serialKernelTest(
  "cli: watch --failed -S reports decoded failures and a summary on SIGINT",
  async () => {
    const cli = spawnDeno("cli.ts", ["watch", "-v", "--failed", "-S"]);
    let workload: Deno.ChildProcess | undefined;
    try {
      await cli.stderr.waitFor((line) =>
        line.includes(
          "event types filtered in the kernel: exit, coredump (exits: only failed ones)",
        )
      );
      workload = spawnShell("ulimit -c 0; /bin/true; (exit 3); kill -SEGV $$").child;
      await workload.status;
      await cli.stdout.waitFor((line) =>
        / exit +\d+ .*exit SIGSEGV/.test(line) && line.includes(String(workload!.pid))
      );
    } finally {
      assert.equal(await cli.stop("SIGINT"), 130);
    }
    const lines = cli.stdout.lines;
    assert.match(lines[0], /^Time +Event +PID +User +TTY +Info +Duration +Ctr\/Unit +Process$/);
    const mine = lines.filter((line) =>
      / (exit|coredump) /.test(line) && line.includes("ulimit -c 0")
    );
    // (exit 3) is a forked subshell: same command line as the shell.
    assert.equal(mine.length, 3, mine.join("\n"));
    assert.match(
      mine[0],
      / exit +\d+ root +exit 3 +\d+\.\d{3}s +(?:\S+ +)?(\/usr\/bin\/)?sh -c 'ulimit -c 0; /,
    );
    assert.match(mine[1], / coredump +\d+ root /);
    assert.match(mine[2], / exit +\d+ root +exit SIGSEGV +\d+\.\d{3}s /);
    assert.ok(!lines.some((line) => line.includes(" 768 ")), "never the raw status");
    // The summary: header, rows, totals — forkstat -S style.
    const header = lines.findIndex((line) => /^ +Fork +Exec +Exit +Fail +Core /.test(line));
    assert.ok(header > 0, lines.join("\n"));
    assert.match(lines[header - 1], /^procwatch: \d+ events in \d+\.\d s/);
    const total = lines.at(-1) ?? "";
    assert.match(total, /Total$/);
    const numbers = total.trim().split(/ +/).slice(0, 11).map(Number);
    const [fork, exec, exit, failed, core] = numbers;
    assert.equal(fork + exec, 0, "only exits and core dumps were asked for");
    assert.ok(exit >= 2 && failed === exit && core >= 1, total);
    const shRow = lines.find((line, index) => index > header && / sh$/.test(line));
    assert.ok(shRow, "a per-process row for sh");
  },
);

serialKernelTest("cli: json --context carries the process fields by name", async () => {
  const cli = spawnDeno("cli.ts", ["watch", "-v", "--json", "--context", "-e", "exec,exit"]);
  let pid = 0;
  try {
    await cli.stderr.waitFor((line) => line.includes("listening"));
    const child = spawnShell("sh -c 'sleep 0.3; exit 0' json-test '' last; exit 0").child;
    pid = child.pid;
    await child.status;
    await cli.stdout.waitFor((line) =>
      line.includes(`"type":"exit","cpu"`) && line.includes(`"pid":${pid},`)
    );
  } finally {
    await cli.stop("SIGINT");
  }
  const events = cli.stdout.lines.map((line) => JSON.parse(line));
  // (Lives 0.3 s: this test is about field names; short lives are context_test.ts's.)
  const exec = events.find((event) =>
    event.type === "exec" && event.process?.cmdline?.[3] === "json-test"
  );
  assert.ok(exec, "exec of sh -c 'sleep 0.3; exit 0' json-test '' last");
  assert.deepEqual(exec.process.cmdline.slice(1), [
    "-c",
    "sleep 0.3; exit 0",
    "json-test",
    "",
    "last",
  ]);
  assert.equal(exec.process.ppid, pid);
  assert.equal(exec.process.parentComm, "sh");
  assert.equal(exec.process.user, "root");
  assert.equal(exec.process.uid, 0);
  assert.equal(typeof exec.process.startNs, "string");
  assert.equal(typeof exec.process.procGone, "boolean"); // true when the capture worker named it
  const exit = events.find((event) => event.type === "exit" && event.pid === exec.pid);
  assert.match(exit.process.durationNs, /^\d+$/);
  for (
    const key of ["comm", "cmdline", "exe", "cwd", "uid", "user", "ppid", "parentComm", "tty"]
  ) assert.ok(key in exit.process, `exit event has process.${key}`);
});

serialKernelTest("cli: colours only on a terminal, never with NO_COLOR", async () => {
  const run = async (env: Record<string, string>) => {
    // script(1) gives the CLI a pseudo-terminal as stdout; the loop runs until it has seen one.
    const cli = `${Deno.execPath()} run --allow-ffi cli.ts watch -n 1 -e exec --match colour-test`;
    const output = await new Deno.Command("script", {
      args: [
        "-qec",
        `(while sleep 0.2; do /bin/true colour-test; done) & ${cli}; kill $!`,
        "/dev/null",
      ],
      cwd: new URL("../", import.meta.url).pathname,
      // Not the caller's environment: CI itself sets NO_COLOR.
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", TERM: "xterm", ...env },
      stdin: "null",
    }).output();
    return new TextDecoder().decode(output.stdout);
  };
  const coloured = await run({});
  assert.ok(coloured.includes("\x1b[36mexec"), `exec in cyan on a tty:\n${coloured}`);
  const plain = await run({ NO_COLOR: "1" });
  assert.ok(plain.includes("/bin/true colour-test"), plain);
  assert.ok(!plain.includes("\x1b[36m"), "NO_COLOR wins");
});

Deno.test("cli: bad filters are one line and exit 2; a missing --tree pid exits 7", async () => {
  const cases: [string[], number, RegExp][] = [
    [["--match", "("], 2, /^procwatch: invalid regular expression '\(': /],
    [["--uid", "no-such-user-x"], 2, /^procwatch: unknown user 'no-such-user-x'$/],
    [["--tree", "abc"], 2, /invalid pid 'abc'/],
    [["--ppid", "0"], 2, /invalid pid '0'/],
    [["--format", "xml"], 2, /^procwatch: unknown format 'xml' \(known: human, json, tree\)$/],
    [["--tree", "4194000"], 7, /^procwatch: no such process: 4194000( \(.*pid_max\))?$/],
  ];
  for (const [args, code, message] of cases) {
    const result = await runDeno("cli.ts", ["watch", ...args]);
    assert.equal(result.code, code, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stderr.trimEnd().split("\n").length, 1, result.stderr);
    assert.match(result.stderr.trimEnd(), message);
    assert.equal(result.stdout, "");
  }
});

Deno.test("filters: bad input is a one-line UsageError; a missing tree root is NoSuchProcessError", () => {
  const users = new UserNames("root:x:0:0::/:/bin/sh\n");
  assert.throws(() => compileFilters({ match: "(" }, users), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /^invalid regular expression '\(': /);
    assert.ok(!error.message.includes("\n"));
    return true;
  });
  assert.throws(() => compileFilters({ uid: "nobody-here" }, users), /unknown user 'nobody-here'/);
  assert.throws(() => compileFilters({ tree: -1 }, users), UsageError);
  assert.throws(() => compileFilters({ ppid: 1.5 }, users), UsageError);
  assert.throws(() => compileFilters({ comm: [] }, users), UsageError);
  assert.throws(() => compileFilters({ tree: 4194000 }, users), NoSuchProcessError);
  const filters = compileFilters(
    { comm: ["averyveryverylongname"], uid: "root", match: "x", tree: 1 },
    users,
  );
  assert.deepEqual([...filters.comm ?? []], ["averyveryveryl".padEnd(15, "o").slice(0, 15)]);
  assert.deepEqual(filters.uid, new Set([0]));
  assert.equal(filters.tree, 1);
});
