/**
 * Errors of `cli.ts run SCRIPT`. A script that cannot be loaded is
 * one line with file:line:col and exit 8; a script that throws (in its
 * for-await loop, at top level, later in a timer) prints the error and its
 * location, leaves no listener registered, and exits 8; a procwatch error it
 * lets escape keeps its own exit code; a clean script exits 0 when done.
 */

import assert from "node:assert/strict";
import { ExitCode } from "../cli/exit_codes.ts";
import { kernelTest } from "./support/kernel.ts";
import {
  type BorrowedListener,
  borrowListener,
  release,
  stillReceives,
} from "./support/registration.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;
const mod = new URL("../mod.ts", import.meta.url).href;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** Whether the script's watcher socket still got events after the process ended. */
  stillRegistered?: boolean;
}

async function withScript(
  source: string,
  fn: (path: string) => Promise<Result>,
): Promise<Result> {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-script-" });
  try {
    const path = `${dir}/script.ts`;
    await Deno.writeTextFile(path, source);
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `cli.ts run` without interaction. */
async function run(path: string, permissions = ["--allow-all"]): Promise<Result> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, cli, "run", path],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/**
 * Runs a script that prints `ready PORT` once its watcher is registered and
 * then waits for a line on stdin; borrows its socket, lets it go on, and
 * reports whether the socket was left registered.
 */
async function runWatching(path: string): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", cli, "run", path],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let listener: BorrowedListener | undefined;
  try {
    while (!/ready \d+\n/.test(stdout)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`script ended before ready: ${stdout} ${await stderr}`);
      stdout += value;
    }
    listener = borrowListener(child.pid);
    assert.equal(listener.port, Number(/ready (\d+)/.exec(stdout)![1]));
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
    }
    const status = await child.status;
    const stillRegistered = await stillReceives(listener);
    return { code: status.code, stdout, stderr: await stderr, stillRegistered };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    if (listener) await release(listener);
  }
}

const prologue = `import { watch } from "${mod}";
const watcher = watch();
console.log(\`ready \${watcher.portId}\`);
await Deno.stdin.read(new Uint8Array(16));
`;

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

kernelTest(
  "a script that throws in its for-await loop: error, location, unregistered, exit 8",
  async () => {
    const result = await withScript(
      `${prologue}new Deno.Command("true").spawn();
for await (const event of watcher) {
  throw new Error(\`boom on \${event.type}\`);
}
`,
      runWatching,
    );
    const stderr = lines(result.stderr);
    assert.equal(result.code, ExitCode.SCRIPT, result.stderr);
    assert.equal(stderr.length, 2, result.stderr);
    assert.match(stderr[0], /^procwatch: script error: Error: boom on \w+$/);
    assert.match(stderr[1], /^ {4}at \/\S+\/script\.ts:7:9$/);
    assert.equal(result.stillRegistered, false);
  },
);

kernelTest(
  "a script that throws at top level with its watcher open: unregistered, exit 8",
  async () => {
    const result = await withScript(`${prologue}throw new TypeError("bad input");\n`, runWatching);
    assert.equal(result.code, ExitCode.SCRIPT, result.stderr);
    assert.deepEqual(lines(result.stderr).map((line) => line.replace(/\/\S+\//, "/…/")), [
      "procwatch: script error: TypeError: bad input",
      "    at /…/script.ts:5:7",
    ]);
    assert.equal(result.stillRegistered, false);
  },
);

kernelTest("a script whose timer throws later: unregistered, exit 8", async () => {
  const result = await withScript(
    `${prologue}setTimeout(() => {
  throw new RangeError("late failure");
}, 10);
`,
    runWatching,
  );
  assert.equal(result.code, ExitCode.SCRIPT, result.stderr);
  assert.deepEqual(lines(result.stderr).map((line) => line.replace(/\/\S+\//, "/…/")), [
    "procwatch: script error: RangeError: late failure",
    "    at /…/script.ts:6:9",
  ]);
  assert.equal(result.stillRegistered, false);
});

kernelTest("a script with an unhandled rejection: unregistered, exit 8", async () => {
  const result = await withScript(
    `${prologue}Promise.reject(new Error("nobody caught me"));\n`,
    runWatching,
  );
  assert.equal(result.code, ExitCode.SCRIPT, result.stderr);
  assert.equal(lines(result.stderr)[0], "procwatch: script error: Error: nobody caught me");
  assert.equal(result.stillRegistered, false);
});

Deno.test("a script with a syntax error: one line with file:line:col, exit 8", async () => {
  const result = await withScript(`const ok = 1;\nconst x y = 2;\n`, run);
  assert.equal(result.code, ExitCode.SCRIPT);
  const stderr = lines(result.stderr);
  assert.equal(stderr.length, 1, result.stderr);
  assert.match(
    stderr[0],
    /^procwatch: cannot load script: SyntaxError: .+ \(\/\S+\/script\.ts:2:9\)$/,
  );
});

Deno.test("a script importing a missing module: one line with file:line:col, exit 8", async () => {
  const result = await withScript(`import "./nowhere.ts";\n`, run);
  assert.equal(result.code, ExitCode.SCRIPT);
  const stderr = lines(result.stderr);
  assert.equal(stderr.length, 1, result.stderr);
  assert.match(
    stderr[0],
    /^procwatch: cannot load script: Module not found .*nowhere\.ts.* \(\/\S+\/script\.ts:1:8\)$/,
  );
});

Deno.test("a script file that does not exist: one line, exit 8", async () => {
  const result = await run("/nonexistent/procwatch-script.ts");
  assert.equal(result.code, ExitCode.SCRIPT);
  assert.deepEqual(lines(result.stderr), [
    "procwatch: cannot load script /nonexistent/procwatch-script.ts: no such file",
  ]);
});

Deno.test("run without --allow-read: one line with the command to use, exit 3", async () => {
  const result = await run("some/script.ts", ["--allow-ffi"]);
  assert.equal(result.code, ExitCode.NO_FFI);
  const stderr = lines(result.stderr);
  assert.equal(stderr.length, 1, result.stderr);
  assert.match(
    stderr[0],
    /^procwatch: loading a script needs read access; run it as: deno run --allow-ffi --allow-read \S*cli\.ts run some\/script\.ts$/,
  );
});

kernelTest("a script's procwatch error keeps its exit code (bad event type → 2)", async () => {
  const result = await withScript(
    `import { watch } from "${mod}";\nwatch({ events: ["frok" as "exit"] });\n`,
    run,
  );
  assert.equal(result.code, ExitCode.USAGE);
  const stderr = lines(result.stderr);
  assert.equal(stderr.length, 1, result.stderr);
  assert.match(stderr[0], /^procwatch: unknown event type 'frok' .*\(\/\S+\/script\.ts:2:1\)$/);
});

kernelTest("a clean script runs to its end with its arguments and exits 0", async () => {
  const result = await withScript(
    `import { watch } from "${mod}";
using watcher = watch({ events: ["exit"] });
const child = new Deno.Command("true").spawn();
for await (const event of watcher) {
  if (event.type === "exit" && event.pid === child.pid) break;
}
await child.status;
setTimeout(() => console.log("later", Deno.args.join(" ")), 50);
`,
    async (path) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", cli, "run", path, "one", "--two"],
        stdin: "null",
      }).output();
      const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
    },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "later one --two\n");
  assert.equal(result.stderr, "");
});
