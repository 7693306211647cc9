/**
 * A reader that leaves: `cli.ts watch | head -n 1` (and `--json | head`) end
 * quietly: exit code 0, nothing on stderr, no stack trace. The test keeps
 * making processes so that events keep coming after `head` has left.
 */

import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;

async function pipeToHead(args: string[], lines: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "procwatch-pipe-" });
  try {
    const script = `"$DENO" run --allow-ffi "$CLI" watch ${args.join(" ")} 2>"$DIR/stderr" ` +
      `| head -n ${lines} >"$DIR/head"; echo "\${PIPESTATUS[0]}" >"$DIR/status"`;
    const shell = new Deno.Command("bash", {
      args: ["-c", script],
      env: { DENO: Deno.execPath(), CLI: cli, DIR: dir, NO_COLOR: "1" },
      stdin: "null",
    }).spawn();
    let done = false;
    const finished = shell.status.then((status) => {
      done = true;
      return status;
    });
    // Events for the watcher to print, until the pipeline is over.
    const deadline = Date.now() + 30_000;
    while (!done && Date.now() < deadline) {
      await new Deno.Command("true", { stdin: "null", stdout: "null", stderr: "null" }).output();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (!done) shell.kill("SIGKILL");
    await finished;
    assert.ok(done, "the watcher did not end after head closed the pipe");

    const stderr = await Deno.readTextFile(`${dir}/stderr`);
    const status = (await Deno.readTextFile(`${dir}/status`)).trim();
    const head = (await Deno.readTextFile(`${dir}/head`)).split("\n").filter((line) => line);
    // Nothing but loss warnings (other tests may flood the machine meanwhile):
    // no error line, no stack trace.
    const unexpected = stderr.split("\n").filter((line) =>
      line !== "" && !/^procwatch: warning: \d+ events? lost \(.*\)$/.test(line)
    );
    assert.deepEqual(unexpected, [], `the watcher wrote to stderr: ${stderr}`);
    assert.equal(status, "0");
    assert.equal(head.length, lines);
    if (args.includes("--json")) {
      for (const line of head) assert.equal(typeof JSON.parse(line), "object");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

kernelTest("`cli.ts watch | head -n 1` exits 0 quietly", async () => {
  await pipeToHead([], 1);
});

kernelTest("`cli.ts watch --json | head -n 3` exits 0 quietly", async () => {
  await pipeToHead(["--json"], 3);
});

kernelTest("`cli.ts watch -e exit --json | head -n 1` exits 0 quietly", async () => {
  await pipeToHead(["-e", "exit", "--json"], 1);
});
