/**
 * The example scripts, each run as README says (`deno run --allow-ffi
 * scripts/X.ts ...`) against the real kernel while a workload runs.
 */

import assert from "node:assert/strict";
import { ptraceDetach, ptraceSeize } from "./support/ffi/ptrace.ts";
import { processExists } from "../ffi/process.ts";
import { readFileText } from "../ffi/proc_fs.ts";
import { serialKernelTest, spawnDeno, spawnShell } from "./support/subprocess.ts";

async function go(child: Deno.ChildProcess): Promise<void> {
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode("go\n"));
  await writer.close();
}

serialKernelTest("scripts/monitor_pid.ts follows a sub-tree and ends with its root", async () => {
  const root = spawnShell(`read go; sh -c '/bin/true level2; exit 0'; exit 4`, "piped");
  const script = spawnDeno("scripts/monitor_pid.ts", [String(root.child.pid)]);
  await script.stderr.waitFor((line) => line.startsWith("monitoring"));
  await go(root.child);
  assert.equal((await root.child.status).code, 4);
  const status = await script.child.status;
  await script.stdout.done;
  assert.equal(status.code, 0, script.stderr.lines.join("\n"));
  const lines = script.stdout.lines;
  const line = (text: string) => lines.find((candidate) => candidate.includes(text)) ?? "";
  assert.match(line("+ sh -c '/bin/true level2; exit 0'"), /^ {2}\d+\+ /);
  assert.match(line("+ /bin/true level2"), /^ {4}\d+\+ /);
  assert.match(line("- /bin/true level2"), /^ {4}\d+- \/bin\/true level2 exited status=0 time=/);
  assert.match(lines.at(-1) ?? "", new RegExp(`^${root.child.pid}- .* exited status=4 time=`));
});

serialKernelTest(
  "scripts/monitor_pid.ts: a pid that does not exist is one line, exit 7",
  async () => {
    const script = spawnDeno("scripts/monitor_pid.ts", ["4194000"]);
    const code = (await script.child.status).code;
    await script.stderr.done;
    assert.equal(code, 7);
    assert.deepEqual(script.stderr.lines.filter((line) => line !== ""), [
      "monitor_pid: no such process: 4194000",
    ]);
  },
);

serialKernelTest("scripts/new_processes.ts names and signals a matching new process", async () => {
  // A name of its own (the kernel names a process after the file it execs, here a link to
  // sleep): other processes named "sleep" on the machine are not ours to be matched or killed.
  const dir = await Deno.makeTempDir();
  const name = `pwsleep${Deno.pid % 100000}`;
  await Deno.symlink("/bin/sleep", `${dir}/${name}`);
  try {
    const script = spawnDeno("scripts/new_processes.ts", [
      `^${name}$`,
      "--signal",
      "TERM",
      "--count",
      "1",
    ]);
    await script.stderr.waitFor((line) => line.startsWith("waiting for"));
    const sleeper = new Deno.Command(`${dir}/${name}`, { args: ["30"] }).spawn();
    const status = await sleeper.status;
    assert.equal(status.signal, "SIGTERM", "the script's TERM ended it");
    assert.equal((await script.child.status).code, 0);
    await script.stdout.done;
    const lines = script.stdout.lines.filter((line) => line.startsWith(`${sleeper.pid} `));
    assert.equal(lines.length, 2, lines.join("\n"));
    assert.equal(lines[0], `${sleeper.pid} ${name} ${dir}/${name} 30 (user root)`);
    assert.equal(lines[1], `${sleeper.pid} sent TERM`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

serialKernelTest(
  "scripts/ptrace_guard.ts reports and kills a tracee of a tracer not allowed",
  async (t) => {
    // The tracee is a grandchild, so Deno's child reaper never takes its wait status.
    const tracee = () => {
      const shell = spawnShell("sleep 30 & echo $!; wait");
      const pid = shell.stdout.waitFor((line) => /^\d+$/.test(line)).then(async (line) => {
        // `$!` is known at fork; wait for the exec so that the tracee is named sleep.
        while (readFileText(`/proc/${line}/comm`)?.trim() === "sh") {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return Number(line);
      });
      return { shell, pid };
    };

    await t.step("tracer allowed: silent, tracee untouched", async () => {
      const guard = spawnDeno("scripts/ptrace_guard.ts", ["--allow", "deno,gdb", "--kill"]);
      await guard.stderr.waitFor((line) => line.startsWith("guarding"));
      const target = tracee();
      const pid = await target.pid;
      ptraceSeize(pid);
      await ptraceDetach(pid);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.ok(processExists(pid), "not killed");
      await guard.stop("SIGTERM");
      assert.deepEqual(guard.stdout.lines.filter((line) => line.includes(`${pid} `)), []);
      Deno.kill(pid, "SIGKILL");
      await target.shell.child.status;
    });

    await t.step("tracer not allowed: ALERT naming the tracer, tracee killed", async () => {
      const guard = spawnDeno("scripts/ptrace_guard.ts", ["--allow", "gdb", "--kill"]);
      await guard.stderr.waitFor((line) => line.startsWith("guarding"));
      const target = tracee();
      const pid = await target.pid;
      ptraceSeize(pid);
      // The guard kills the tracee meanwhile: detaching may find it gone.
      await ptraceDetach(pid).catch(() => {});
      const alert = await guard.stdout.waitFor((line) => line.startsWith(`ALERT: ${pid} `));
      assert.match(
        alert,
        new RegExp(`^ALERT: ${pid} \\(sleep\\) ptrace-attached by ${Deno.pid} \\(deno: `),
      );
      await guard.stdout.waitFor((line) => line === `${pid} killed`);
      assert.equal((await target.shell.child.status).success, true, "its shell saw it die");
      assert.ok(!processExists(pid));
      await guard.stop("SIGTERM");
    });
  },
);

serialKernelTest(
  "scripts/failures.ts reports failed exits and core dumps with their parent",
  async () => {
    const script = spawnDeno("scripts/failures.ts", []);
    await script.stderr.waitFor((line) =>
      line.startsWith("reporting failures (kernel-side filter)")
    );
    const workload =
      spawnShell("ulimit -c 0; /bin/true ok; (exit 3); /bin/false; kill -SEGV $$").child;
    await workload.status;
    const pid = workload.pid;
    await script.stdout.waitFor((line) => line.startsWith(`${pid} `) && line.includes("SIGSEGV"));
    await script.stop("SIGTERM");
    const parent = `parent ${Deno.pid} (deno)`;
    const mine = script.stdout.lines.filter((line) =>
      line.includes("ulimit -c 0") || line.includes(`parent ${pid} (sh)`)
    );
    assert.equal(mine.length, 4, mine.join("\n"));
    assert.match(
      mine[0],
      /^\d+ .*sh -c 'ulimit -c 0; .*: exited with code 3 after \d+\.\d{3}s, parent \d+ \(sh\)$/,
    );
    assert.match(
      mine[1],
      /^\d+ \/bin\/false: exited with code 1 after \d+\.\d{3}s, parent \d+ \(sh\)$/,
    );
    assert.match(
      mine[2],
      new RegExp(`^${pid} .*: dumping core, ${parent.replace(/[()]/g, "\\$&")}$`),
    );
    assert.match(mine[3], new RegExp(`^${pid} .*: killed by SIGSEGV after \\d+\\.\\d{3}s, `));
    assert.ok(
      !script.stdout.lines.some((line) => line.includes("exited with code 0")),
      "successes filtered",
    );
  },
);
