/**
 * Waits for one process — any process, not only a child — and exits the way
 * it did: its exit code, or 128 + the signal that killed it.
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/wait_on_pid.ts 1234 && echo "1234 succeeded"
 * ```
 *
 * Modelled on kmonitor's `wait_on_pid` example, on procwatch's public API.
 *
 * @module
 */

import { NoSuchProcessError, ProcwatchError, waitForExit } from "@procwatch/procwatch";

if (import.meta.main) {
  const pid = Number(Deno.args[0]);
  if (Deno.args.length !== 1 || !Number.isInteger(pid) || pid <= 0) {
    console.error("usage: wait_on_pid.ts PID");
    Deno.exit(2);
  }
  try {
    const info = await waitForExit(pid);
    const how = !info.statusKnown
      ? "ended; how is unknown (no proc connector here)"
      : info.signal !== null
      ? `was killed by ${info.signal}${info.coreDumped ? " (core dumped)" : ""}`
      : `exited with code ${info.exitCode}`;
    const ran = info.runtimeMs === null ? "" : ` after ${(info.runtimeMs / 1000).toFixed(2)} s`;
    console.log(`process ${pid} ${how}${ran}`);
    Deno.exit(info.shellStatus);
  } catch (error) {
    if (!(error instanceof ProcwatchError)) throw error;
    console.error(`wait_on_pid: ${error.message}`);
    // As `procwatch wait` ends: 127 for a pid that does not exist (a shell's
    // `wait` says so for a pid that is not its child), 125 when it cannot wait.
    Deno.exit(error instanceof NoSuchProcessError ? 127 : 125);
  }
}
