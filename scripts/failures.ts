/**
 * Report processes that fail — non-zero exit, killed by a signal, core dump —
 * with their command line, lifetime and parent: what a process manager wants
 * to know (the use case of the 2018 and 2023 kernel commits). On Linux ≥ 6.6
 * the kernel drops successful exits itself (PROC_EVENT_NONZERO_EXIT).
 *
 * ```sh
 * sudo deno run --allow-ffi scripts/failures.ts
 * ```
 *
 * @module
 */

import { ProcwatchError, watch } from "@procwatch/procwatch";
import { describeExit, formatDuration, processLabel } from "@procwatch/procwatch/format";
import { exitCodeFor } from "./_exit_code.ts";

try {
  // failedOnly: only exits with a non-zero status or a signal reach us.
  const watcher = watch({ events: ["exit", "coredump"], failedOnly: true, context: true });
  await watcher.ready;
  console.error(
    `reporting failures (${
      watcher.filterMode === "kernel" ? "kernel-side filter" : "filtered in procwatch"
    })`,
  );
  for await (const event of watcher) {
    if (event.type !== "exit" && event.type !== "coredump") continue;
    const info = event.process;
    const parent = `parent ${info?.ppid ?? "?"} (${info?.parentComm ?? "?"})`;
    if (event.type === "coredump") {
      console.log(`${event.pid} ${processLabel(info)}: dumping core, ${parent}`);
    } else {
      const lived = info?.durationNs == null ? "" : ` after ${formatDuration(info.durationNs)}`;
      console.log(`${event.pid} ${processLabel(info)}: ${describeExit(event)}${lived}, ${parent}`);
    }
  }
} catch (error) {
  // No --allow-ffi, not allowed to listen, a network namespace: one line, procwatch's code.
  if (!(error instanceof ProcwatchError)) throw error;
  console.error(`failures: ${error.message}`);
  Deno.exit(exitCodeFor(error));
}
