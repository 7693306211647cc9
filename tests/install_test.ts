/**
 * `deno task install` into a temporary root, then the installed `procwatch`
 * as a user runs it: `--version`, `watch`, `wait`, `run`, and every
 * `procwatch ...` command line of README.md's code blocks after the set-up
 * section, each really run (bounded), then `deno task uninstall`.
 *
 * The README examples name pids 1234 and 5678: the test starts two processes
 * (not its children, held by a gate file) and puts their pids there. A `wait`
 * example gets `-v` so that the gates open only once it is armed; a `watch` or
 * `run` example runs until its proc connector socket is registered and its
 * set-up is over, and then gets SIGTERM (or ends by itself, e.g. `-n 100`). Pipes and `&& ./deploy`
 * are cut off: the procwatch part is what is checked.
 */

import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";
import { alive, Gate, killQuietly, ROOT, startOrphan, until } from "./support/processes.ts";
import { readFileText } from "../ffi/proc_fs.ts";

const decoder = new TextDecoder();

/** What a finished command produced. */
interface Outcome {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** The installation under test: its root and the environment that has it on PATH. */
interface Installed {
  root: string;
  env: Record<string, string>;
}

async function install(root: string): Promise<Installed> {
  const env = {
    DENO_INSTALL_ROOT: root,
    PATH: `${root}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    NO_COLOR: "1",
  };
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "install"],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, decoder.decode(output.stderr));
  return { root, env };
}

/** Starts `sh -c "exec COMMAND"` (a procwatch command) or `sh -c COMMAND` with the installed procwatch first on PATH. */
function start(installed: Installed, command: string): Deno.ChildProcess {
  return new Deno.Command("sh", {
    // `exec`: the child is procwatch itself (its pid owns the connector socket, gets SIGTERM).
    args: ["-c", command.startsWith("procwatch ") ? `exec ${command}` : command],
    cwd: ROOT,
    env: installed.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Collects a child's output while it runs; `stderr()` shows what came so far. */
function collect(child: Deno.ChildProcess): { done: Promise<Outcome>; stderr: () => string } {
  let stdout = "";
  let stderr = "";
  const read = async (stream: ReadableStream<Uint8Array>, sink: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) sink(text);
  };
  const reading = Promise.all([
    read(child.stdout, (text) => stdout += text),
    read(child.stderr, (text) => stderr += text),
  ]);
  const done = (async () => {
    const status = await child.status;
    await reading;
    return { code: status.code, signal: status.signal, stdout, stderr };
  })();
  return { done, stderr: () => stderr };
}

async function run(installed: Installed, command: string): Promise<Outcome> {
  return await collect(start(installed, command)).done;
}

/** Whether `pid` has a proc connector socket (NETLINK_CONNECTOR, 11) in /proc/net/netlink. */
function hasConnectorSocket(pid: number): boolean {
  return (readFileText("/proc/net/netlink") ?? "").split("\n").some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === "11" && Number(fields[2]) === pid;
  });
}

/** epoll_wait, epoll_pwait, epoll_pwait2: the system calls of an idle Deno event loop. */
const EPOLL_WAITS = Deno.build.arch === "aarch64" ? ["22", "441"] : ["232", "281", "441"];

/**
 * Whether the main thread of `pid` waits in its event loop (`/proc/PID/syscall`).
 * From the moment the watcher's socket exists to the moment its SIGTERM
 * handling is installed, procwatch runs without yielding (it scans /proc), so
 * "socket, then idle" means SIGTERM is handled (unregister, exit 143); a
 * SIGTERM before that kills it outright.
 */
function idleInEventLoop(pid: number): boolean {
  const syscall = (readFileText(`/proc/${pid}/syscall`) ?? "").split(" ")[0];
  return EPOLL_WAITS.includes(syscall);
}

/**
 * The `procwatch ...` command lines of README.md's `sh` code blocks after the
 * set-up section (the set-up section itself installs; it is not re-run here).
 */
export function readmeExamples(markdown: string): string[] {
  const setUp = markdown.indexOf("\n## Set-up");
  assert.ok(setUp >= 0, "README has no set-up section");
  const next = markdown.indexOf("\n## ", setUp + 1);
  const after = markdown.slice(next);
  const examples: string[] = [];
  for (const block of after.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split("\n")) {
      if (line.startsWith("procwatch ")) examples.push(line);
    }
  }
  return examples;
}

/** The procwatch part of a shell line: up to an unquoted `|`, `&&`, `||`, `;` or ` #`. */
export function procwatchPart(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (quote !== null) {
      if (char === quote) quote = null;
    } else if (char === "'" || char === '"') {
      quote = char;
    } else if (
      char === "|" || char === "&" || char === ";" || (char === "#" && line[i - 1] === " ")
    ) {
      return line.slice(0, i).trim();
    }
  }
  return line.trim();
}

/**
 * A script the README shows (a `ts` block whose first line is `// PATH`),
 * written to `dir` with its `/path/to/procwatch/` import pointing at this
 * checkout. Returns the new path, or null when the README does not show it.
 */
function materialize(markdown: string, path: string, dir: string): string | null {
  for (const block of markdown.matchAll(/```ts\n([\s\S]*?)```/g)) {
    const [first, ...rest] = block[1].split("\n");
    if (first.trim() !== `// ${path}`) continue;
    const target = `${dir}/${path.split("/").pop()}`;
    Deno.writeTextFileSync(target, rest.join("\n").replaceAll("/path/to/procwatch/", ROOT));
    return target;
  }
  return null;
}

/** Two gated processes standing in for the README's 1234 and 5678. */
interface Targets {
  a: number;
  b: number;
  gateA: Gate;
  gateB: Gate;
}

const A_STATUS = 3;
const B_STATUS = 5;

async function startTargets(dir: string, tag: string): Promise<Targets> {
  const gateA = new Gate(dir, `${tag}-a`);
  const gateB = new Gate(dir, `${tag}-b`);
  const a = await startOrphan(`${gateA.shell}; exit ${A_STATUS}`);
  const b = await startOrphan(`${gateB.shell}; exit ${B_STATUS}`);
  return { a, b, gateA, gateB };
}

function release(targets: Targets): void {
  targets.gateA.open();
  targets.gateB.open();
  killQuietly(targets.a);
  killQuietly(targets.b);
}

/** Runs a `procwatch wait` example with `-v` and checks its status against the targets'. */
async function checkWait(installed: Installed, example: string, dir: string, tag: string) {
  const targets = await startTargets(dir, tag);
  try {
    const command = procwatchPart(example).replace(/^procwatch wait /, "procwatch wait -v ")
      .replace(/\b1234\b/g, `${targets.a}`).replace(/\b5678\b/g, `${targets.b}`);
    const usesB = command.includes(` ${targets.b}`);
    const any = /\s(--any|-a)\b/.test(command);
    const running = collect(start(installed, command));
    await until(() => running.stderr().includes("procwatch: armed: "), `armed: ${command}`, 30_000);
    // A ends first; B only after A is gone, so "the last to end" is B.
    targets.gateA.open();
    await until(() => !alive(targets.a), "target A to end");
    if (usesB && !any) targets.gateB.open();
    const outcome = await running.done;
    const expected = usesB && !any ? B_STATUS : A_STATUS;
    assert.equal(outcome.code, expected, `${example}\n${outcome.stderr}`);
    if (command.includes("--json")) {
      const line = JSON.parse(outcome.stdout.trim().split("\n")[0]);
      assert.equal(line.pid, targets.a);
      assert.equal(line.exitCode, A_STATUS);
    } else {
      assert.match(outcome.stdout, new RegExp(`^${targets.a} exited with code ${A_STATUS}$`, "m"));
    }
  } finally {
    release(targets);
  }
}

/**
 * Runs a `watch` or `run` example until it listens (its connector socket is
 * registered) plus a moment, then SIGTERM; it must end by itself (0, e.g.
 * `-n 100` reached) or by handling SIGTERM (143), never with a usage or
 * permission error.
 */
async function checkListener(
  installed: Installed,
  example: string,
  markdown: string,
  dir: string,
  tag: string,
) {
  const targets = await startTargets(dir, tag);
  try {
    let command = procwatchPart(example).replace(/\b1234\b/g, `${targets.a}`)
      .replace(/\b5678\b/g, `${targets.b}`);
    const script = /^procwatch run (\/\S+)/.exec(command)?.[1];
    if (script !== undefined) {
      let exists = true;
      try {
        Deno.statSync(script);
      } catch {
        exists = false;
      }
      if (!exists) {
        const written = materialize(markdown, script, dir);
        assert.ok(written !== null, `README runs ${script} but neither has nor shows it`);
        command = command.replace(script, written);
      }
    }
    const child = start(installed, command);
    const running = collect(child);
    let ended = false;
    running.done.then(() => ended = true);
    await until(
      () => ended || (hasConnectorSocket(child.pid) && idleInEventLoop(child.pid)),
      `a connector socket, then an idle event loop: ${command}`,
      30_000,
    );
    if (!ended) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      try {
        child.kill("SIGTERM");
      } catch {
        // It ended meanwhile.
      }
    }
    const outcome = await running.done;
    assert.equal(outcome.signal, null, `${command} died of a signal it did not handle`);
    assert.ok(
      outcome.code === 0 || outcome.code === 143,
      `${command}: exit ${outcome.code}\n${outcome.stderr}`,
    );
    assert.doesNotMatch(
      outcome.stderr,
      /\berror\b|unknown (option|command)|invalid|Requires/i,
      command,
    );
    if (/\s(--json|--format json)\b/.test(command) && !command.startsWith("procwatch run")) {
      for (const line of outcome.stdout.split("\n").filter((l) => l !== "")) JSON.parse(line);
    }
  } finally {
    release(targets);
  }
}

kernelTest(
  "deno task install gives a procwatch on PATH that runs the README's examples",
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "procwatch-install-" });
    try {
      const installed = await install(`${dir}/root`);
      const markdown = Deno.readTextFileSync(`${ROOT}README.md`);
      await t.step("procwatch --version is deno.json's version", async () => {
        const which = await run(installed, "command -v procwatch");
        assert.equal(which.stdout.trim(), `${dir}/root/bin/procwatch`);
        const version = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version;
        const outcome = await run(installed, "procwatch --version");
        assert.equal(outcome.stdout.trim(), version);
        assert.equal(outcome.code, 0);
      });

      await t.step("procwatch watch reports a process's exit with its real status", async () => {
        const targets = await startTargets(dir, "watch");
        try {
          const child = start(installed, `procwatch watch --json -e exit -p ${targets.a} -n 1`);
          const running = collect(child);
          await until(
            () => hasConnectorSocket(child.pid) && idleInEventLoop(child.pid),
            "watch to listen",
            30_000,
          );
          targets.gateA.open();
          const outcome = await running.done;
          assert.equal(outcome.code, 0, outcome.stderr);
          const event = JSON.parse(outcome.stdout.trim());
          assert.equal(event.type, "exit");
          assert.equal(event.pid, targets.a);
          assert.equal(event.exitCode, A_STATUS);
        } finally {
          release(targets);
        }
      });

      await t.step("procwatch run loads and runs a script (it has --allow-read)", async () => {
        const targets = await startTargets(dir, "run");
        try {
          const running = collect(
            start(installed, `procwatch run scripts/monitor_pid.ts ${targets.b}`),
          );
          await until(
            () => running.stderr().includes(`monitoring ${targets.b}`),
            "the script",
            30_000,
          );
          targets.gateB.open();
          // monitor_pid.ts ends when its process does, having printed that exit.
          const outcome = await running.done;
          assert.equal(outcome.code, 0, outcome.stderr);
          assert.match(
            outcome.stdout,
            new RegExp(`^\\s*${targets.b}\\b.* exited status=${B_STATUS}`, "m"),
          );
        } finally {
          release(targets);
        }
      });

      const examples = readmeExamples(markdown);
      assert.ok(examples.length >= 15, `only ${examples.length} README examples found`);
      for (const [index, example] of examples.entries()) {
        await t.step(`README: ${example}`, async () => {
          if (example.startsWith("procwatch wait ")) {
            await checkWait(installed, example, dir, `ex${index}`);
          } else if (/^procwatch (watch|run) /.test(example) || example === "procwatch watch") {
            await checkListener(installed, example, markdown, dir, `ex${index}`);
          } else {
            const outcome = await run(installed, procwatchPart(example));
            assert.equal(outcome.code, 0, `${example}\n${outcome.stderr}`);
          }
        });
      }

      await t.step("deno task uninstall removes it", async () => {
        const output = await new Deno.Command(Deno.execPath(), {
          args: ["task", "uninstall"],
          cwd: ROOT,
          env: installed.env,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(output.code, 0, decoder.decode(output.stderr));
        const which = await run(installed, "command -v procwatch");
        assert.notEqual(which.code, 0, `still installed: ${which.stdout}`);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("README examples are found and cut at the shell's operators", () => {
  const markdown = [
    "# x",
    "## Set-up",
    "```sh",
    "procwatch watch",
    "```",
    "## Next",
    "```sh",
    "procwatch watch --json | jq .       # JSON lines",
    "procwatch wait 1234 && ./deploy",
    "# procwatch in a comment",
    "procwatch watch --match 'a|b #c'",
    "```",
    "```text",
    "procwatch wait [--any] PID...",
    "```",
  ].join("\n");
  const examples = readmeExamples(markdown);
  assert.deepEqual(examples.map(procwatchPart), [
    "procwatch watch --json",
    "procwatch wait 1234",
    "procwatch watch --match 'a|b #c'",
  ]);
});
