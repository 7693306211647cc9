/**
 * Report every process that gets ptrace-attached (debugged, traced, or read
 * by an injector) by a tracer that is not on the allow-list — the purpose the
 * 2011 kernel commit gave the ptrace event. With `--kill`, the traced process
 * is killed at once so that its memory cannot be read any further.
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/ptrace_guard.ts --allow gdb,strace [--kill]
 * ```
 *
 * @module
 */

import { kill, ProcwatchError, watch } from "@procwatch/procwatch";
import { commandLine } from "@procwatch/procwatch/proc";
import { exitCodeFor } from "./_exit_code.ts";

const allowed = new Set<string>();
let killTracee = false;
for (let i = 0; i < Deno.args.length; i++) {
  if (Deno.args[i] === "--kill") killTracee = true;
  else if (Deno.args[i] === "--allow") {
    for (const name of (Deno.args[++i] ?? "").split(",")) if (name) allowed.add(name);
  } else {
    console.error("usage: ptrace_guard.ts [--allow NAME,...] [--kill]");
    Deno.exit(2);
  }
}

try {
  // `context` keeps the process table, which names the tracer as well.
  const watcher = watch({ events: ["ptrace"], context: true });
  await watcher.ready;
  console.error(`guarding against ptrace (allowed: ${[...allowed].join(", ") || "none"})`);
  for await (const event of watcher) {
    if (event.type !== "ptrace" || event.tracerPid === 0) continue; // tracer 0: a detach
    const tracer = watcher.processTable?.get(event.tracerPid);
    if (tracer?.comm && allowed.has(tracer.comm)) continue;
    const tracee = event.process;
    console.log(
      `ALERT: ${event.pid} (${tracee?.comm ?? "?"}) ptrace-attached by ${event.tracerPid} (${
        tracer?.comm ?? "?"
      }: ${commandLine(tracer?.cmdline ?? [])})`,
    );
    if (killTracee) console.log(`${event.pid} ${kill(event.pid, "SIGKILL") ? "killed" : "gone"}`);
  }
} catch (error) {
  // No --allow-ffi, not allowed to listen, a network namespace: one line, procwatch's code.
  if (!(error instanceof ProcwatchError)) throw error;
  console.error(`ptrace_guard: ${error.message}`);
  Deno.exit(exitCodeFor(error));
}
