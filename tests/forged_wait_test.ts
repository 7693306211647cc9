/**
 * Issue 7, item 1, for `wait`: a forged exit message sent straight to the
 * waiting CLI's netlink port must not end the wait; the real exit still does.
 */

import assert from "node:assert/strict";
import { closeDescriptor, openConnectorSender, sendToPort } from "./support/ffi/netlink_raw.ts";
import { kernelTest } from "./support/kernel.ts";
import { startCli } from "./support/cli.ts";
import { forgedExitMessage, procConnectorDescriptors } from "./support/netlink.ts";

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
