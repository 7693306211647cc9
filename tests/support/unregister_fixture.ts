/**
 * Fixture for tests/unregister_test.ts: opens a watcher, prints `ready`, and
 * on a line from stdin ends in the way `Deno.args[0]` names (or waits for a
 * signal). `sigkill` is the control: it dies without unregistering.
 *
 * @module
 */

import { watch } from "../../mod.ts";

const mode = Deno.args[0];
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
async function go(): Promise<void> {
  await lines.read();
}
function makeEvents(): void {
  new Deno.Command("true", { stdin: "null", stdout: "null", stderr: "null" }).spawn();
}

switch (mode) {
  case "close": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    watcher.close();
    break;
  }
  case "dispose": {
    using watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    break;
  }
  case "async-dispose": {
    await using watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    break;
  }
  case "signal": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await new Promise(() => {});
    break;
  }
  case "throw-in-loop": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    makeEvents();
    for await (const _event of watcher) throw new Error("boom in the user's loop");
    break;
  }
  case "break-in-loop": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    makeEvents();
    for await (const _event of watcher) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
    Deno.exit(watcher.closed ? 0 : 9);
    break;
  }
  case "uncaught": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    setTimeout(() => {
      throw new Error("boom outside any loop");
    }, 0);
    break;
  }
  case "rejection": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    Promise.reject(new Error("unhandled boom"));
    break;
  }
  case "exit": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    Deno.exit(0);
    break;
  }
  case "sigkill": {
    const watcher = watch();
    console.log(`ready ${watcher.portId}`);
    await go();
    Deno.kill(Deno.pid, "SIGKILL");
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
