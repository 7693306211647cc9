/**
 * procwatch believes only the kernel. A well-formed exit message for a live
 * pid, unicast by another process straight to the watcher's netlink port, is
 * counted as foreign and never reported; a forged exit sent to a waiting
 * `cli.ts wait` does not end the wait, the real exit still does; and the
 * kernel refuses such a unicast from an unprivileged process (EPERM), which is
 * why only root can even try.
 */

import assert from "node:assert/strict";
import { closeDescriptor, openConnectorSender, sendToPort } from "./support/ffi/netlink_raw.ts";
import { collectUntil, kernelTest, watchAll } from "./support/kernel.ts";
import { startCli } from "./support/cli.ts";
import { forgedExitMessage, procConnectorDescriptors } from "./support/netlink.ts";
import type { ProcWatcher } from "../lib/watch/watcher.ts";

const fixture = new URL("./support/forge_send.ts", import.meta.url).pathname;

async function until(what: string, test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"], stdin: "null", stdout: "null" }).spawn();
}

async function killAndReap(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already gone.
  }
  await child.status;
}

kernelTest(
  "a root process's forged exit message is counted as foreign, never reported",
  async () => {
    const child = sleeper();
    const watcher: ProcWatcher = watchAll({ pids: [child.pid], events: ["exit"] });
    const sender = openConnectorSender();
    try {
      const before = watcher.stats.foreign;
      assert.equal(sendToPort(sender, watcher.portId, forgedExitMessage(child.pid, 3)), 0);
      await until("the forged message to be counted", () => watcher.stats.foreign > before);

      // The real exit, caused now, must be the first exit reported for this pid.
      child.kill("SIGTERM");
      const seen = await collectUntil(
        watcher,
        (event) => event.type === "exit" && event.pid === child.pid,
      );
      const exits = seen.filter((event) => event.type === "exit" && event.pid === child.pid);
      assert.equal(exits.length, 1);
      const exit = exits[0];
      assert.ok(exit.type === "exit");
      assert.equal(exit.signal, "SIGTERM");
      assert.equal(exit.exitCode, null);
      assert.notEqual(exit.timestampNs, 1n); // the forged message's timestamp
      assert.equal(watcher.stats.foreign, before + 1);
    } finally {
      closeDescriptor(sender);
      watcher.close();
      await killAndReap(child);
    }
  },
);

kernelTest("the kernel refuses an unprivileged unicast to a watcher's port (EPERM)", async () => {
  const child = sleeper();
  const watcher = watchAll({ pids: [child.pid], events: ["exit"] });
  const denoDir = await Deno.makeTempDir({ prefix: "procwatch-nobody-" });
  try {
    await Deno.chmod(denoDir, 0o777);
    const before = watcher.stats.foreign;
    const output = await new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        Deno.execPath(),
        "run",
        "--no-config",
        "--allow-ffi",
        fixture,
        String(watcher.portId),
        String(child.pid),
      ],
      env: { DENO_DIR: denoDir, HOME: denoDir, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout).trim();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    assert.equal(output.code, 0, `fixture failed: ${stderr}`);
    assert.equal(stdout, "EPERM");

    // Nothing arrived: a real exit is the first thing the watcher sees.
    child.kill("SIGKILL");
    const seen = await collectUntil(
      watcher,
      (event) => event.type === "exit" && event.pid === child.pid,
    );
    const exit = seen.find((event) => event.type === "exit" && event.pid === child.pid);
    assert.ok(exit?.type === "exit");
    assert.equal(exit.signal, "SIGKILL");
    assert.equal(watcher.stats.foreign, before);
  } finally {
    watcher.close();
    await killAndReap(child);
    await Deno.remove(denoDir, { recursive: true });
  }
});

kernelTest(
  "wait ignores a forged exit for its pid and keeps waiting for the real one",
  async () => {
    const target = new Deno.Command("sleep", { args: ["60"], stdin: "null", stdout: "null" })
      .spawn();
    const cli = startCli(["wait", "-v", String(target.pid)]);
    try {
      await cli.waitForStderr("armed");
      const ports = procConnectorDescriptors(cli.process.pid).map((socket) => socket.port);
      assert.ok(ports.length >= 1, "the waiting CLI has a proc connector socket");
      const sender = openConnectorSender();
      try {
        for (const port of ports) sendToPort(sender, port, forgedExitMessage(target.pid, 42));
      } finally {
        closeDescriptor(sender);
      }
      // Had the forgery been believed, wait would have ended with 42 by now.
      const early = await Promise.race([
        cli.process.status.then((status) => status.code),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 700)),
      ]);
      assert.equal(early, null, "wait kept waiting after the forged exit");
      target.kill("SIGTERM");
      await target.status;
      const line = await cli.nextLine();
      assert.equal(line, `${target.pid} killed by SIGTERM`);
      assert.equal((await cli.process.status).code, 143);
    } finally {
      try {
        target.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      try {
        cli.process.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  },
);
